"""The theory's numbers for a concrete network, to set beside the measurements: each layer's predicted statistics
for one (config, dataset), the probe's measurement beside them, and the input-output Jacobian's spectrum.

The per-layer maps are meanfield.py's (Poole et al. 2016; Glorot & Bengio 2010; He et al. 2015). Dynamical isometry
(Saxe et al. 2013; Pennington et al. 2017): singular values of J = prod_l D^l W^l.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS
from .config import Config
from .initializers import BIAS_INITIALIZERS, INITIALIZERS
from .limits import Limits
from .meanfield import (TAIL, Array, TheoryError, activation_cross_moment, activation_mean, activation_second_moment,
                        backward_variance, forward_variance, gaussian_expectation, pooled_variance)
from .network import Network, Params, init_args, initialize
from .normalization import NORM_EPS
from .normtheory import batchnorm_forward, batchnorm_backward, pair_correlation
from .train import probe

SOFTMAX_POINTS = 4000  # grid points per axis for E[sum p^2] of a softmax (enough up to logit std ~100)


# --- a concrete network -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The theory's per-layer numbers for one (config, dataset), l = 1..L (the output layer included).

    z_rms = sqrt(q^l), dz_rms = sqrt(E[(dZ^l)^2]). The stds are what a probe measures: over the layer's n x m
    values about their common mean, averaged over weight draws (`pooled_variance`); in a wide layer that is the std
    of Z^l ~ N(b, q^l - b^2), in a narrow one less (a_std is nan for a softmax output, which is not elementwise).
    sigma_w2[l] = n_{l-1} Var(W^l) is what a phase diagram plots for each layer.

    There is no prediction for dW: dW^l = (1/m) sum_k dZ_k A_k^T is dominated by what the m examples share (the
    output's common logit, relu's non-zero mean), a handful of random numbers per draw, so one draw's rms scatters
    by a factor of 2 around the mean over draws (measured: 1.85x on 256x5 relu) and a mean-field number beside one
    measurement would mislead.
    """

    dims: tuple[int, ...]
    activations: tuple[str, ...]  # hidden layers
    sigma_w2: Array
    sigma_b2: Array
    bias_mean: Array
    input_q: float
    z_rms: Array
    z_std: Array
    a_std: Array
    dz_rms: Array
    dz_std: Array
    unpredicted: str = ""  # what the theory leaves out (nan above) and why, for the reader


MEAN_MODE_NOTE = ("no gradient prediction below the top hidden layer: a residual branch with a non-zero mean (relu) "
                  "makes every block's gradient depend on its own weights' signs, which mean field's independent "
                  "backward weights leave out; measured on 1000 units and 50 blocks the gradient at layer 1 is 10^11 "
                  "times the mean-field figure (the excess shrinks like 1/width, so only an infinitely wide network "
                  "follows it). Zero-mean branches (tanh without bias) are predicted within 10%")


def layer_sigma_w2(config: Config, net: Network, params: Params | None = None) -> Array:
    """n_{l-1} Var(W^l) per layer: from the initialiser's formula (times gain^2), or from the drawn weights for LSUV.

    Raises TheoryError for constant weights, which are not random: every unit of a layer stays identical.
    """
    init = INITIALIZERS[config.init]
    if config.init == "constant" and config.init_scale != 0.0:
        raise TheoryError("constant weights are not random, so mean-field theory does not describe them: every unit "
                          "of a layer computes the same value; choose a random initialiser")
    if init.data_dependent:
        if params is None:
            raise TheoryError(f"{config.init} scales its weights on data: pass the drawn parameters")
        return np.array([w.shape[1] * float(np.mean(np.square(w, dtype=np.float64))) for w in params.W])
    out = []
    for i, (n_in, n_out) in enumerate(zip(net.dims[:-1], net.dims[1:])):
        var = init.variance(n_in, n_out, init_args(config, net, i))
        out.append(n_in * var * config.init_gain**2)
    if config.zero_init_residual and config.norm == "none":  # each residual branch's weights start at zero
        out = [0.0 if net.is_block(i) else w for i, w in enumerate(out)]
    return np.array(out)


def _bias_moments(config: Config, net: Network) -> tuple[Array, Array]:
    """Per layer (sigma_b^2, constant mean b), from the bias initialiser's spec."""
    spec = BIAS_INITIALIZERS[config.bias_init]
    moments = [spec.moments(n_in, n_out, config.bias_value) for n_in, n_out in zip(net.dims[:-1], net.dims[1:])]
    return np.array([v for v, _ in moments]), np.array([m for _, m in moments])


