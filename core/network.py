"""A fully connected network as plain data, its forward and backward passes, and its loss.

Notation as in the course: layer l computes Z^l = W^l A^{l-1} + b^l and A^l = phi_l(Z^l), with A^0 = X of shape
(n_0, m), one column per example. Lists are 0-based: ``W[i]`` is W^{i+1}, ``cache.A[0]`` is X.
The output layer is a sigmoid with binary cross-entropy for one output unit, a softmax with cross-entropy for
more. For both, dL/dZ^L = A^L - Y per example, which is what makes the pair stable and cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import groupby
from typing import NamedTuple

import numpy as np

from .activations import get_activation, sigmoid, softmax
from .config import Config
from .initializers import BIAS_INITIALIZERS, INITIALIZERS, InitArgs, make_rng
from .normalization import Normalized, normalize, normalize_backward

Array = np.ndarray


@dataclass(frozen=True)
class Network:
    dims: tuple[int, ...]  # (n_0, n_1, ..., n_L)
    activations: tuple[str, ...]  # one per hidden layer, len(dims) - 2
    norm: str = "none"  # "batch" or "layer": every hidden layer's Z is normalised (core/normalization.py)
    residual: bool = False  # hidden layers 2.. are blocks A^l = A^{l-1} + residual_scale * phi(Z^l)
    residual_scale: float = 1.0

    @classmethod
    def from_config(cls, config: Config, n_features: int, output_size: int) -> "Network":
        return cls((n_features, *config.layers, output_size), config.hidden_activations, config.norm,
                   config.residual, config.residual_scale)

    @property
    def plain(self) -> bool:
        """A stack of dense layers alone: the course's network, and the engine's fast path."""
        return self.norm == "none" and not self.residual

    def is_block(self, i: int) -> bool:
        """Whether 0-based layer i adds its input to its output (a residual block: hidden layers 2..)."""
        return self.residual and 1 <= i < self.depth - 1

    @property
    def depth(self) -> int:
        return len(self.dims) - 1

    @property
    def output(self) -> str:
        return "sigmoid" if self.dims[-1] == 1 else "softmax"

    def layer_activation(self, i: int) -> str:
        """The activation name of 0-based layer i, the output layer included."""
        return self.activations[i] if i < self.depth - 1 else self.output

    @property
    def n_params(self) -> int:
        normalised = 2 * sum(self.dims[1:-1]) if self.norm != "none" else 0  # gamma and beta
        return sum(n_out * (n_in + 1) for n_in, n_out in zip(self.dims[:-1], self.dims[1:])) + normalised

    def __str__(self) -> str:
        """E.g. "[12288, 20, 7, 5, 1] relu×3 -> sigmoid"; a deep probe stays short:
        "[784, 500×30, 1] tanh×30 -> sigmoid"."""
        dims, activations = compact_runs(map(str, self.dims)), compact_runs(self.activations)
        extras = ([f"{self.norm} norm"] if self.norm != "none" else []) + \
            ([f"residual α={self.residual_scale:g}"] if self.residual else [])
        return f"[{', '.join(dims)}] {'/'.join(activations)} -> {self.output}" + "".join(f", {e}" for e in extras)


def compact_runs(items, times: str = "×") -> list[str]:
    """Strings with every run of three or more equal ones written once with its count: a, b, b, b -> a, b×3."""
    out: list[str] = []
    for item, run in groupby(items):
        count = len(list(run))
        out += [f"{item}{times}{count}"] if count > 2 else [item] * count
    return out


@dataclass
class Params:
    W: list[Array]
    b: list[Array]
    lsuv_iterations: tuple[int, ...] = field(default=())  # per layer, when the init was LSUV
    # Normalised networks only (else empty), one (n_l, 1) column per hidden layer: the learnable scale and shift,
    # and batch norm's running mean and variance (not learnt: updated by `update_running_stats`).
    gamma: list[Array] = field(default_factory=list)
    beta: list[Array] = field(default_factory=list)
    running_mean: list[Array] = field(default_factory=list)
    running_var: list[Array] = field(default_factory=list)

    def copy(self) -> "Params":
        return Params(*([a.copy() for a in group] for group in (self.W, self.b)), self.lsuv_iterations,
                      *([a.copy() for a in group] for group in (self.gamma, self.beta, self.running_mean,
                                                                  self.running_var)))


class Cache(NamedTuple):
    Z: list[Array]  # Z[i] = Z^{i+1}, the input of the activation (normalised, in a normalised layer)
    A: list[Array]  # A[0] = X, A[i+1] = A^{i+1}; A[-1] holds the output probabilities
    normalized: list[Normalized] = []  # per hidden layer of a normalised network: its pre-normalisation Z and more
    branch: list[Array | None] = []  # per hidden layer of a residual network: phi(Z^l) in a block, else None


class Grads(NamedTuple):
    dZ: list[Array]  # at Z as the cache holds it (the activation's input)
    dW: list[Array]
    db: list[Array]
    dz_pre: list[Array] = []  # normalised networks: the gradient at the pre-normalisation Z, per hidden layer
    dgamma: list[Array] = []
    dbeta: list[Array] = []


# --- initialisation ----------------------------------------------------------------------------------------------
def initialize(net: Network, config: Config, x: Array | None = None) -> Params:
    """Draw W^1..W^L in order (the course's order), then biases; LSUV then rescales on the batch ``x``."""
    init = INITIALIZERS[config.init]
    rng = make_rng(config.rng, config.seed)
    dtype = np.dtype(config.dtype)
    weights, biases = [], []
    for i, (n_in, n_out) in enumerate(zip(net.dims[:-1], net.dims[1:])):
        w = init.sample((n_out, n_in), rng, init_args(config, net, i))
        if config.init_gain != 1.0:
            w = w * config.init_gain
        weights.append(w.astype(dtype, copy=False))
        bias = BIAS_INITIALIZERS[config.bias_init].sample(n_in, n_out, rng, config.bias_value)
        biases.append(bias.astype(dtype, copy=False))
    params = Params(weights, biases)
    if net.norm != "none":
        hidden = net.dims[1:-1]
        params.gamma = [np.full((n, 1), 0.0 if net.is_block(i) and config.zero_init_residual else 1.0, dtype)
                        for i, n in enumerate(hidden)]
        params.beta = [np.zeros((n, 1), dtype) for n in hidden]
        if net.norm == "batch":
            params.running_mean = [np.zeros((n, 1), dtype) for n in hidden]
            params.running_var = [np.ones((n, 1), dtype) for n in hidden]
    elif config.zero_init_residual:  # no gamma: the branch's weights and bias start at zero
        for i in range(1, net.depth - 1):
            params.W[i][...] = 0.0
            params.b[i][...] = 0.0
    if init.data_dependent:
        if x is None:
            raise ValueError("LSUV needs a data batch to scale its layers")
        params.lsuv_iterations = lsuv_rescale(net, params, x.astype(dtype, copy=False), config.lsuv_tol,
                                              config.lsuv_max_iter)
    return params


def init_args(config: Config, net: Network, i: int) -> InitArgs:
    """What layer i's initialiser depends on: the config's scale and fan mode, and the gain of the activation that
    follows the layer (He's gain belongs to that nonlinearity; the output layer's is treated as linear)."""
    after = net.activations[i] if i < net.depth - 1 else "linear"
    return InitArgs(config.init_scale, config.init_mode, get_activation(after).gain2)


def lsuv_rescale(net: Network, params: Params, x: Array, tol: float, max_iter: int) -> tuple[int, ...]:
    """Mishkin & Matas (2015): for each layer in order, W^l /= sqrt(Var(Z^l)) until |Var(Z^l) - 1| < tol.

    Returns the number of rescalings each layer needed (0 if its variance was already within tol).
    """
    used = []
    a = x
    for i in range(net.depth):
        n = 0
        z = params.W[i] @ a + params.b[i]
        var = float(z.var())
        while abs(var - 1.0) >= tol and n < max_iter and var > 0 and math.isfinite(var):
            params.W[i] /= math.sqrt(var)
            z = params.W[i] @ a + params.b[i]
            var = float(z.var())
            n += 1
        used.append(n)
        if i < net.depth - 1:
            a = get_activation(net.activations[i]).forward(z) if net.plain else hidden_layer(net, params, i, a)[1]
    return tuple(used)


# --- forward, loss, backward ---------------------------------------------------------------------------------
def forward(net: Network, params: Params, x: Array, batch_stats: bool = False) -> Cache:
    """The forward pass. Batch norm normalises with the batch's own statistics when ``batch_stats`` (training: the
    caller then updates the running ones, `update_running_stats`), else with the running ones (evaluation)."""
    if not net.plain:
        return _forward_blocks(net, params, x, batch_stats)
    zs, acts = [], [x]
    for i in range(net.depth):
        z = layer_product(params.W[i], acts[-1])
        z += params.b[i]
        zs.append(z)
        if i < net.depth - 1:
            acts.append(get_activation(net.activations[i]).forward(z))
        else:
            acts.append(sigmoid(z) if net.output == "sigmoid" else softmax(z))
    return Cache(zs, acts)


def transposes_product(a: Array) -> bool:
    """Whether `layer_product` computes W A as Z^T = A^T W^T: where A is float32 with its examples contiguous, as
    core.data holds the data (the first layer's input, whose product is usually the step's largest; every layer's
    Z, and so every later input, is row-major). That is PyTorch's own x @ W.T, which OpenBLAS's float32 kernels
    take 1.3-1.5x faster than W X, with the same figures to the last bit on the course's data; in float64 they take
    W X as fast or faster (tests/benchmarks/bench_train_step.py)."""
    return a.dtype == np.float32 and a.flags.f_contiguous and not a.flags.c_contiguous


def layer_product(w: Array, a: Array) -> Array:
    """W A, row-major, in the order its layout multiplies fastest (`transposes_product`)."""
    if transposes_product(a):
        return np.ascontiguousarray((a.T @ w.T).T)
    return w @ a


def hidden_layer(net: Network, params: Params, i: int, a: Array, batch_stats: bool = True
                 ) -> tuple[Array, Array, Normalized | None, Array | None]:
    """Hidden layer i of a normalised or residual network on its input ``a``: the activation's input Z, the
    layer's output, its normalisation, and its branch phi(Z) when it is a residual block."""
    z = layer_product(params.W[i], a)
    z += params.b[i]
    normalized = None
    if net.norm != "none":
        running = (params.running_mean[i], params.running_var[i]) if net.norm == "batch" and not batch_stats else None
        z, normalized = normalize(net.norm, z, params.gamma[i], params.beta[i], running)
    h = get_activation(net.activations[i]).forward(z)
    if not net.is_block(i):
        return z, h, normalized, None
    return z, a + z.dtype.type(net.residual_scale) * h, normalized, h


def _forward_blocks(net: Network, params: Params, x: Array, batch_stats: bool) -> Cache:
    zs, acts, normalized, branches = [], [x], [], []
    for i in range(net.depth - 1):
        z, a, norm, h = hidden_layer(net, params, i, acts[-1], batch_stats)
        zs.append(z)
        acts.append(a)
        normalized.append(norm)
        branches.append(h)
    z = layer_product(params.W[-1], acts[-1])
    z += params.b[-1]
    zs.append(z)
    acts.append(sigmoid(z) if net.output == "sigmoid" else softmax(z))
    return Cache(zs, acts, normalized if net.norm != "none" else [], branches if net.residual else [])


def _backward_blocks(net: Network, params: Params, cache: Cache, y_target: Array, l2: float) -> Grads:
    """`backward` through normalisations and residual blocks. A block's output A^{i+1} = A^i + alpha phi(Z): its
    gradient reaches A^i twice, through the skip and through W^T."""
    m = y_target.shape[1]
    inv_m = 1.0 / m
    L = net.depth
    dZ, dW, db = [None] * L, [None] * L, [None] * L
    hidden = L - 1
    dz_pre, dgamma, dbeta = ([None] * hidden for _ in range(3)) if net.norm != "none" else ([], [], [])
    dz = cache.A[-1] - y_target
    d_out = None  # the gradient at the current hidden layer's output
    for i in reversed(range(L)):
        if i < hidden:
            block = net.is_block(i)
            dz = d_out * d_out.dtype.type(net.residual_scale) if block else d_out
            dz *= get_activation(net.activations[i]).derivative(cache.Z[i], cache.branch[i] if block else
                                                                cache.A[i + 1])
        dZ[i] = dz
        if i < hidden and net.norm != "none":
            dz, dgamma[i], dbeta[i] = normalize_backward(net.norm, dz, cache.normalized[i], params.gamma[i])
            dz_pre[i] = dz
        dW[i] = (dz * inv_m) @ cache.A[i].T
        if l2:
            dW[i] += (l2 * inv_m) * params.W[i]
        if i < hidden and net.norm == "batch":  # the batch mean removes b: its gradient is 0, exactly (summed, it
            db[i] = np.zeros_like(params.b[i])  # is rounding noise, which Adam would divide by its own size)
        else:
            db[i] = dz.sum(axis=1, keepdims=True) * inv_m
        if i > 0:
            d_in = params.W[i].T @ dz
            if i < hidden and net.is_block(i):
                d_in += d_out
            d_out = d_in
    return Grads(dZ, dW, db, dz_pre, dgamma, dbeta)


def one_hot(y: Array, n_classes: int, dtype) -> Array:
    out = np.zeros((n_classes, y.shape[-1]), dtype=dtype)
    out[y.reshape(-1), np.arange(y.shape[-1])] = 1.0
    return out


def targets(net: Network, y: Array, dtype) -> Array:
    """Labels (1, m) as the output layer's targets: themselves for sigmoid, one-hot columns for softmax."""
    return y.astype(dtype) if net.output == "sigmoid" else one_hot(y, net.dims[-1], dtype)


def cost(net: Network, cache: Cache, y: Array, params: Params | None = None, l2: float = 0.0) -> float:
    """Mean cross-entropy over the examples (+ the course's L2 term l2/(2m) sum ||W||^2), computed from Z^L.

    Working from the logits avoids log(0): for sigmoid, -[y log a + (1-y) log(1-a)] = log(1 + e^z) - y z.
    """
    z = cache.Z[-1]
    m = z.shape[1]
    if net.output == "sigmoid":
        losses = np.logaddexp(0.0, z) - y.astype(z.dtype) * z
    else:
        shifted = z - z.max(axis=0, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
        losses = -log_probs[y.reshape(-1), np.arange(m)]
    with np.errstate(over="ignore"):
        loss = float(np.sum(losses)) / m
    if math.isinf(loss):  # the sum of finite losses passed 1.8e308 (a huge initial scale): their mean may not
        loss = float(np.sum(losses / m))
    if l2 and params is not None:
        loss += l2 / (2 * m) * sum(float(np.sum(w * w)) for w in params.W)
    return loss


def probability_cost(net: Network, probabilities: Array, y: Array) -> float:
    """The cross-entropy as the course computes it, from the output probabilities: the mean of -log a where y = 1
    and -log(1 - a) where y = 0 (-log a_y for softmax). A saturated output rounds a to exactly 0 or 1, and one on
    the wrong side makes this inf where `cost`, from the logits, stays finite (the course's `randn * 10` prints
    cost inf at step 0)."""
    p = probabilities.astype(np.float64)
    labels = y.reshape(-1)
    if net.output == "sigmoid":
        chosen = np.where(labels == 1, p[0], 1.0 - p[0])
    else:
        chosen = p[labels, np.arange(labels.size)]
    with np.errstate(divide="ignore"):
        return float(np.mean(-np.log(chosen)))


def logit_cost_note(course_cost: float, loss: float) -> str | None:
    """What a reader of the course needs to know when its formula gives inf and Init Lab's cost does not."""
    if math.isfinite(course_cost) or not math.isfinite(loss):
        return None
    return (f"the course's cost, computed from the probabilities (the mean of −log a for the true class), is inf "
            f"here: saturated outputs round a to exactly 0 or 1 on the wrong side. Init Lab computes it from the "
            f"logits, log(1 + e^z) − y z, and gets {loss:.6g}.")


def backward(net: Network, params: Params, cache: Cache, y_target: Array, l2: float = 0.0) -> Grads:
    """Exact gradients of the mean cost. dZ is per example (dL_i/dZ); dW and db are averaged over the batch.

    The input gradient W^1^T dZ^1 is never needed, so it is never computed: for the course's 12288-wide input it
    would cost as much as the whole forward pass.
    """
    if not net.plain:
        return _backward_blocks(net, params, cache, y_target, l2)
    m = y_target.shape[1]
    inv_m = 1.0 / m
    L = net.depth
    dZ: list[Array] = [None] * L  # type: ignore[list-item]
    dW: list[Array] = [None] * L  # type: ignore[list-item]
    db: list[Array] = [None] * L  # type: ignore[list-item]
    dz = cache.A[-1] - y_target
    for i in reversed(range(L)):
        dZ[i] = dz
        dW[i] = (dz * inv_m) @ cache.A[i].T
        if l2:
            dW[i] += (l2 * inv_m) * params.W[i]
        db[i] = dz.sum(axis=1, keepdims=True) * inv_m
        if i > 0:
            dz = params.W[i].T @ dz  # dA^{i}, a fresh array: scaled by phi' in place
            dz *= get_activation(net.activations[i - 1]).derivative(cache.Z[i - 1], cache.A[i])
    return Grads(dZ, dW, db)


def predict(net: Network, probabilities: Array) -> Array:
    """Class labels (1, m) from output probabilities: p > 0.5 for sigmoid (as the course), argmax for softmax."""
    if net.output == "sigmoid":
        return (probabilities > 0.5).astype(np.int64)
    return probabilities.argmax(axis=0).reshape(1, -1)


def accuracy(net: Network, probabilities: Array, y: Array) -> float:
    # count_nonzero, not mean: one C call where np.mean's Python layers took 40-80 us of a recorded step, whose
    # passes over the data had left them out of the CPU's caches (tests/benchmarks/bench_train_step.py)
    matches = predict(net, probabilities) == y
    return np.count_nonzero(matches) / matches.size
