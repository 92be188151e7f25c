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
  Stds are predicted as a probe measures them, about the layer's mean over n units x m examples (`pooled_variance`).
* Order and chaos (Schoenholz et al. 2017): the fixed point q* of the forward map; chi_1 = sigma_w^2
  E[phi'(sqrt(q*) z)^2], the factor by which gradients shrink (chi_1 < 1, ordered) or grow (> 1, chaotic) per
  layer; the depth scales xi_q = -1/ln chi_q (q^l settling to q*, chi_q the variance map's slope at q*) and
  xi_c = -1/ln chi_c* (two inputs' correlation settling to the correlation map's stable fixed point c*, chi_c* the
  slope there: c* = 1 and chi_c* = chi_1 unless chaotic). Both are infinite on the critical line chi_1 = 1.
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
from .initializers import INITIALIZERS
from .limits import Limits
from .network import Network, Params, init_args, initialize
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
SOFTMAX_POINTS = 4000  # grid points per axis for E[sum p^2] of a softmax (enough up to logit std ~100)

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
    total = np.sum(_H_WEIGHTS * f(mean[..., None] + std[..., None] * _H_NODES), axis=-1)
    return np.where(std > 0, total, f(mean))  # exactly f(mean) for a point mass: chi_1 = 1 at q* = 0 is exact


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


def activation_mean(name: str, q, mean=0.0) -> Array:
    """E[phi(Z)] for Gaussian Z with second moment q and mean `mean`."""
    return _expectation(name, ACTIVATIONS[name].forward, q, mean)


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
    z_mean = the constant bias b."""

    q: Array
    q12: Array
    z_mean: Array


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
    return Forward(q, q12, mean.copy())


def pooled_variance(second, cross, mean, units, batch: int) -> Array:
    """E[Var] as a probe measures it: over a layer's n x m values about their common mean, averaged over draws.

    For values h with E[h^2] = second, E[h(x) h(x')] = cross (one unit, two examples) and E[h] = mean, units
    independent given the layer below (mean field): a unit's mean over the batch has E[mu_j^2] = (second + (m - 1)
    cross) / m, and the layer's mean averages n of them, so E[Var] = second - mean^2 - (E[mu_j^2] - mean^2) / n.
    Inputs correlated across examples give each unit an offset that a narrow layer does not average away: one
    output unit of a deep relu network sees nearly the same value for every example, its spread far below sqrt(q).
    """
    unit_mean2 = (np.asarray(second) + (batch - 1) * np.asarray(cross)) / batch
    return np.maximum(second - mean**2 - (unit_mean2 - mean**2) / np.asarray(units, float), 0.0)


def backward_variance(activations: Sequence[str], dims: Sequence[int], sigma_w2, fwd: Forward,
                      output_moments: tuple[float, float]) -> tuple[Array, Array]:
    """E[(dZ^l)^2] and E[dZ^l(x) dZ^l(x')] for l = 1..L, from those of the output layer.

    E[(dZ^l)^2] = E[(dZ^{l+1})^2] * n_{l+1} Var(W^{l+1}) * E[phi_l'(Z^l)^2], n_{l+1} Var(W^{l+1}) =
    sigma_{w,l+1}^2 n_{l+1} / n_l (gradients independent of the forward weights, as mean field assumes); the cross
    moment of two examples follows with E[phi'(Z(x)) phi'(Z(x'))].
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
    return dz2, dz12


# --- order and chaos -------------------------------------------------------------------------------------------
CRITICAL_TOL = 1e-12  # |chi - 1| within this is the critical line itself: quadrature rounds 1 to 1 +- 1e-16
BRACKET_STEPS = 100  # doublings (or halvings) of q searched for a sign change of the fixed-point equation
ROOT_STEPS = 200  # Illinois steps on a bracket: it converges superlinearly, so ~10 are usually enough
BISECTIONS = 80  # halvings of the correlation map's bracket, to 1e-15
C_STEP = 0.05  # the downward scan from c = 1 for the correlation map's stable fixed point


def _residual(activation: str, q: Array, sw2: Array, sb2: Array) -> Array:
    """F(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 - q: zero at a fixed point; F(0) >= 0 always."""
    return sw2 * activation_second_moment(activation, q) + sb2 - q


def fixed_point(activation: str, sigma_w2, sigma_b2, q0: float = 1.0, rtol: float = 0.0) -> Array:
    """The fixed point q* that the map q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 reaches from q0; inf where
    q grows without bound. Broadcasts over sigma_w2 and sigma_b2.

    Relu, leaky relu and linear have E[phi^2] = c2 q: q* = sigma_b^2 / (1 - sigma_w^2 c2) where sigma_w^2 c2 < 1;
    at sigma_w^2 c2 = 1 without bias every q is fixed (q* = q0); otherwise there is none. Any other activation:
    the map increases with q, so from q0 the iterates move monotonically to the nearest root of F(q) = map(q) - q
    on the side F(q0) points to. That root is bracketed by doubling q from the first iterate (upwards) or halving
    it from q0 (downwards) until F changes sign, then narrowed to a few ulp (or to rtol relative) by the Illinois
    method: regula falsi that halves a stuck end's F, so the root stays bracketed and convergence is superlinear.
    Past Q_MAX upwards there is no finite fixed point; downwards the bracket's last resort is [0, q0 2^-100], as
    F(0) = sigma_w^2 phi(0)^2 + sigma_b^2 >= 0, and F(0) = 0 makes q* = 0 there (tanh without bias, sigma_w^2 <= 1).
    Raises TheoryError if a bracket has not closed after ROOT_STEPS steps.
    """
    sw2, sb2 = (a.astype(float).reshape(-1) for a in np.broadcast_arrays(np.asarray(sigma_w2, float),
                                                                         np.asarray(sigma_b2, float)))
    shape = np.broadcast(np.asarray(sigma_w2), np.asarray(sigma_b2)).shape
    if activation in HOMOGENEOUS:
        slope = sw2 * HOMOGENEOUS[activation][0]
        with np.errstate(divide="ignore", invalid="ignore"):
            stable = np.where(slope < 1, sb2 / (1 - slope), np.inf)
        neutral = (np.abs(slope - 1) <= CRITICAL_TOL) & (sb2 == 0)
        return np.where(neutral, float(q0), stable).reshape(shape)
    q0 = np.full(sw2.shape, float(q0))
    f0 = _residual(activation, q0, sw2, sb2)
    lo = np.where(f0 > 0, q0 + f0, 0.0)  # F(lo) >= 0: the first iterate (upwards), else 0 until a sign change
    hi = np.where(f0 > 0, np.inf, q0)  # F(hi) < 0
    unbounded = np.zeros(sw2.shape, bool)
    rising = np.flatnonzero(f0 > 0)
    for _ in range(BRACKET_STEPS):
        if rising.size == 0:
            break
        trial = 2.0 * lo[rising]
        below = _residual(activation, trial, sw2[rising], sb2[rising]) < 0
        hi[rising[below]], lo[rising[~below]] = trial[below], trial[~below]
        rising = rising[~below]
        unbounded[rising[lo[rising] > Q_MAX]] = True
        rising = rising[lo[rising] <= Q_MAX]
    unbounded[rising] = True
    falling = np.flatnonzero(f0 < 0)
    for _ in range(BRACKET_STEPS):
        if falling.size == 0:
            break
        trial = 0.5 * hi[falling]
        above = _residual(activation, trial, sw2[falling], sb2[falling]) >= 0
        lo[falling[above]], hi[falling[~above]] = trial[above], trial[~above]
        falling = falling[~above]
    at_zero = np.zeros(sw2.shape, bool)  # never non-negative down to q0 2^-100: is 0 itself the fixed point?
    at_zero[falling] = _residual(activation, np.zeros(falling.size), sw2[falling], sb2[falling]) == 0
    pending = np.flatnonzero((f0 != 0) & ~unbounded & ~at_zero)
    f_lo = _residual(activation, lo[pending], sw2[pending], sb2[pending])
    f_hi = _residual(activation, hi[pending], sw2[pending], sb2[pending])
    last = np.zeros(pending.size)  # which end moved last: +1 lo, -1 hi (Illinois halves the other end's F)
    for _ in range(ROOT_STEPS):
        wide = hi[pending] - lo[pending] > np.maximum(4 * np.spacing(hi[pending]), rtol * hi[pending])
        pending, f_lo, f_hi, last = pending[wide], f_lo[wide], f_hi[wide], last[wide]
        if pending.size == 0:
            break
        a, b = lo[pending], hi[pending]
        trial = np.clip(b - f_hi * (b - a) / (f_hi - f_lo), a, b)  # the secant through the bracket's ends
        f_trial = _residual(activation, trial, sw2[pending], sb2[pending])
        above = f_trial >= 0
        lo[pending[above]], hi[pending[~above]] = trial[above], trial[~above]
        hit = f_trial == 0  # an exact root: close the bracket on it
        hi[pending[hit]] = trial[hit]
        f_hi = np.where(above, np.where(last > 0, 0.5 * f_hi, f_hi), f_trial)
        f_lo = np.where(above, f_trial, np.where(last < 0, 0.5 * f_lo, f_lo))
        last = np.where(above, 1.0, -1.0)
    if pending.size:
        raise TheoryError(f"the fixed point of the variance map did not converge in {ROOT_STEPS} steps for "
                          f"sigma_w^2 = {sw2[pending[0]]:g}, sigma_b^2 = {sb2[pending[0]]:g}; try nearby values")
    q = np.where(f0 == 0, q0, 0.5 * (lo + hi))
    return np.where(unbounded, np.inf, np.where(at_zero, 0.0, q)).reshape(shape)


def chi_1(activation: str, sigma_w2, sigma_b2, q_star=None) -> Array:
    """chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]: < 1 ordered (gradients vanish), > 1 chaotic (they explode).

    Where q* is infinite (relu with sigma_w^2 > 2) the slope is taken at Q_MAX: its limit, exact for homogeneous phi.
    """
    if q_star is None:
        q_star = fixed_point(activation, sigma_w2, sigma_b2)
    q = np.minimum(np.asarray(q_star, float), Q_MAX)
    return np.asarray(sigma_w2, float) * derivative_second_moment(activation, q)


def phase_name(chi: float) -> str:
    """ordered, critical or chaotic, by chi_1 (critical within CRITICAL_TOL of 1)."""
    if abs(chi - 1.0) <= CRITICAL_TOL:
        return "critical"
    return "ordered" if chi < 1.0 else "chaotic"


def depth_scale(chi: float) -> float:
    """-1 / ln chi for a slope chi <= 1 of a map at its stable fixed point: the layers over which a deviation from
    the fixed point shrinks by a factor e; inf on the critical line (within CRITICAL_TOL)."""
    if abs(chi - 1.0) <= CRITICAL_TOL:
        return math.inf
    return -1.0 / math.log(chi)


def q_map_slope(activation: str, sigma_w2: float, q_star: float) -> float:
    """chi_q = d/dq [sigma_w^2 E[phi(sqrt(q) z)^2]] at q*: by Stein's lemma sigma_w^2 E[phi' ^2 + phi phi''] =
    sigma_w^2 E[phi(u) phi'(u) u] / q for u ~ N(0, q) (no second derivative needed). At q* = 0 (where phi(0) = 0)
    it is sigma_w^2 phi'(0)^2 = chi_1; for relu, leaky relu and linear it is sigma_w^2 c2."""
    if activation in HOMOGENEOUS:
        return sigma_w2 * HOMOGENEOUS[activation][0]
    slope = _derivative(activation)
    if q_star == 0.0:
        return sigma_w2 * float(slope(np.zeros(1))[0]) ** 2
    phi = ACTIVATIONS[activation].forward
    return sigma_w2 * float(_expectation(activation, lambda u: phi(u) * slope(u) * u, q_star, 0.0)) / q_star


def correlation_map(activation: str, sigma_w2: float, sigma_b2: float, q_star: float, c: float,
                    derivative: bool = False) -> float:
    """Schoenholz et al.'s correlation map at the fixed point q*: c -> (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2)/q*
    for u1, u2 ~ N(0, q*) with correlation c; with derivative=True its slope sigma_w^2 E[phi'(u1) phi'(u2)]."""
    moment = activation_cross_moment(activation, q_star, c * q_star, derivative=derivative)
    return sigma_w2 * moment if derivative else (sigma_w2 * moment + sigma_b2) / q_star


def correlation_fixed_point(activation: str, sigma_w2: float, sigma_b2: float, q_star: float, chi1: float) -> float:
    """c*, the stable fixed point of the correlation map that correlations just below 1 go to.

    Ordered or critical (chi_1 <= 1): c* = 1. Chaotic: c = 1 repels (slope chi_1 > 1), and the map's Hermite series
    has non-negative coefficients (convex on [0, 1]), so the largest root of G(c) = map(c) - c below 1 is the stable
    one. G < 0 just below 1 (found by moving closer to 1 until it is), G(-1) >= 0 (Cauchy-Schwarz): a downward scan
    in steps of C_STEP finds the first c with G >= 0, and bisection the root in that step.
    """
    if chi1 <= 1.0 + CRITICAL_TOL:
        return 1.0

    def gap(c: float) -> float:
        return correlation_map(activation, sigma_w2, sigma_b2, q_star, c) - c

    hi = 1.0 - C_STEP
    while gap(hi) >= 0:  # near 1 the gap is -(chi_1 - 1)(1 - c) + O((1 - c)^2): get close enough for its sign
        hi = 1.0 - (1.0 - hi) / 16
        if 1.0 - hi < 1e-15:
            raise TheoryError(f"the correlation map's fixed point could not be separated from c = 1 "
                              f"(chi_1 = {chi1:.15g}): treat this setting as critical")
    lo = hi - C_STEP
    while lo > -1.0 and gap(lo) < 0:
        hi, lo = lo, max(lo - C_STEP, -1.0)
    for _ in range(BISECTIONS):
        if hi - lo <= 1e-15:
            break
        mid = 0.5 * (lo + hi)
        if gap(mid) >= 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Criticality:
    """Order and chaos of identical layers (Schoenholz et al. 2017), for one (activation, sigma_w^2, sigma_b^2).

    q_star: the fixed point of the variance map (inf: q grows without bound); chi_1: the slope of the gradient (and,
    at c = 1, of the correlation) map; phase from chi_1; chi_q: the slope of the variance map at q*, whose depth
    scale xi_q = -1/ln chi_q counts the layers over which q^l settles to q*; c_star: the correlation map's stable
    fixed point (1 unless chaotic), chi_c its slope there, xi_c = -1/ln chi_c the layers over which the correlation of
    two inputs settles: Schoenholz et al. find networks trainable to about 6 xi_c layers (trainable_depth). Depth
    scales are inf on the critical line and nan where there is no finite fixed point.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    phase: str
    chi_q: float
    xi_q: float
    c_star: float
    chi_c: float
    xi_c: float

    @property
    def trainable_depth(self) -> float:
        return 6.0 * self.xi_c

    def as_json(self) -> dict:
        """The numbers for JSON: q_star null where there is no finite fixed point, depth scales "inf" on the
        critical line and null where they are not defined."""
        def number(x: float):
            return "inf" if x == math.inf else x if math.isfinite(x) else None

        return {"q_star": number(self.q_star) if math.isfinite(self.q_star) else None, "chi_1": self.chi_1,
                "phase": self.phase, "chi_q": number(self.chi_q), "xi_q": number(self.xi_q),
                "c_star": number(self.c_star), "chi_c": number(self.chi_c), "xi_c": number(self.xi_c),
                "trainable_depth": number(self.trainable_depth)}


NO_FIXED_POINT = "no finite fixed point (q grows without bound)"


def describe(x: float, digits: int = 4) -> str:
    """A depth scale or fixed point for people: ∞ on the critical line, "none" where undefined."""
    if x == math.inf:
        return "∞"
    return f"{x:.{digits}g}" if math.isfinite(x) else "none"


def criticality(activation: str, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> Criticality:
    """Everything above for one setting; q0 is where the variance map starts (it matters only for relu-like maps
    with sigma_w^2 c2 = 1 and no bias, where every q is a fixed point)."""
    q_star = float(fixed_point(activation, sigma_w2, sigma_b2, q0))
    chi = float(chi_1(activation, sigma_w2, sigma_b2, q_star))
    phase = phase_name(chi)
    if not math.isfinite(q_star):
        return Criticality(activation, sigma_w2, sigma_b2, q_star, chi, phase, *(math.nan,) * 5)
    chi_q = q_map_slope(activation, sigma_w2, q_star)
    c_star = correlation_fixed_point(activation, sigma_w2, sigma_b2, q_star, chi)
    chi_c = chi if c_star == 1.0 else correlation_map(activation, sigma_w2, sigma_b2, q_star, c_star, derivative=True)
    return Criticality(activation, sigma_w2, sigma_b2, q_star, chi, phase, chi_q, depth_scale(chi_q), c_star, chi_c,
                       depth_scale(chi_c))


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
    """chi_1 on the grid, shape (len(sigma_b2), len(sigma_w2)), for the phase diagram's heatmap (q* to 1e-9,
    plenty for a colour)."""
    sw2, sb2 = np.meshgrid(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float))
    return chi_1(activation, sw2, sb2, fixed_point(activation, sw2, sb2, rtol=1e-9))


@dataclass(frozen=True)
class MeanField:
    """The forward map of a uniform network, q^1..q^depth, and the order and chaos of its layers."""

    q: Array
    criticality: Criticality


def mean_field(activation: str, sigma_w2: float, sigma_b2: float, depth: int, input_q: float = 1.0) -> MeanField:
    """Everything the CLI's ``theory --sigma-w2`` prints, for `depth` identical layers of one activation; the
    fixed point is the one the map reaches from q^1."""
    q = forward_variance(activation, np.full(depth, sigma_w2), sigma_b2, input_q).q
    return MeanField(q, criticality(activation, sigma_w2, sigma_b2, q0=float(q[0])))


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
    dz_mean, *out = output_dz_moments(net.output, fwd.q[-1], fwd.q12[-1], bias_mean[-1], dataset.y_train, net.dims[-1])
    dz2, dz12 = backward_variance(net.activations, net.dims, sigma_w2, fwd, tuple(out))
    units, m = np.array(net.dims[1:], float), max(x.shape[1], 1)
    a_second, a_cross, a_mean = (np.full(net.depth, math.nan) for _ in range(3))
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(net.depth):
            name, q, b = net.layer_activation(i), fwd.q[i], fwd.z_mean[i]
            if name in ACTIVATIONS and math.isfinite(q):  # not softmax, which is not elementwise
                a_second[i], a_mean[i] = activation_second_moment(name, q, b), activation_mean(name, q, b)
                a_cross[i] = activation_cross_moment(name, q, fwd.q12[i], b)
        dz_var = pooled_variance(dz2, dz12, np.append(np.zeros(net.depth - 1), dz_mean), units, m)
        if net.output == "softmax":  # its K gradients sum to 0 for every example: the layer's mean is exactly 0
            dz_var[-1] = dz2[-1]
    return Prediction(
        dims=net.dims, activations=net.activations, sigma_w2=sigma_w2, sigma_b2=sigma_b2, bias_mean=bias_mean,
        input_q=input_q, z_rms=np.sqrt(fwd.q), z_std=np.sqrt(pooled_variance(fwd.q, fwd.q12, fwd.z_mean, units, m)),
        a_std=np.sqrt(pooled_variance(a_second, a_cross, a_mean, units, m)), dz_rms=np.sqrt(dz2),
        dz_std=np.sqrt(dz_var),
    )


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


def compare(config: Config, dataset, limits: Limits = Limits()) -> Comparison:
    """Probe `config` once at initialisation and set the prediction (from the same drawn weights for LSUV) beside it."""
    _, params, snapshot = probe(config, dataset, limits)
    s = snapshot.stats
    return Comparison(predict_for(config, dataset, params), measured_rms(s, "z"), s["z_std"], s["a_std"],
                      measured_rms(s, "dz"), s["dz_std"])


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
