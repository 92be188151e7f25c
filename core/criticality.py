"""Order and chaos of identical layers (Schoenholz et al. 2017): the fixed point q* of the mean-field forward map;
chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2], the factor by which gradients shrink (chi_1 < 1, ordered) or grow (> 1,
chaotic) per layer; the depth scales xi_q = -1/ln chi_q (q^l settling to q*, chi_q the variance map's slope at q*)
and xi_c = -1/ln chi_c* (two inputs' correlation settling to the correlation map's stable fixed point c*, chi_c* the
slope there: c* = 1 and chi_c* = chi_1 unless chaotic). Both are infinite on the critical line chi_1 = 1.
The Gaussian expectations and the forward map are meanfield.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS
from .meanfield import (HOMOGENEOUS, Array, TheoryError, activation_cross_moment, activation_second_moment,
                        derivative_second_moment, expectation, forward_variance, phi_prime)

Q_MAX = 1e12  # a forward map above this is reported as diverging (q* = inf)
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
    slope = phi_prime(activation)
    if q_star == 0.0:
        return sigma_w2 * float(slope(np.zeros(1))[0]) ** 2
    phi = ACTIVATIONS[activation].forward
    return sigma_w2 * float(expectation(activation, lambda u: phi(u) * slope(u) * u, q_star, 0.0)) / q_star


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
