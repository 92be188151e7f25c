"""Weight initialisers: one registry from name to a small, documented formula.

Shapes follow the course: W^l has shape (n_l, n_{l-1}) = (fan_out, fan_in). Every initialiser draws from one of
three primitives (standard normal, uniform, orthogonal) through the run's random generator, so that the same
config and seed always give the same weights. In ``legacy`` mode that generator is ``np.random.RandomState(seed)``,
whose stream is identical to the course's ``np.random.seed(seed); np.random.randn(...)``, drawn layer by layer
in the course's order (W1, W2, ...).

Each entry holds the sampling function (the formula is in its docstring, as in ``torch.nn.init``), the same
formula in LaTeX for the dashboard, and the theoretical variance of one weight, Var(W_ij).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

Array = np.ndarray
RNG = Union[np.random.Generator, np.random.RandomState]

# Truncated normal: redraw beyond 2 standard deviations, as Keras's TruncatedNormal. Not PyTorch's trunc_normal_,
# whose default bounds are absolute, a = -2 and b = 2 whatever the std (the same cut only for std 1).
TRUNCATION = 2.0


def _truncated_variance_factor(k: float) -> float:
    """Var of N(0, 1) conditioned on |z| < k."""
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(k / math.sqrt(2))
    return 1.0 - 2.0 * k * phi / mass


TRUNCATED_VARIANCE = _truncated_variance_factor(TRUNCATION)


@dataclass(frozen=True)
class InitArgs:
    """What an initialiser may depend on besides the shape: its user parameters and the activation's gain^2."""

    scale: float = 0.01
    mode: str = "fan_in"
    gain2: float = 1.0  # the activation's calculate_gain squared (He initialisers)

    def fan(self, fan_in: int, fan_out: int) -> int:
        return fan_in if self.mode == "fan_in" else fan_out


# --- sampling primitives --------------------------------------------------------------------------------------
def make_rng(mode: str, seed: int) -> RNG:
    """``legacy``: the course's global-seed stream (without touching global state); ``default``: PCG64."""
    return np.random.RandomState(seed) if mode == "legacy" else np.random.default_rng(seed)


def _normal(rng: RNG, shape: tuple[int, int], std: float) -> Array:
    return rng.standard_normal(shape) * std


def _uniform(rng: RNG, shape: tuple[int, int], bound: float) -> Array:
    return rng.uniform(-bound, bound, shape)


def _truncated_normal(rng: RNG, shape: tuple[int, int], std: float) -> Array:
    z = rng.standard_normal(shape)
    outside = np.abs(z) > TRUNCATION
    while outside.any():  # redraw only what fell outside; each pass keeps 95% of the rest
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > TRUNCATION
    return z * std


def _orthogonal(rng: RNG, shape: tuple[int, int]) -> Array:
    rows, cols = shape
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the decomposition unique, so Q is Haar-distributed
    return q.T if rows < cols else q


# --- the initialisers -------------------------------------------------------------------------------------------
def zeros(shape, rng, args):
    r"""W = 0. Every unit of a layer computes the same thing and gets the same gradient: symmetry never breaks."""
    return np.zeros(shape)


def constant(shape, rng, args):
    r"""W = c (c = scale). Like zeros, all units stay identical."""
    return np.full(shape, float(args.scale))


def normal(shape, rng, args):
    r"""W ~ N(0, s^2): the course's ``np.random.randn(n_l, n_prev) * s`` (s = 0.01 there)."""
    return _normal(rng, shape, args.scale)


def uniform(shape, rng, args):
    r"""W ~ U(-s, s), variance s^2 / 3."""
    return _uniform(rng, shape, args.scale)


def truncated_normal(shape, rng, args):
    r"""W ~ N(0, s^2) redrawn beyond 2 s (Keras's TruncatedNormal); variance 0.774 s^2."""
    return _truncated_normal(rng, shape, args.scale)


def xavier_normal(shape, rng, args):
    r"""Glorot & Bengio (2010): W ~ N(0, 2 / (fan_in + fan_out)), a compromise between forward and backward."""
    fan_out, fan_in = shape
    return _normal(rng, shape, math.sqrt(2.0 / (fan_in + fan_out)))


def xavier_uniform(shape, rng, args):
    r"""Glorot & Bengio (2010): W ~ U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    fan_out, fan_in = shape
    return _uniform(rng, shape, math.sqrt(6.0 / (fan_in + fan_out)))


def he_normal(shape, rng, args):
    r"""He et al. (2015): W ~ N(0, gain^2 / fan), gain from the activation (relu: sqrt 2), fan = fan_in or fan_out."""
    fan_out, fan_in = shape
    return _normal(rng, shape, math.sqrt(args.gain2 / args.fan(fan_in, fan_out)))


def he_uniform(shape, rng, args):
    r"""He et al. (2015): W ~ U(-b, b), b = gain * sqrt(3 / fan)."""
    fan_out, fan_in = shape
    return _uniform(rng, shape, math.sqrt(3.0 * args.gain2 / args.fan(fan_in, fan_out)))


def lecun_normal(shape, rng, args):
    r"""LeCun et al. (1998): W ~ N(0, 1 / fan_in)."""
    return _normal(rng, shape, math.sqrt(1.0 / shape[1]))


def lecun_uniform(shape, rng, args):
    r"""LeCun et al. (1998): W ~ U(-b, b), b = sqrt(3 / fan_in)."""
    return _uniform(rng, shape, math.sqrt(3.0 / shape[1]))


def course_sqrt(shape, rng, args):
    r"""The course's ``np.random.randn(n_l, n_prev) / np.sqrt(n_prev)``: N(0, 1 / fan_in), divided as it divides."""
    return rng.standard_normal(shape) / math.sqrt(shape[1])


