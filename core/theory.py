"""The theory of initialisation, as numbers to set beside the measurements: what each layer's statistics should be.

Notation as in the engine: layer l computes Z^l = W^l A^{l-1} + b^l, A^l = phi(Z^l), with n_l units, weights of
variance Var(W^l) = sigma_{w,l}^2 / n_{l-1} and biases of variance sigma_b^2.

* Forward (mean field; Poole et al. 2016, Schoenholz et al. 2017). q^l = E[(Z^l)^2], the second moment of a
  pre-activation over units and examples:
      q^1 = sigma_{w,1}^2 * mean(x^2) + sigma_b^2
      q^l = sigma_{w,l}^2 * E_{z~N(0,1)}[ phi(sqrt(q^{l-1}) z)^2 ] + sigma_b^2
  A constant bias b (not random) makes Z^l ~ N(b, q^l - b^2); the expectations then use that mean.
* Backward (Glorot & Bengio 2010; He et al. 2015), with dZ the per-example gradient the engine records:
      E[(dZ^l)^2] = E[(dZ^{l+1})^2] * n_{l+1} Var(W^{l+1}) * E[phi'(Z^l)^2]
      E[(dW^l)^2] = E[(dZ^l)^2] E[(A^{l-1})^2] / m + (1 - 1/m) E[dZ^l dZ'^l] E[A^{l-1} A'^{l-1}]
  (m examples averaged, whose gradients are correlated through the shared weights; ' marks another example)
* Order and chaos: the fixed point q* of the forward map, chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2], and the depth
  scale 1 / |ln chi_1| over which gradients shrink (chi_1 < 1) or grow (chi_1 > 1) by a factor e.
* Dynamical isometry (Saxe et al. 2013; Pennington et al. 2017): singular values of J = prod_l D^l W^l.

Gaussian expectations use Gauss-Hermite quadrature (probabilists' nodes, weights normalised to sum 1); functions
with a kink at 0 (relu, elu, selu, and their derivatives) are integrated on each side of the kink separately, by
Gauss-Legendre, because a kink spoils Gauss-Hermite's convergence; so are wide Gaussians (variance > 2), against
which tanh' is a spike that falls between Hermite's nodes. Relu, leaky relu and linear have closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from .activations import ACTIVATIONS, LEAKY_SLOPE
from .config import Config
from .initializers import INITIALIZERS, InitArgs
from .network import Network, Params, _gain_activation, initialize
from .train import probe

Array = np.ndarray

HERMITE_POINTS = 96
LEGENDRE_POINTS = 160
HERMITE_MAX_Q = 2.0  # beyond this variance the split rule below is used (see _expectation)
TAIL = 12.0  # a standard normal beyond 12 sigma carries < 1e-32 of the mass
KINKED = frozenset({"relu", "leaky_relu", "elu", "selu"})  # phi or phi' not smooth at 0
# E[phi(z)^2] = c2 * q and E[phi'(z)^2] = d2 for z ~ N(0, q): positively homogeneous activations.
HOMOGENEOUS = {"relu": (0.5, 0.5), "leaky_relu": ((1 + LEAKY_SLOPE**2) / 2,) * 2, "linear": (1.0, 1.0)}
Q_MAX = 1e12  # a forward map above this is reported as diverging (q* = inf)

_H_NODES, _H_WEIGHTS = hermegauss(HERMITE_POINTS)
_H_WEIGHTS = _H_WEIGHTS / _H_WEIGHTS.sum()
_L_NODES, _L_WEIGHTS = leggauss(LEGENDRE_POINTS)
_L_NODES, _L_WEIGHTS = (_L_NODES + 1) / 2, _L_WEIGHTS / 2  # on [0, 1]


class TheoryError(ValueError):
    """The theory has nothing to say for this setting; the message says why."""


# --- Gaussian expectations -------------------------------------------------------------------------------------
def gaussian_expectation(f: Callable[[Array], Array], q, mean=0.0) -> Array:
    """E_{z~N(0,1)}[f(mean + sqrt(q - mean^2) z)] by Gauss-Hermite quadrature; q (second moment) broadcasts.

    With mean = 0 this is the mean-field E[f(sqrt(q) z)].
    """
    q, mean = np.broadcast_arrays(np.asarray(q, float), np.asarray(mean, float))
    std = np.sqrt(np.maximum(q - mean**2, 0.0))
    return np.sum(_H_WEIGHTS * f(mean[..., None] + std[..., None] * _H_NODES), axis=-1)


def _split_expectation(f: Callable[[Array], Array], q, mean=0.0) -> Array:
    """The same expectation for f with a kink at 0: Gauss-Legendre on each side of the kink, out to TAIL sigma."""
    q, mean = np.broadcast_arrays(np.asarray(q, float), np.asarray(mean, float))
    std = np.sqrt(np.maximum(q - mean**2, 0.0))
    safe = np.where(std > 0, std, 1.0)
    kink = np.where(std > 0, -mean / safe, 0.0)[..., None]  # where mean + std * xi = 0
    span = TAIL + np.abs(kink)
    total = np.zeros(q.shape)
    for side in (1.0, -1.0):
        xi = kink + side * span * _L_NODES
        density = np.exp(-xi**2 / 2) / math.sqrt(2 * math.pi)
        total += np.sum(span * _L_WEIGHTS * density * f(mean[..., None] + std[..., None] * xi), axis=-1)
    return np.where(std > 0, total, f(mean))


def _expectation(name: str, f: Callable[[Array], Array], q, mean) -> Array:
    # Past q = HERMITE_MAX_Q, phi' of a saturating phi is a spike narrower than Hermite's node spacing at 0.
    hermite = name not in KINKED and np.all(np.asarray(q) - np.asarray(mean) ** 2 <= HERMITE_MAX_Q)
    return (gaussian_expectation if hermite else _split_expectation)(f, q, mean)


def activation_second_moment(name: str, q, mean=0.0) -> Array:
    """E[phi(Z)^2] for Z with second moment q and mean `mean` (Gaussian); closed form q/2 for relu, q for linear."""
    q = np.asarray(q, float)
    if name == "linear":
        return q + 0.0 * np.asarray(mean)
    if name in HOMOGENEOUS and not np.any(mean):
        return HOMOGENEOUS[name][0] * q
    phi = ACTIVATIONS[name].forward
    return _expectation(name, lambda z: phi(z) ** 2, q, mean)


def derivative_second_moment(name: str, q, mean=0.0) -> Array:
    """E[phi'(Z)^2] for Z as above; closed form 1/2 for relu, 1 for linear."""
    q = np.asarray(q, float)
    if name in HOMOGENEOUS and not np.any(mean):
        return np.full(np.broadcast(q, mean).shape, HOMOGENEOUS[name][1])
    slope = _derivative(name)
    return _expectation(name, lambda z: slope(z) ** 2, q, mean)


def activation_std(name: str, q: float, mean: float = 0.0) -> float:
    """sqrt(E[phi(Z)^2] - E[phi(Z)]^2) for Gaussian Z with second moment q and mean `mean`; nan for softmax."""
    if name not in ACTIVATIONS or not math.isfinite(q):
        return math.nan
    first = float(_expectation(name, ACTIVATIONS[name].forward, q, mean))
    return math.sqrt(max(float(activation_second_moment(name, q, mean)) - first**2, 0.0))


def _derivative(name: str) -> Callable[[Array], Array]:
    act = ACTIVATIONS[name]
    return lambda z: act.derivative(z, act.forward(z))


def activation_cross_moment(name: str, q: float, q12: float, mean: float = 0.0, derivative: bool = False) -> float:
    """E[f(U1) f(U2)], f = phi (or phi' with derivative=True), for jointly Gaussian U1, U2 of mean `mean`, second
    moments q and cross moment q12: Poole et al.'s covariance map for two inputs.

    Closed forms: linear gives q12 (and 1); relu with zero mean the arc-cosine kernel (Cho & Saul 2009)
    k(c) = v (sin t + (pi - t) c) / (2 pi), c = cos t = q12 / q; leaky relu (1 + a^2) k(c) - 2a k(-c). Otherwise U2
    given U1 is Gaussian with mean b + c (U1 - b) and variance v (1 - c^2) (v = q - b^2): the inner expectation
    over U2 and the outer one over U1 are each one quadrature.
    """
    if name == "linear":
        return 1.0 if derivative else float(q12)
    f = _derivative(name) if derivative else ACTIVATIONS[name].forward
    var, cov = q - mean**2, q12 - mean**2
    if var <= 0.0:
        return float(f(np.array([mean]))[0] ** 2)
    c = min(max(cov / var, -1.0), 1.0)
    if name in ("relu", "leaky_relu") and mean == 0.0 and not derivative:
        def arc_cosine(cos):
            t = math.acos(cos)
            return var * (math.sin(t) + (math.pi - t) * cos) / (2 * math.pi)
        slope = LEAKY_SLOPE if name == "leaky_relu" else 0.0
        return (1 + slope**2) * arc_cosine(c) - 2 * slope * arc_cosine(-c)
    conditional_var = var * (1.0 - c * c)

    def outer(u1: Array) -> Array:
        conditional_mean = mean + c * (u1 - mean)
        return f(u1) * _expectation(name, f, conditional_mean**2 + conditional_var, conditional_mean)

    return float(_expectation(name, outer, q, mean))


# --- forward and backward through a concrete stack of layers ---------------------------------------------------
@dataclass(frozen=True)
class Forward:
    """Per layer l = 1..L: q = E[(Z^l)^2] for one input, q12 = E[Z^l(x) Z^l(x')] for two different inputs,
    z_mean = the constant bias b, input_q = E[(A^{l-1})^2], input_q12 = E[A^{l-1}(x) A^{l-1}(x')]."""

    q: Array
    q12: Array
    z_mean: Array
    input_q: Array
    input_q12: Array


def forward_variance(activations: Sequence[str] | str, sigma_w2, sigma_b2, input_q: float, bias_mean=0.0,
                     input_q12: float = 0.0) -> Forward:
    """The mean-field forward map through L layers, each with its own sigma_{w,l}^2.

    q^1 = sigma_{w,1}^2 * input_q + sigma_b^2 + b^2,  q^l = sigma_{w,l}^2 E[phi_{l-1}(Z^{l-1})^2] + sigma_b^2 + b^2,
    where phi_l is ``activations[l-1]`` (one name for all; the name after the last layer is not used) and b a
    constant bias mean (0 for random or zero biases). The cross moment of two inputs follows the same map with
    E[phi(Z(x)) phi(Z(x'))] (Poole et al.'s covariance map), starting from input_q12 = mean x.x' / n_0.
    """
    sigma_w2 = np.atleast_1d(np.asarray(sigma_w2, float))
    depth = len(sigma_w2)
    sigma_b2 = np.broadcast_to(np.asarray(sigma_b2, float), (depth,))
    mean = np.broadcast_to(np.asarray(bias_mean, float), (depth,))
    names = [activations] * depth if isinstance(activations, str) else list(activations)
    q, q12, a2, a12 = (np.empty(depth) for _ in range(4))
    a2[0], a12[0] = input_q, input_q12
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(depth):
            if l > 0:
                a2[l] = activation_second_moment(names[l - 1], q[l - 1], mean[l - 1])
                a12[l] = (activation_cross_moment(names[l - 1], q[l - 1], q12[l - 1], mean[l - 1])
                          if math.isfinite(q[l - 1]) else math.nan)
            q[l] = sigma_w2[l] * a2[l] + sigma_b2[l] + mean[l] ** 2
            q12[l] = sigma_w2[l] * a12[l] + sigma_b2[l] + mean[l] ** 2
    return Forward(q, q12, mean.copy(), a2, a12)


def expected_measured_var(fwd: Forward, units: Sequence[int], batch: int) -> Array:
    """E[Var(Z^l)] as a probe measures it: over all n_l x m values, about their common mean.

    The common mean z_mean = b + (1/n_l) sum_j mu_j, where a unit's mean mu_j over the m examples has
    E[(mu_j - b)^2] = ((q - b^2) + (m - 1)(q12 - b^2)) / m: correlated inputs give each unit an offset, and a
    narrow layer does not average the offsets away. So E[Var] = q - b^2 - E[(mu_j - b)^2] / n_l.
    """
    centred = fwd.q - fwd.z_mean**2
    offset2 = (centred + (batch - 1) * (fwd.q12 - fwd.z_mean**2)) / batch
    return np.maximum(centred - offset2 / np.asarray(units, float), 0.0)


def backward_variance(activations: Sequence[str], dims: Sequence[int], sigma_w2, fwd: Forward,
                      output_moments: tuple[float, float], batch: int) -> tuple[Array, Array]:
    """E[(dZ^l)^2] and E[(dW^l)^2] for l = 1..L, from (E[(dZ^L)^2], E[dZ^L(x) dZ^L(x')]) at the output.

    E[(dZ^l)^2] = E[(dZ^{l+1})^2] * n_{l+1} Var(W^{l+1}) * E[phi_l'(Z^l)^2], n_{l+1} Var(W^{l+1}) =
    sigma_{w,l+1}^2 n_{l+1} / n_l; the cross moment g12 of two examples follows with E[phi'(Z(x)) phi'(Z(x'))].
    dW^l = (1/m) sum_k dZ_k A_k^T averages m examples whose gradients are correlated, so (gradients independent of
    activations, as in the mean-field backward pass)
        E[(dW^l)^2] = E[(dZ^l)^2] E[(A^{l-1})^2] / m + (1 - 1/m) g12^l E[A^{l-1}(x) A^{l-1}(x')].
    """
    sigma_w2 = np.asarray(sigma_w2, float)
    depth = len(sigma_w2)
    dz2, dz12 = np.empty(depth), np.empty(depth)
    dz2[-1], dz12[-1] = output_moments
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(depth - 2, -1, -1):
            fan = sigma_w2[l + 1] * dims[l + 2] / dims[l + 1]
            name, q, mean = activations[l], fwd.q[l], fwd.z_mean[l]
            dz2[l] = dz2[l + 1] * fan * derivative_second_moment(name, q, mean)
            dz12[l] = (dz12[l + 1] * fan * activation_cross_moment(name, q, fwd.q12[l], mean, derivative=True)
                       if math.isfinite(q) else math.nan)
        dw2 = dz2 * fwd.input_q / batch + (1 - 1 / batch) * dz12 * fwd.input_q12
    return dz2, np.maximum(dw2, 0.0)


# --- order and chaos -------------------------------------------------------------------------------------------
def fixed_point(activation: str, sigma_w2, sigma_b2, q0: float = 1.0, iterations: int = 2000,
                rtol: float = 1e-10) -> Array:
    """q* = sigma_w^2 E[phi(sqrt(q*) z)^2] + sigma_b^2 by iterating the map from q0 (the stable fixed point).

    Broadcasts over sigma_w2 and sigma_b2. Where q grows past Q_MAX the map has no finite fixed point: inf.
    """
    sw2, sb2 = np.broadcast_arrays(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float))
    shape = sw2.shape
    sw2, sb2 = sw2.reshape(-1), sb2.reshape(-1)
    q = np.full(sw2.shape, float(q0))
    active = np.arange(q.size)  # only the points still moving are iterated
    for _ in range(iterations):
        new = sw2[active] * activation_second_moment(activation, q[active]) + sb2[active]
        done = (np.abs(new - q[active]) <= rtol * np.maximum(new, 1e-300)) | (new > Q_MAX)
        q[active] = new
        active = active[~done]
        if active.size == 0:
            break
    q = q.reshape(shape)
    return np.where(q > Q_MAX, np.inf, q)


