"""Mean-field theory of a stack of layers: Gaussian expectations of an activation, and the forward and backward maps
of the second moments through the layers (what each layer's statistics should be at initialisation).

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

Gaussian expectations use Gauss-Hermite quadrature (probabilists' nodes, weights normalised to sum 1); functions
with a kink at 0 (relu, elu, selu, and their derivatives) are integrated on each side of the kink separately, by
Gauss-Legendre, because a kink spoils Gauss-Hermite's convergence; so are wide Gaussians (variance > 2), against
which tanh' is a spike that falls between Hermite's nodes. Relu, leaky relu and linear have closed forms.
The order and chaos of identical layers is in criticality.py, the prediction for a concrete network in theory.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from .activations import ACTIVATIONS, LEAKY_SLOPE

Array = np.ndarray

HERMITE_POINTS = 96
LEGENDRE_POINTS = 160
HERMITE_MAX_Q = 2.0  # beyond this variance the split rule below is used (see expectation)
TAIL = 12.0  # a standard normal beyond 12 sigma carries < 1e-32 of the mass
KINKED = frozenset({"relu", "leaky_relu", "elu", "selu"})  # phi or phi' not smooth at 0
# E[phi(z)^2] = c2 * q and E[phi'(z)^2] = d2 for z ~ N(0, q): positively homogeneous activations.
HOMOGENEOUS = {"relu": (0.5, 0.5), "leaky_relu": ((1 + LEAKY_SLOPE**2) / 2,) * 2, "linear": (1.0, 1.0)}

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


def expectation(name: str, f: Callable[[Array], Array], q, mean) -> Array:
    """E[f(Z)] for Gaussian Z with second moment q and mean `mean`, by the quadrature that suits activation `name`."""
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
    return expectation(name, lambda z: phi(z) ** 2, q, mean)


def derivative_second_moment(name: str, q, mean=0.0) -> Array:
    """E[phi'(Z)^2] for Z as above; closed form 1/2 for relu, 1 for linear."""
    q = np.asarray(q, float)
    if name in HOMOGENEOUS and not np.any(mean):
        return np.full(np.broadcast(q, mean).shape, HOMOGENEOUS[name][1])
    slope = phi_prime(name)
    return expectation(name, lambda z: slope(z) ** 2, q, mean)


def activation_mean(name: str, q, mean=0.0) -> Array:
    """E[phi(Z)] for Gaussian Z with second moment q and mean `mean`."""
    return expectation(name, ACTIVATIONS[name].forward, q, mean)


def phi_prime(name: str) -> Callable[[Array], Array]:
    """The activation's derivative phi'(z) as a function of z alone."""
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
    f = phi_prime(name) if derivative else ACTIVATIONS[name].forward
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
        return f(u1) * expectation(name, f, conditional_mean**2 + conditional_var, conditional_mean)

    return float(expectation(name, outer, q, mean))


# --- forward and backward through a concrete stack of layers ---------------------------------------------------
@dataclass(frozen=True)
class Forward:
    """Per layer l = 1..L: q = E[(Z^l)^2] for one input, q12 = E[Z^l(x) Z^l(x')] for two different inputs,
    z_mean = the constant bias b; a2, a12, a_mean: the same moments of the layer's input A^{l-1} (A^0 = x, whose
    mean is not used), so a2[l + 1] is E[(A^l)^2] for a hidden layer l."""

    q: Array
    q12: Array
    z_mean: Array
    a2: Array
    a12: Array
    a_mean: Array


def forward_variance(activations: Sequence[str] | str, sigma_w2, sigma_b2, input_q: float, bias_mean=0.0,
                     input_q12: float = 0.0, skip=0.0) -> Forward:
    """The mean-field forward map through L layers, each with its own sigma_{w,l}^2.

    q^1 = sigma_{w,1}^2 * input_q + sigma_b^2 + b^2,  q^l = sigma_{w,l}^2 E[(A^{l-1})^2] + sigma_b^2 + b^2, where
    A^l = phi_l(Z^l), phi_l is ``activations[l-1]`` (one name for all; the name after the last layer is not used)
    and b a constant bias mean (0 for random or zero biases). The cross moment of two inputs follows the same map
    with E[phi(Z(x)) phi(Z(x'))] (Poole et al.'s covariance map), starting from input_q12 = mean x.x' / n_0.

    A layer with skip[l - 1] = alpha > 0 is a residual block A^l = A^{l-1} + alpha phi(Z^l) (Yang & Schoenholz
    2017's reduced residual network). Z^l's weights are independent of A^{l-1}, so E[A^{l-1}_j phi(Z^l_j)] =
    E[A^{l-1}] E[phi(Z^l)] and
        E[(A^l)^2] = E[(A^{l-1})^2] + 2 alpha E[A^{l-1}] E[phi(Z^l)] + alpha^2 E[phi(Z^l)^2],
        E[A^l] = E[A^{l-1}] + alpha E[phi(Z^l)]:
    relu's positive mean adds a cross term; with He weights and alpha = 1 the second moment more than doubles per
    block. The first layer maps the input and has no skip.
    """
    sigma_w2 = np.atleast_1d(np.asarray(sigma_w2, float))
    depth = len(sigma_w2)
    sigma_b2 = np.broadcast_to(np.asarray(sigma_b2, float), (depth,))
    mean = np.broadcast_to(np.asarray(bias_mean, float), (depth,))
    alpha = np.broadcast_to(np.asarray(skip, float), (depth,))
    if alpha[0] > 0:
        raise TheoryError("the first layer maps the input's width and cannot add its input")
    names = [activations] * depth if isinstance(activations, str) else list(activations)
    q, q12, a2, a12, a_mean = (np.empty(depth) for _ in range(5))
    a2[0], a12[0], a_mean[0] = input_q, input_q12, math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(depth):
            q[l] = sigma_w2[l] * a2[l] + sigma_b2[l] + mean[l] ** 2
            q12[l] = sigma_w2[l] * a12[l] + sigma_b2[l] + mean[l] ** 2
            if l == depth - 1:
                break
            name = names[l]
            phi2 = activation_second_moment(name, q[l], mean[l])
            phi12 = activation_cross_moment(name, q[l], q12[l], mean[l]) if math.isfinite(q[l]) else math.nan
            phi_mean = activation_mean(name, q[l], mean[l]) if math.isfinite(q[l]) else math.nan
            if alpha[l] > 0:  # a residual block: its output is its input plus the branch
                a2[l + 1] = a2[l] + 2 * alpha[l] * a_mean[l] * phi_mean + alpha[l] ** 2 * phi2
                a12[l + 1] = a12[l] + 2 * alpha[l] * a_mean[l] * phi_mean + alpha[l] ** 2 * phi12
                a_mean[l + 1] = a_mean[l] + alpha[l] * phi_mean
            else:
                a2[l + 1], a12[l + 1], a_mean[l + 1] = phi2, phi12, phi_mean
    return Forward(q, q12, mean.copy(), a2, a12, a_mean)


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
                      output_moments: tuple[float, float], skip=0.0) -> tuple[Array, Array]:
    """E[(dZ^l)^2] and E[dZ^l(x) dZ^l(x')] for l = 1..L, from those of the output layer.

    dA^l = W^{l+1 T} dZ^{l+1} (+ dA^{l+1} when layer l+1 is a residual block) and dZ^l = g phi_l'(Z^l) dA^l, g = alpha
    in a residual block, else 1. With gradients independent of the forward weights (as mean field assumes) the
    two terms of dA^l are uncorrelated:
        E[(dA^l)^2] = n_{l+1} Var(W^{l+1}) E[(dZ^{l+1})^2] + E[(dA^{l+1})^2],  E[(dZ^l)^2] = g^2 E[phi'^2] E[(dA^l)^2]
    with n_{l+1} Var(W^{l+1}) = sigma_{w,l+1}^2 n_{l+1} / n_l (Glorot & Bengio 2010; He et al. 2015; Yang &
    Schoenholz 2017 with the skip). The cross moment of two examples follows with E[phi'(Z(x)) phi'(Z(x'))].
    """
    sigma_w2 = np.asarray(sigma_w2, float)
    depth = len(sigma_w2)
    alpha = np.broadcast_to(np.asarray(skip, float), (depth,))
    dz2, dz12 = np.empty(depth), np.empty(depth)
    dz2[-1], dz12[-1] = output_moments
    da2 = da12 = 0.0  # E[(dA^{l+1})^2] and its cross moment, carried down the skips
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(depth - 2, -1, -1):
            fan = sigma_w2[l + 1] * dims[l + 2] / dims[l + 1]
            carried = (da2, da12) if alpha[l + 1] > 0 else (0.0, 0.0)
            da2, da12 = fan * dz2[l + 1] + carried[0], fan * dz12[l + 1] + carried[1]
            gain2 = alpha[l] ** 2 if alpha[l] > 0 else 1.0
            name, q, mean = activations[l], fwd.q[l], fwd.z_mean[l]
            dz2[l] = gain2 * da2 * derivative_second_moment(name, q, mean)
            dz12[l] = (gain2 * da12 * activation_cross_moment(name, q, fwd.q12[l], mean, derivative=True)
                       if math.isfinite(q) else math.nan)
    return dz2, dz12
