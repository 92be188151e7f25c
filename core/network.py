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

Array = np.ndarray


@dataclass(frozen=True)
class Network:
    dims: tuple[int, ...]  # (n_0, n_1, ..., n_L)
    activations: tuple[str, ...]  # one per hidden layer, len(dims) - 2

    @classmethod
    def from_config(cls, config: Config, n_features: int, output_size: int) -> "Network":
        return cls((n_features, *config.layers, output_size), config.hidden_activations)

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
        return sum(n_out * (n_in + 1) for n_in, n_out in zip(self.dims[:-1], self.dims[1:]))

    def __str__(self) -> str:
        """E.g. "[12288, 20, 7, 5, 1] relu×3 -> sigmoid"; a deep probe stays short:
        "[784, 500×30, 1] tanh×30 -> sigmoid"."""
        dims, activations = compact_runs(map(str, self.dims)), compact_runs(self.activations)
        return f"[{', '.join(dims)}] {'/'.join(activations)} -> {self.output}"


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

    def copy(self) -> "Params":
        return Params([w.copy() for w in self.W], [b.copy() for b in self.b], self.lsuv_iterations)


class Cache(NamedTuple):
    Z: list[Array]  # Z[i] = Z^{i+1}
    A: list[Array]  # A[0] = X, A[i+1] = A^{i+1}; A[-1] holds the output probabilities


class Grads(NamedTuple):
    dZ: list[Array]
    dW: list[Array]
    db: list[Array]


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
        a = get_activation(net.layer_activation(i)).forward(z) if i < net.depth - 1 else z
    return tuple(used)


# --- forward, loss, backward ---------------------------------------------------------------------------------
def forward(net: Network, params: Params, x: Array) -> Cache:
    zs, acts = [], [x]
    for i in range(net.depth):
        z = params.W[i] @ acts[-1]
        z += params.b[i]
        zs.append(z)
        if i < net.depth - 1:
            acts.append(get_activation(net.activations[i]).forward(z))
        else:
            acts.append(sigmoid(z) if net.output == "sigmoid" else softmax(z))
    return Cache(zs, acts)


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
    return float(np.mean(predict(net, probabilities) == y))