def pair_mean(total: Array, squares: float, m: int) -> float:
    """The mean of v_k . v_k' over pairs of distinct examples k != k', from total = sum_k v_k and sum_k |v_k|^2."""
    return (float(np.dot(total, total)) - squares) / (m * (m - 1)) if m > 1 else 0.0


def softmax_square_sum(var: float, k: int) -> float:
    """E[sum_c p_c^2] for p = softmax of k i.i.d. N(b, var) logits (b cancels): 1/k for small logits, 1 for large.

    With 1/s^2 = int_0^inf t e^{-ts} dt and t = e^{-tau}, E[p_1^2] = int dtau E[g(z - tau)] L(tau)^{k-1}, where
    g(x) = exp(2x - e^x) and L(tau) = E[exp(-e^{z - tau})]: two one-dimensional Gaussian expectations on a grid
    of tau (the trapezoid rule, spectrally accurate on these smooth, fast-decaying integrands).
    """
    sd = math.sqrt(max(var, 0.0))
    if k == 1 or sd == 0.0:
        return 1.0 / k
    z = sd * np.linspace(-TAIL, TAIL, int(min(SOFTMAX_POINTS, max(400, 2 * TAIL * sd / 0.05))))
    weights = np.exp(-((z / sd) ** 2) / 2)
    weights /= weights.sum()
    span = (-TAIL * sd - 8.0, TAIL * sd + 45.0)  # g(x) < e^-80 for x < -40, and it vanishes for x > 4
    tau = np.linspace(*span, int(min(SOFTMAX_POINTS, max(800, (span[1] - span[0]) / 0.05))))
    x = z[None, :] - tau[:, None]
    with np.errstate(over="ignore"):
        ex = np.exp(x)
        integrand = (np.exp(2 * x - ex) @ weights) * (np.exp(-ex) @ weights) ** (k - 1)
    return k * float(np.sum(integrand) * (tau[1] - tau[0]))


def output_dz_moments(output: str, q: float, q12: float, mean: float, y: Array,
                      n_classes: int) -> tuple[float, float, float]:
    """(E[dZ^L], E[(dZ^L)^2], E[dZ^L(x) dZ^L(x')]) for dZ^L = A^L - Y at initialisation, labels independent of Z.

    Sigmoid, y in {0, 1}: E[s] - ybar; E[(s - y)^2] = E[s^2] - 2 ybar E[s] + ybar; for two examples
    E[s s'] - 2 ybar E[s] + mean(y y'). Softmax with K classes: the mean is 0 (each example's dZ sums to 0);
    E[(dZ)^2] = (1/K)(E[sum_c p_c^2] - 2/K + 1), E[p_y] = 1/K as the K logits are exchangeable; the pair moment
    is taken for small logits, (1/K)(sum_c P_c - 1/K), P_c = the share of pairs both in c (it enters the hidden
    layers' spread through 1/n only).
    """
    y = np.asarray(y).reshape(-1)
    m = max(y.size, 1)
    if output == "sigmoid":
        s = ACTIVATIONS["sigmoid"].forward
        s1 = float(gaussian_expectation(s, q, mean))
        s2 = float(gaussian_expectation(lambda z: s(z) ** 2, q, mean))
        s12 = activation_cross_moment("sigmoid", q, q12, mean)
        ybar = float(y.mean()) if y.size else 0.5
        return (s1 - ybar, s2 - 2 * ybar * s1 + ybar,
                s12 - 2 * ybar * s1 + pair_mean(np.array([y.sum()]), float(y.sum()), m))
    counts = np.bincount(y, minlength=n_classes).astype(float)
    same_class = pair_mean(counts, float(counts.sum()), m)  # v_k = one-hot(y_k)
    k = float(n_classes)
    square = softmax_square_sum(q - mean**2, n_classes) if math.isfinite(q) else 1.0
    return 0.0, (square - 2 / k + 1) / k, (1 / k) * (same_class - 1 / k)


def input_moments(x: Array) -> tuple[float, float]:
    """(mean x^2, mean over pairs of distinct examples of x.x' / n_0) for inputs x of shape (n_0, m)."""
    n0, m = x.shape
    square = float(np.dot(x.reshape(-1), x.reshape(-1)))
    return square / max(x.size, 1), pair_mean(x.sum(axis=1), square, m) / n0


def residual_skips(net: Network) -> Array:
    """alpha for every layer that is a residual block (hidden layers 2..), 0 for the others."""
    return np.array([net.residual_scale if net.is_block(i) else 0.0 for i in range(net.depth)])