def chi_1(activation: str, sigma_w2, sigma_b2, q_star=None) -> Array:
    """chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]: < 1 ordered (gradients vanish), > 1 chaotic (they explode).

    Where q* is infinite (relu with sigma_w^2 > 2) the slope is taken at Q_MAX, exact for homogeneous phi.
    """
    if q_star is None:
        q_star = fixed_point(activation, sigma_w2, sigma_b2)
    q = np.minimum(np.asarray(q_star, float), Q_MAX)
    return np.asarray(sigma_w2, float) * derivative_second_moment(activation, q)


def depth_scale(chi) -> Array:
    """1 / |ln chi_1|: the number of layers over which gradients change by a factor e; inf at chi_1 = 1.

    In the ordered phase this is Schoenholz et al.'s correlation depth xi_c = -1 / ln chi_c (chi_c = chi_1 there);
    in the chaotic phase it is the e-folding depth of gradient growth.
    """
    chi = np.asarray(chi, float)
    with np.errstate(divide="ignore"):
        return 1.0 / np.abs(np.log(chi))


def critical_line(activation: str, q_star: Array | None = None) -> tuple[Array, Array]:
    """(sigma_w^2, sigma_b^2) along the edge of chaos chi_1 = 1, parametrised by the fixed point q*.

    For each q*: sigma_w^2 = 1 / E[phi'(sqrt(q*) z)^2] (chi_1 = 1), then sigma_b^2 = q* - sigma_w^2 E[phi(sqrt(q*) z)^2]
    (q* is the fixed point). Points with sigma_b^2 < 0 are dropped. Relu's line is the single point (2, 0).
    """
    if q_star is None:
        q_star = np.concatenate([[0.0], np.geomspace(1e-4, 100.0, 200)])
    q_star = np.asarray(q_star, float)
    sw2 = 1.0 / derivative_second_moment(activation, q_star)
    sb2 = q_star - sw2 * activation_second_moment(activation, q_star)
    keep = sb2 >= -1e-12
    return sw2[keep], np.maximum(sb2[keep], 0.0)