def course_he(shape, rng, args):
    r"""The course's He: ``np.random.randn(n_l, n_prev) * np.sqrt(2 / n_prev)`` on every layer, the sigmoid output
    layer too (``he_normal`` gives the output layer gain 1, as PyTorch's ``calculate_gain`` would)."""
    return _normal(rng, shape, math.sqrt(2.0 / shape[1]))


def orthogonal(shape, rng, args):
    r"""Saxe et al. (2013): a random orthogonal matrix (QR of a Gaussian matrix, signs fixed by diag R)."""
    return _orthogonal(rng, shape)


def torch_default(shape, rng, args):
    r"""PyTorch's ``nn.Linear`` default: kaiming_uniform with a = sqrt 5, i.e. W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return _uniform(rng, shape, 1.0 / math.sqrt(shape[1]))


def lsuv(shape, rng, args):
    r"""Mishkin & Matas (2015): start orthogonal; `initialize` then rescales each layer on a data batch until Var(Z) = 1."""
    return _orthogonal(rng, shape)


@dataclass(frozen=True)
class Initializer:
    name: str
    label: str
    sample: Callable[[tuple[int, int], RNG, InitArgs], Array]
    latex: str
    variance: Callable[[int, int, InitArgs], float]  # Var(W_ij) for (fan_in, fan_out), before the global gain
    data_dependent: bool = False

    @property
    def doc(self) -> str:
        return (self.sample.__doc__ or "").strip()


def _registry(*entries: Initializer) -> dict[str, Initializer]:
    return {e.name: e for e in entries}


INITIALIZERS: dict[str, Initializer] = _registry(
    Initializer("zeros", "zeros", zeros, r"W = 0", lambda i, o, a: 0.0),
    Initializer("constant", "constant c", constant, r"W = c", lambda i, o, a: 0.0),
    Initializer("normal", "normal × scale (course: ×0.01)", normal, r"W \sim \mathcal{N}(0,\ s^2)",
                lambda i, o, a: a.scale**2),
    Initializer("uniform", "uniform ±scale", uniform, r"W \sim \mathcal{U}(-s,\ s)", lambda i, o, a: a.scale**2 / 3),
    Initializer("truncated_normal", "truncated normal", truncated_normal,
                r"W \sim \mathcal{N}(0,\ s^2)\ \text{cut at}\ \pm 2s", lambda i, o, a: a.scale**2 * TRUNCATED_VARIANCE),
    Initializer("xavier_normal", "Xavier/Glorot normal", xavier_normal,
                r"W \sim \mathcal{N}\!\left(0,\ \frac{2}{n_{in} + n_{out}}\right)", lambda i, o, a: 2.0 / (i + o)),
    Initializer("xavier_uniform", "Xavier/Glorot uniform", xavier_uniform,
                r"W \sim \mathcal{U}(-b,\ b),\quad b = \sqrt{\frac{6}{n_{in} + n_{out}}}", lambda i, o, a: 2.0 / (i + o)),
    Initializer("he_normal", "He/Kaiming normal", he_normal,
                r"W \sim \mathcal{N}\!\left(0,\ \frac{g^2}{n_{fan}}\right)", lambda i, o, a: a.gain2 / a.fan(i, o)),
    Initializer("he_uniform", "He/Kaiming uniform", he_uniform,
                r"W \sim \mathcal{U}(-b,\ b),\quad b = g\sqrt{\frac{3}{n_{fan}}}", lambda i, o, a: a.gain2 / a.fan(i, o)),
    Initializer("lecun_normal", "LeCun normal", lecun_normal,
                r"W \sim \mathcal{N}\!\left(0,\ \frac{1}{n_{in}}\right)", lambda i, o, a: 1.0 / i),
    Initializer("lecun_uniform", "LeCun uniform", lecun_uniform,
                r"W \sim \mathcal{U}(-b,\ b),\quad b = \sqrt{\frac{3}{n_{in}}}", lambda i, o, a: 1.0 / i),
    Initializer("course_sqrt", "course: randn / sqrt(n_prev)", course_sqrt,
                r"W = \frac{\texttt{randn}(n_l,\ n_{l-1})}{\sqrt{n_{l-1}}}", lambda i, o, a: 1.0 / i),
    Initializer("course_he", "course: randn × sqrt(2 / n_prev)", course_he,
                r"W = \texttt{randn}(n_l,\ n_{l-1}) \cdot \sqrt{\frac{2}{n_{l-1}}}", lambda i, o, a: 2.0 / i),
    Initializer("orthogonal", "orthogonal", orthogonal, r"W = Q,\quad Q^\top Q = I\ \ (\text{QR of a Gaussian})",
                lambda i, o, a: 1.0 / max(i, o)),
    Initializer("torch_default", "PyTorch nn.Linear default", torch_default,
                r"W \sim \mathcal{U}\!\left(-\frac{1}{\sqrt{n_{in}}},\ \frac{1}{\sqrt{n_{in}}}\right)",
                lambda i, o, a: 1.0 / (3.0 * i)),
    Initializer("lsuv", "LSUV (orthogonal, then unit variance on data)", lsuv,
                r"W = Q\,/\,\sqrt{\mathrm{Var}(Z^l)}\ \ \text{until}\ |\mathrm{Var}(Z^l) - 1| < \text{tol}",
                lambda i, o, a: 1.0 / max(i, o), data_dependent=True),
)

BIAS_INITIALIZERS = ("zeros", "constant", "torch_default")