def check_described(config: Config) -> None:
    """Raise TheoryError where no mean-field prediction is implemented, saying what is and why."""
    if config.norm == "layer":
        raise TheoryError("Init Lab has no mean-field prediction for layer norm: it normalises each example over its "
                          "units, so every hidden layer's Z has mean 0 and variance 1 per example by construction, "
                          "but its gradients are not derived here; the measurement is shown alone. Predictions exist "
                          "for plain, residual and batch-normalised stacks")
    if config.norm == "batch" and config.residual:
        raise TheoryError("Init Lab predicts batch-normalised stacks and residual stacks, not both at once: with a "
                          "skip the batch variance BN divides by differs from unit to unit. Turn one off for a "
                          "prediction")


def predict_for(config: Config, dataset, params: Params | None = None) -> Prediction:
    """The prediction for `config` on `dataset`'s training inputs, layer by layer, before anything is measured.

    For LSUV (data-dependent) the weights are drawn (or `params` used) and their variance read off.
    """
    check_described(config)
    net = Network.from_config(config, dataset.n_features, dataset.output_size)
    if INITIALIZERS[config.init].data_dependent and params is None:
        params = initialize(net, config, dataset.x_train.astype(config.dtype, copy=False))
    sigma_w2 = layer_sigma_w2(config, net, params)
    sigma_b2, bias_mean = _bias_moments(config, net)
    x = dataset.x_train
    input_q, input_q12 = input_moments(x)
    m = max(x.shape[1], 1)
    if config.norm == "batch":
        norm = batchnorm_forward(net.activations, sigma_w2[:-1], float(np.mean(x.var(axis=1))), m, NORM_EPS)
        q_out, q12_out = (sigma_w2[-1] * a[-1] + sigma_b2[-1] + bias_mean[-1] ** 2 for a in (norm.a2, norm.a12))
        q, q12 = np.append(norm.s2, q_out), np.append(norm.s2 * pair_correlation(m), q12_out)
        z_mean = np.append(np.zeros(net.depth - 1), bias_mean[-1])  # BN centres every hidden layer; beta = 0
        hidden_a = (norm.a2, norm.a12, norm.a_mean)
    else:
        skip = residual_skips(net)
        fwd = forward_variance(net.activations, sigma_w2, sigma_b2, input_q, bias_mean, input_q12, skip)
        q, q12, z_mean, hidden_a = fwd.q, fwd.q12, fwd.z_mean, (fwd.a2[1:], fwd.a12[1:], fwd.a_mean[1:])
    dz_mean, *out = output_dz_moments(net.output, q[-1], q12[-1], bias_mean[-1], dataset.y_train, net.dims[-1])
    if config.norm == "batch":
        dz2, dz12 = batchnorm_backward(net.activations, net.dims, sigma_w2, norm, tuple(out), m, NORM_EPS)
    else:
        dz2, dz12 = backward_variance(net.activations, net.dims, sigma_w2, fwd, tuple(out), skip)
    unpredicted = ""
    if config.norm != "batch" and _branch_has_mean(fwd, skip):
        dz2[:-2], dz12[:-2], unpredicted = math.nan, math.nan, MEAN_MODE_NOTE
    units = np.array(net.dims[1:], float)
    a_moments = [np.append(moment, _output_moment(net, q[-1], q12[-1], bias_mean[-1], kind))
                 for moment, kind in zip(hidden_a, ("second", "cross", "mean"))]
    with np.errstate(over="ignore", invalid="ignore"):
        dz_var = pooled_variance(dz2, dz12, np.append(np.zeros(net.depth - 1), dz_mean), units, m)
        if net.output == "softmax":  # its K gradients sum to 0 for every example: the layer's mean is exactly 0
            dz_var[-1] = dz2[-1]
        return Prediction(
            dims=net.dims, activations=net.activations, sigma_w2=sigma_w2, sigma_b2=sigma_b2, bias_mean=bias_mean,
            input_q=input_q, z_rms=np.sqrt(q), z_std=np.sqrt(pooled_variance(q, q12, z_mean, units, m)),
            a_std=np.sqrt(pooled_variance(*a_moments, units, m)), dz_rms=np.sqrt(dz2), dz_std=np.sqrt(dz_var),
            unpredicted=unpredicted,
        )