def phase_grid(activation: str, sigma_w2: Array, sigma_b2: Array) -> Array:
    """chi_1 on the grid, shape (len(sigma_b2), len(sigma_w2)), for the phase diagram's heatmap."""
    sw2, sb2 = np.meshgrid(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float))
    return chi_1(activation, sw2, sb2, fixed_point(activation, sw2, sb2, iterations=400, rtol=1e-7))


@dataclass(frozen=True)
class MeanField:
    """The forward map of a uniform network: q^1..q^depth, its fixed point, chi_1 and the depth scale."""

    q: Array
    q_star: float
    chi_1: float
    depth_scale: float


def mean_field(activation: str, sigma_w2: float, sigma_b2: float, depth: int, input_q: float = 1.0) -> MeanField:
    """Everything the CLI's ``theory --sigma-w2`` prints, for `depth` identical layers of one activation."""
    q = forward_variance(activation, np.full(depth, sigma_w2), sigma_b2, input_q).q
    q_star = float(fixed_point(activation, sigma_w2, sigma_b2, q0=input_q))
    chi = float(chi_1(activation, sigma_w2, sigma_b2, q_star))
    return MeanField(q, q_star, chi, float(depth_scale(chi)))


# --- a concrete network -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The theory's per-layer numbers for one (config, dataset), l = 1..L (the output layer included).

    z_rms = sqrt(q^l); z_std = sqrt(q^l - b^2), the std of Z^l ~ N(b, q^l - b^2) over weights and inputs (what the
    charts draw); a_std = the std of A^l = phi(Z^l) for that Z (nan for a softmax output, which is not elementwise);
    z_std_pooled = the std one probe measures about its layer's mean, averaged over weight draws (see
    `expected_measured_var`: below sqrt(q) in narrow layers); dz_rms = sqrt(E[(dZ^l)^2]), dw_rms = sqrt(E[(dW^l)^2]).
    sigma_w2[l] = n_{l-1} Var(W^l) is what a phase diagram plots for each layer.
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
    z_std_pooled: Array
    dz_rms: Array
    dw_rms: Array


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
        gain2 = ACTIVATIONS[_gain_activation(net, i)].gain2
        var = init.variance(n_in, n_out, InitArgs(config.init_scale, config.init_mode, gain2))
        out.append(n_in * var * config.init_gain**2)
    return np.array(out)


