"""Activation functions phi(z), their derivatives phi'(z), and the gains that initialisers use.

Every activation is a pair of element-wise functions over NumPy arrays. The derivative takes both Z and
A = phi(Z), because most derivatives are cheapest in terms of the output (tanh' = 1 - A^2).
All functions keep the dtype of their input: scalars are Python floats, which NumPy treats as "weak" and
never promotes a float32 array with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numba
import numpy as np

Array = np.ndarray

LEAKY_SLOPE = 0.01
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """An element-wise nonlinearity: forward, derivative, and how it behaves at initialisation.

    gain2: the square of PyTorch's ``calculate_gain``, the factor that restores unit variance after the
        nonlinearity. Kept squared so that He's ``2 / n`` is exactly 2 / n, not sqrt(2)**2 / n.
    saturation: the interval outside which A counts as saturated (None: never saturates).
    can_die: whether A == 0 marks a dead value (relu).
    bounds: the range of A, when it is bounded (used for natural histogram edges).
    """

    name: str
    forward: Callable[[Array], Array]
    derivative: Callable[[Array, Array], Array]
    gain2: float
    saturation: tuple[float, float] | None = None
    can_die: bool = False
    bounds: tuple[float, float] | None = None

    @property
    def gain(self) -> float:
        return math.sqrt(self.gain2)


def _sigmoid(z: Array) -> Array:
    # exp of a negative number never overflows: split by sign.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_grad(z: Array, a: Array) -> Array:
    return (z > 0).astype(z.dtype)


def _leaky_relu(z: Array) -> Array:
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def _leaky_relu_grad(z: Array, a: Array) -> Array:
    return np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype)


def _tanh_grad(z: Array, a: Array) -> Array:
    return 1.0 - a * a


def _sigmoid_grad(z: Array, a: Array) -> Array:
    return a * (1.0 - a)


def _linear(z: Array) -> Array:
    return z


def _linear_grad(z: Array, a: Array) -> Array:
    return np.ones_like(z)


def _elu(z: Array) -> Array:
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))


def _elu_grad(z: Array, a: Array) -> Array:
    return np.where(z > 0, 1.0, a + 1.0).astype(z.dtype)


def _selu(z: Array) -> Array:
    return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0)))


def _selu_grad(z: Array, a: Array) -> Array:
    return np.where(z > 0, SELU_SCALE, a + SELU_SCALE * SELU_ALPHA).astype(z.dtype)


def _gelu_tanh(z: Array) -> Array:
    # The tanh approximation (Hendrycks & Gimpel 2016), as used by GPT-2 and PyTorch's approximate="tanh".
    return 0.5 * z * (1.0 + np.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3)))


def _gelu_tanh_grad(z: Array, a: Array) -> Array:
    t = np.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * z * z)


def _erf_scalar(x):  # pragma: no cover - compiled
    return math.erf(x)


@lru_cache(maxsize=None)
def _erf_ufunc():
    """The error function element-wise in the array's own dtype (NumPy has none; the C library's, through numba),
    compiled (or loaded from numba's cache) the first time a run needs it: as a decorator it compiled whenever
    `core` was imported, 1.1 CPU-s of a fresh install's first run, which seldom uses the exact GELU. Explicit
    signatures keep float32 float32 (compiled from its first call, math.erf would return float64)."""
    return numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)(_erf_scalar)


def _erf(x: Array) -> Array:
    return _erf_ufunc()(x)


def _gelu_erf(z: Array) -> Array:
    # The exact GELU, z * Phi(z) with Phi the standard normal CDF: PyTorch's nn.GELU() default (approximate="none").
    return 0.5 * z * (1.0 + _erf(z * _SQRT_HALF))


def _gelu_erf_grad(z: Array, a: Array) -> Array:
    # Phi(z) + z * phi(z), phi the standard normal density.
    return 0.5 * (1.0 + _erf(z * _SQRT_HALF)) + z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _swish(z: Array) -> Array:
    return z * _sigmoid(z)


def _swish_grad(z: Array, a: Array) -> Array:
    s = _sigmoid(z)
    return s + z * s * (1.0 - s)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", _relu, _relu_grad, gain2=2.0, can_die=True),
        Activation(
            "leaky_relu", _leaky_relu, _leaky_relu_grad, gain2=2.0 / (1.0 + LEAKY_SLOPE**2)
        ),
        Activation("tanh", np.tanh, _tanh_grad, gain2=25.0 / 9.0, saturation=(-0.99, 0.99), bounds=(-1.0, 1.0)),
        Activation("sigmoid", _sigmoid, _sigmoid_grad, gain2=1.0, saturation=(0.01, 0.99), bounds=(0.0, 1.0)),
        Activation("linear", _linear, _linear_grad, gain2=1.0),
        Activation("elu", _elu, _elu_grad, gain2=1.0),
        Activation("selu", _selu, _selu_grad, gain2=0.5625),
        Activation("gelu_tanh", _gelu_tanh, _gelu_tanh_grad, gain2=1.0),
        Activation("gelu_erf", _gelu_erf, _gelu_erf_grad, gain2=1.0),
        Activation("swish", _swish, _swish_grad, gain2=1.0),
    )
}


# Former names, read as what they meant then: links and run files made before gelu_erf existed said "gelu" for
# the tanh approximation (the only GELU then).
RENAMED = {"gelu": "gelu_tanh"}


def canonical_name(name: str) -> str:
    """The current name of an activation given by its current or a former name (others are returned unchanged)."""
    return RENAMED.get(name, name)


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[canonical_name(name)]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def sigmoid(z: Array) -> Array:
    """The logistic function, overflow-free; also the binary output layer."""
    return _sigmoid(z)


def softmax(z: Array) -> Array:
    """Column-wise softmax (classes on axis 0), shifted by the column maximum so exp never overflows."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)