def _branch_has_mean(fwd, skip: Array) -> bool:
    """Whether a residual block adds a branch of non-zero mean: its output's mean differs from its input's."""
    blocks = np.flatnonzero(skip[:-1] > 0)
    shift = np.abs(fwd.a_mean[blocks + 1] - fwd.a_mean[blocks])
    return bool(np.any(~(shift <= 1e-9 * np.sqrt(fwd.a2[blocks + 1]))))


def _output_moment(net: Network, q: float, q12: float, mean: float, kind: str) -> float:
    """E[A^L^2], E[A^L(x) A^L(x')] or E[A^L] of a sigmoid output; nan for softmax, which is not elementwise."""
    if net.output not in ACTIVATIONS or not math.isfinite(q):
        return math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "second":
            return float(activation_second_moment(net.output, q, mean))
        return (activation_cross_moment(net.output, q, q12, mean) if kind == "cross"
                else float(activation_mean(net.output, q, mean)))


@dataclass(frozen=True)
class Comparison:
    """A prediction next to the probe's measurement at initialisation; measured rms = sqrt(var + mean^2)."""

    prediction: Prediction
    z_rms: Array
    z_std: Array
    a_std: Array
    dz_rms: Array
    dz_std: Array

    def rows(self) -> list[dict]:
        """One dict per layer, predicted and measured side by side (for the CLI and tables)."""
        p = self.prediction
        return [
            {"layer": i + 1, "units": p.dims[i + 1], "sigma_w2": float(p.sigma_w2[i]),
             **{f"{name}_{kind}": float(getattr(source, name)[i])
                for name in ("z_std", "a_std", "z_rms", "dz_std", "dz_rms")
                for kind, source in (("predicted", p), ("measured", self))}}
            for i in range(len(p.z_rms))
        ]


def measured_rms(stats: dict[str, Array], name: str) -> Array:
    """sqrt(E[h^2]) = sqrt(std^2 + mean^2) from a snapshot's per-layer stats, h in z, dz."""
    return np.sqrt(stats[f"{name}_std"] ** 2 + stats[f"{name}_mean"] ** 2)


def _probe_measurement(config: Config, dataset, limits: Limits) -> tuple[Params, dict[str, Array]]:
    """The drawn parameters and what a probe at initialisation measures, as Comparison's fields."""
    _, params, snapshot = probe(config, dataset, limits)
    s = snapshot.stats
    return params, {"z_rms": measured_rms(s, "z"), "z_std": s["z_std"], "a_std": s["a_std"],
                    "dz_rms": measured_rms(s, "dz"), "dz_std": s["dz_std"]}


def measure(config: Config, dataset, limits: Limits = Limits()) -> dict[str, Array]:
    """The probe's per-layer statistics alone: for settings the theory does not describe."""
    return _probe_measurement(config, dataset, limits)[1]


def compare(config: Config, dataset, limits: Limits = Limits()) -> Comparison:
    """Probe `config` once at initialisation and set the prediction (from the same drawn weights for LSUV) beside it."""
    check_described(config)  # before the probe: a setting without theory fails fast
    params, measured = _probe_measurement(config, dataset, limits)
    return Comparison(predict_for(config, dataset, params), **measured)


# --- the input-output Jacobian ------------------------------------------------------------------------------
def jacobian_singular_values(activation: str, init: str, width: int, depth: int, *, scale: float = 0.01,
                             gain: float = 1.0, n_inputs: int = 4, input_q: float = 1.0, seed: int = 0) -> Array:
    """Singular values of J = dA^depth / dA^0 = prod_l D^l W^l (D^l = diag phi'(Z^l)) for a square probe network.

    The weights come from the engine's own initialiser (LSUV included, scaled on the inputs); inputs are
    N(0, input_q). Returns all singular values of the n_inputs Jacobians, concatenated.
    """
    config = Config(layers=(width,) * depth, activation=activation, init=init, init_scale=scale, init_gain=gain,
                    seed=seed)
    net = Network((width,) * (depth + 2), (activation,) * depth)  # the last layer (an output) is not used
    x = np.random.default_rng([seed, 2]).standard_normal((width, n_inputs)) * math.sqrt(input_q)
    params = initialize(net, config, x)
    act = ACTIVATIONS[activation]
    jac = np.broadcast_to(np.eye(width), (n_inputs, width, width)).copy()
    a = x
    for W, b in zip(params.W[:depth], params.b[:depth]):
        z = W @ a + b
        a = act.forward(z)
        slope = act.derivative(z, a).T[:, :, None]  # (inputs, width, 1)
        jac = slope * np.matmul(W, jac)
    return np.linalg.svd(jac, compute_uv=False).reshape(-1)