def _bias_moments(config: Config, net: Network) -> tuple[Array, Array]:
    """Per layer (sigma_b^2, constant mean b): torch_default draws U(-1/sqrt(n_in), 1/sqrt(n_in)), variance 1/(3 n_in)."""
    fan_in = np.array(net.dims[:-1], float)
    if config.bias_init == "torch_default":
        return 1.0 / (3.0 * fan_in), np.zeros(net.depth)
    value = config.bias_value if config.bias_init == "constant" else 0.0
    return np.zeros(net.depth), np.full(net.depth, value)


def pair_mean(total: Array, squares: float, m: int) -> float:
    """The mean of v_k . v_k' over pairs of distinct examples k != k', from total = sum_k v_k and sum_k |v_k|^2."""
    return (float(np.dot(total, total)) - squares) / (m * (m - 1)) if m > 1 else 0.0


def output_dz_moments(output: str, q: float, q12: float, mean: float, y: Array, n_classes: int) -> tuple[float, float]:
    """(E[(dZ^L)^2], E[dZ^L(x) dZ^L(x')]) for dZ^L = A^L - Y at initialisation, labels independent of Z.

    Sigmoid, y in {0, 1}: E[(s - y)^2] = E[s^2] - 2 ybar E[s] + ybar, and for two examples
    E[s s'] - 2 ybar E[s] + mean(y y'). Softmax with K classes: with small logits every probability is about 1/K,
    so E[(dZ)^2] = (1/K)(1 - 1/K) and the pair moment is (1/K)(sum_c P_c - 1/K), P_c = share of pairs both in c.
    """
    y = np.asarray(y).reshape(-1)
    m = max(y.size, 1)
    if output == "sigmoid":
        s = ACTIVATIONS["sigmoid"].forward
        s1 = float(gaussian_expectation(s, q, mean))
        s2 = float(gaussian_expectation(lambda z: s(z) ** 2, q, mean))
        s12 = activation_cross_moment("sigmoid", q, q12, mean)
        ybar = float(y.mean()) if y.size else 0.5
        return s2 - 2 * ybar * s1 + ybar, s12 - 2 * ybar * s1 + pair_mean(np.array([y.sum()]), float(y.sum()), m)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    same_class = pair_mean(counts, float(counts.sum()), m)  # v_k = one-hot(y_k)
    k = float(n_classes)
    return (1 / k) * (1 - 1 / k), (1 / k) * (same_class - 1 / k)


