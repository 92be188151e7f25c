"""Mean-field theory of a batch-normalised stack at initialisation (Yang et al. 2019, "A mean field theory of batch
normalization"), for the engine's layers: Z^l = gamma BN(W^l A^{l-1} + b^l) + beta, A^l = phi(Z^l), gamma = 1 and
beta = 0, BN over the m examples of the batch with PyTorch's eps (core/normalization.py).

* Forward. Each unit's pre-normalisation H = W A + b has batch variance v^l = sigma_{w,l}^2 Var(A^{l-1}) (the bias
  is constant over the batch and cancels), so Z^l = (H - mean) / sqrt(v^l + eps) has mean 0 and variance
  s_l^2 = v^l / (v^l + eps) whatever the weights' scale: 1 unless v^l is as small as eps.
* Backward. BN's gradient dH = (g - mean(g) - Z mean(g Z)) / sqrt(v + eps), g = dZ = phi'(Z) dA, removes from
  each unit's gradient its batch mean and its component along Z; what is left is divided by the standard
  deviation that BN divided the forward signal by. dA^{l-1} = W^{l T} dH^l then has E[(dA^{l-1})^2] =
  n_l Var(W^l) E[(dH^l)^2]: the weights' scale cancels against v^l, and per layer
      E[(dA^{l-1})^2] / E[(dA^l)^2] -> E[phi'(u)^2] / Var(phi(u)),  u ~ N(0, 1)
  for square layers, a large batch and v >> eps: pi / (pi - 1) = 1.467 for relu, as Yang et al. find, so the
  gradient's norm grows by sqrt(pi / (pi - 1)) = 1.21 per layer towards the input (gradient explosion that no
  choice of sigma_w^2 removes); tanh's factor, by quadrature, is 1.085. That is Yang et al.'s large-batch limit:
  a batch of m examples raises the factor by O(1/m) (measured at m = 128 on 500 units: relu 1.213, tanh 1.091).
  Where v^l is not much above eps (tiny weights on narrow layers), eps keeps BN from normalising fully and the
  gradient shrinks instead: that too follows from the maps below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .meanfield import Array, activation_cross_moment, activation_mean, activation_second_moment, derivative_second_moment


def batchnorm_gradient_factor(activation: str) -> float:
    """sqrt(E[phi'(u)^2] / Var(phi(u))), u ~ N(0, 1): how much a gradient's norm grows per batch-normalised layer
    of equal widths, in a large batch (Yang et al. 2019; sqrt(pi / (pi - 1)) for relu)."""
    variance = float(activation_second_moment(activation, 1.0)) - float(activation_mean(activation, 1.0)) ** 2
    return math.sqrt(float(derivative_second_moment(activation, 1.0)) / variance)


def gradient_growth(dz_rms) -> float:
    """The geometric mean of the factor by which dZ's rms grows per layer towards the input, over the hidden layers
    below the top one (the output layer and the top hidden layer, fed by it directly, are not alike); nan for
    fewer than four layers."""
    hidden = np.asarray(dz_rms, float)[:-1]
    if hidden.size < 3:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.exp(np.mean(np.log(hidden[:-2] / hidden[1:-1]))))


@dataclass(frozen=True)
class NormalisedForward:
    """Per hidden layer: v = the pre-normalisation batch variance, s2 = E[Z^2] after BN; a2, a12, a_mean: the
    second moment, the cross moment of two examples and the mean of A^l = phi(Z^l)."""

    v: Array
    s2: Array
    a2: Array
    a12: Array
    a_mean: Array


def pair_correlation(m: int) -> float:
    """The mean correlation of two examples of one unit after BN: its m values sum to zero, so -1 / (m - 1)."""
    return -1.0 / (m - 1) if m > 1 else 0.0


def batchnorm_forward(activations: Sequence[str], sigma_w2, input_var: float, m: int, eps: float
                      ) -> NormalisedForward:
    """The forward map through the hidden layers; sigma_w2 per hidden layer, input_var = the inputs' variance over
    the batch averaged over features."""
    depth = len(activations)
    v, s2, a2, a12, a_mean = (np.empty(depth) for _ in range(5))
    spread = input_var
    for l, name in enumerate(activations):
        v[l] = sigma_w2[l] * spread
        s2[l] = v[l] / (v[l] + eps)
        a2[l], a_mean[l] = activation_second_moment(name, s2[l]), activation_mean(name, s2[l])
        a12[l] = activation_cross_moment(name, s2[l], s2[l] * pair_correlation(m))
        spread = a2[l] - a_mean[l] ** 2
    return NormalisedForward(v, s2, a2, a12, a_mean)


def batchnorm_backward(activations: Sequence[str], dims: Sequence[int], sigma_w2, fwd: NormalisedForward,
                       output_moments: tuple[float, float], m: int, eps: float) -> tuple[Array, Array]:
    """E[(dZ^l)^2] and E[dZ^l(x) dZ^l(x')] for every layer (the output's given), dZ at the activation's input.

    BN's removal of each unit's batch mean and of its component along Z is left out of E[(dH)^2]: it is of order
    1/m, and at m = 128 its O(1/m) corrections (Yang et al. derive them) move the per-layer factor by under 1%.
    Its effect on two examples is kept: every unit's dH sums to zero over the batch, so the dA below do.
    """
    depth = len(dims) - 1
    dz2, dz12 = np.empty(depth), np.empty(depth)
    dz2[-1], dz12[-1] = output_moments
    fan = sigma_w2[-1] * dims[-1] / dims[-2]
    da2, da12 = fan * dz2[-1], fan * dz12[-1]
    for l in range(depth - 2, -1, -1):
        name, s2 = activations[l], fwd.s2[l]
        dz2[l] = derivative_second_moment(name, s2) * da2
        dz12[l] = activation_cross_moment(name, s2, s2 * pair_correlation(m), derivative=True) * da12
        da2 = sigma_w2[l] * dims[l + 1] / dims[l] * dz2[l] / (fwd.v[l] + eps)
        da12 = da2 * pair_correlation(m)
    return dz2, dz12