def input_moments(x: Array) -> tuple[float, float]:
    """(mean x^2, mean over pairs of distinct examples of x.x' / n_0) for inputs x of shape (n_0, m)."""
    n0, m = x.shape
    square = float(np.dot(x.reshape(-1), x.reshape(-1)))
    return square / max(x.size, 1), pair_mean(x.sum(axis=1), square, m) / n0


def predict_for(config: Config, dataset, params: Params | None = None) -> Prediction:
    """The prediction for `config` on `dataset`'s training inputs, layer by layer, before anything is measured.

    For LSUV (data-dependent) the weights are drawn (or `params` used) and their variance read off.
    """
    net = Network.from_config(config, dataset.n_features, dataset.output_size)
    if INITIALIZERS[config.init].data_dependent and params is None:
        params = initialize(net, config, dataset.x_train.astype(config.dtype, copy=False))
    sigma_w2 = layer_sigma_w2(config, net, params)
    sigma_b2, bias_mean = _bias_moments(config, net)
    x = dataset.x_train
    input_q, input_q12 = input_moments(x)
    fwd = forward_variance(net.activations, sigma_w2, sigma_b2, input_q, bias_mean, input_q12)
    out = output_dz_moments(net.output, fwd.q[-1], fwd.q12[-1], bias_mean[-1], dataset.y_train, net.dims[-1])
    dz2, dw2 = backward_variance(net.activations, net.dims, sigma_w2, fwd, out, max(x.shape[1], 1))
    return Prediction(
        dims=net.dims, activations=net.activations, sigma_w2=sigma_w2, sigma_b2=sigma_b2, bias_mean=bias_mean,
        input_q=input_q, z_rms=np.sqrt(fwd.q), z_std=np.sqrt(np.maximum(fwd.q - fwd.z_mean**2, 0.0)),
        a_std=np.array([activation_std(net.layer_activation(i), fwd.q[i], fwd.z_mean[i]) for i in range(net.depth)]),
        z_std_pooled=np.sqrt(expected_measured_var(fwd, net.dims[1:], x.shape[1])),
        dz_rms=np.sqrt(dz2), dw_rms=np.sqrt(dw2),
    )


@dataclass(frozen=True)
class Comparison:
    """A prediction next to the probe's measurement at initialisation; measured rms = sqrt(var + mean^2)."""

    prediction: Prediction
    z_rms: Array
    z_std: Array
    a_std: Array
    dz_rms: Array
    dw_rms: Array

    def rows(self) -> list[dict]:
        """One dict per layer, predicted and measured side by side (for the CLI and tables)."""
        p = self.prediction
        return [
            {"layer": i + 1, "units": p.dims[i + 1], "sigma_w2": float(p.sigma_w2[i]),
             "z_std_predicted": float(p.z_std[i]), "z_std_measured": float(self.z_std[i]),
             "z_std_pooled_predicted": float(p.z_std_pooled[i]),
             "a_std_predicted": float(p.a_std[i]), "a_std_measured": float(self.a_std[i]),
             "z_rms_predicted": float(p.z_rms[i]), "z_rms_measured": float(self.z_rms[i]),
             "dz_rms_predicted": float(p.dz_rms[i]), "dz_rms_measured": float(self.dz_rms[i]),
             "dw_rms_predicted": float(p.dw_rms[i]), "dw_rms_measured": float(self.dw_rms[i])}
            for i in range(len(p.z_rms))
        ]


def measured_rms(stats: dict[str, Array], name: str) -> Array:
    """sqrt(E[h^2]) = sqrt(std^2 + mean^2) from a snapshot's per-layer stats, h in z, dz, dw."""
    return np.sqrt(stats[f"{name}_std"] ** 2 + stats[f"{name}_mean"] ** 2)


def compare(config: Config, dataset, limits=None) -> Comparison:
    """Probe `config` once at initialisation and set the prediction (from the same drawn weights for LSUV) beside it."""
    _, params, snapshot = probe(config, dataset, limits)
    s = snapshot.stats
    return Comparison(predict_for(config, dataset, params), measured_rms(s, "z"), s["z_std"], s["a_std"],
                      measured_rms(s, "dz"), measured_rms(s, "dw"))


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
