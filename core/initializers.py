"""Weight initialisers: one registry from name to a small spec from which everything else is derived.

Shapes follow the course: W^l has shape (n_l, n_{l-1}) = (fan_out, fan_in). Each initialiser is a spec in the spirit
of Keras's ``VarianceScaling``: a distribution, and a variance Var(W_ij) = g^2 * scale / n, where n is a fan chosen
by ``fan`` and g the activation's gain (He) or 1. From the spec come the sampling (std sigma = sqrt(Var); a uniform
bound sqrt(3 Var) = sqrt(3) sigma, as in Keras and ``torch.nn.init``), the variance the theory uses and the LaTeX the
dashboard shows, so each formula is written once. Initialisers without a fan (``normal``, ``uniform``, ``truncated_normal``) take their width
from the user's scale s instead.

Every draw goes through the run's random generator, so the same config and seed always give the same weights. In
``legacy`` mode that generator is ``np.random.RandomState(seed)``, whose stream is identical to the course's
``np.random.seed(seed); np.random.randn(...)``, drawn layer by layer in the course's order (W1, W2, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Union

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
    mode: str = "fan_in"  # the fan He initialisers use: "fan_in" keeps the forward variance, "fan_out" the backward
    gain2: float = 1.0  # the activation's calculate_gain squared (He initialisers)


def fans(shape: tuple[int, int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (n_l, n_{l-1}), the one place that reads them off a shape."""
    fan_out, fan_in = shape
    return fan_in, fan_out


# --- sampling primitives: one per distribution ------------------------------------------------------------------
def make_rng(mode: str, seed: int) -> RNG:
    """``legacy``: the course's global-seed stream (without touching global state); ``default``: PCG64."""
    return np.random.RandomState(seed) if mode == "legacy" else np.random.default_rng(seed)


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


# How each fan mode reads n off (fan_in, fan_out), and writes it in LaTeX.
_FANS = {
    "fan_in": lambda fan_in, fan_out: fan_in,
    "fan_out": lambda fan_in, fan_out: fan_out,
    "fan_avg": lambda fan_in, fan_out: (fan_in + fan_out) / 2,
    "fan_max": lambda fan_in, fan_out: max(fan_in, fan_out),
}
_FAN_LATEX = {"fan_in": "n_{in}", "fan_out": "n_{out}", "fan_avg": "n_{in} + n_{out}",
              "fan_max": r"\max(n_{in},\ n_{out})", "chosen": "n_{fan}"}
DISTRIBUTIONS = ("zeros", "constant", "normal", "truncated_normal", "uniform", "orthogonal")


@dataclass(frozen=True)
class Initializer:
    """One initialiser as data: Var(W_ij) = g^2 * scale / n (before the run's global gain).

    distribution: one of ``DISTRIBUTIONS``.
    fan: which n: "fan_in", "fan_out", "fan_avg" ((fan_in + fan_out) / 2), "fan_max", or "chosen" (the user's
        mode); None when the user's scale s is the width itself (std of a normal, bound of a uniform).
    gain: whether g is the activation's gain (He); otherwise g = 1.
    course: written in the course's notation, ``randn(n_l, n_{l-1})`` times sqrt(Var), or divided by sqrt(n_{l-1})
        when scale is 1, as the course divides: the last bit of the course's numbers depends on it.
    doc: where the formula comes from and what it is for, shown under the LaTeX.
    data_dependent: the weights are rescaled on a data batch after sampling (LSUV, in ``network.initialize``).
    """

    name: str
    label: str
    distribution: str
    scale: float = 1.0
    fan: Optional[str] = None
    gain: bool = False
    course: bool = False
    doc: str = ""
    data_dependent: bool = False

    def __post_init__(self):
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"{self.name}: unknown distribution {self.distribution!r}")

    def n(self, fan_in: int, fan_out: int, args: InitArgs) -> float:
        mode = args.mode if self.fan == "chosen" else self.fan
        return _FANS[mode](fan_in, fan_out)

    def variance(self, fan_in: int, fan_out: int, args: InitArgs) -> float:
        """Var(W_ij) for a layer with these fans, before the run's global gain."""
        if self.distribution in ("zeros", "constant"):
            return 0.0
        if self.fan is None:
            factor = {"normal": 1.0, "truncated_normal": TRUNCATED_VARIANCE, "uniform": 1.0 / 3.0}
            return args.scale**2 * factor[self.distribution]
        return self._scaled_variance(1.0, fan_in, fan_out, args)

    def _scaled_variance(self, k: float, fan_in: int, fan_out: int, args: InitArgs) -> float:
        # k * g^2 * scale / n, multiplied in this order so that k = 3 gives the uniform bound^2 to the last bit of
        # sqrt(6 / (fan_in + fan_out)) and its kin, as these initialisers always drew it.
        return k * (args.gain2 if self.gain else 1.0) * self.scale / self.n(fan_in, fan_out, args)

    def sample(self, shape: tuple[int, int], rng: RNG, args: InitArgs) -> Array:
        """Draw a weight of shape (fan_out, fan_in) from ``rng``."""
        kind = self.distribution
        if kind == "zeros":
            return np.zeros(shape)
        if kind == "constant":
            return np.full(shape, float(args.scale))
        if kind == "orthogonal":
            return _orthogonal(rng, shape)
        if self.fan is None:  # the user's s is the width
            if kind == "uniform":
                return rng.uniform(-args.scale, args.scale, shape)
            std = args.scale
        else:
            fan_in, fan_out = fans(shape)
            if self.course and self.scale == 1.0:
                return rng.standard_normal(shape) / math.sqrt(self.n(fan_in, fan_out, args))
            if kind == "uniform":  # U(-b, b) has variance b^2 / 3
                bound = math.sqrt(self._scaled_variance(3.0, fan_in, fan_out, args))
                return rng.uniform(-bound, bound, shape)
            std = math.sqrt(self.variance(fan_in, fan_out, args))
        if kind == "truncated_normal":
            return _truncated_normal(rng, shape, std)
        return rng.standard_normal(shape) * std

    def variance_latex(self) -> str:
        """g^2 * scale / n in LaTeX, e.g. \\frac{2}{n_{in} + n_{out}} for fan_avg."""
        ratio = Fraction(self.scale).limit_denominator(1000)
        top, bottom = ratio.numerator * (2 if self.fan == "fan_avg" else 1), ratio.denominator
        n = "n_{l-1}" if self.course else _FAN_LATEX[self.fan]
        if self.gain:
            top_tex = "g^2" if top == 1 else rf"{top}\,g^2"
        else:
            top_tex = str(top)
        if bottom == 1:
            bottom_tex = n
        else:
            bottom_tex = rf"{bottom}\,({n})" if self.fan == "fan_avg" else rf"{bottom}\,{n}"
        return rf"\frac{{{top_tex}}}{{{bottom_tex}}}"

    @property
    def latex(self) -> str:
        kind = self.distribution
        if kind == "zeros":
            return "W = 0"
        if kind == "constant":
            return "W = c"
        if kind == "orthogonal":
            tex = r"W = Q,\quad Q^\top Q = I\ \ (\text{QR of a Gaussian})"
            if self.data_dependent:
                tex += (r",\ \text{then}\ W^l \leftarrow W^l / \sqrt{\mathrm{Var}(Z^l)}\ \text{until}\ "
                        r"|\mathrm{Var}(Z^l) - 1| < \text{tol}")
            return tex
        if self.fan is None:
            return {"normal": r"W \sim \mathcal{N}(0,\ s^2)",
                    "truncated_normal": r"W \sim \mathcal{N}(0,\ s^2)\ \text{redrawn beyond}\ \pm 2s",
                    "uniform": r"W \sim \mathcal{U}(-s,\ s)"}[kind]
        if self.course:
            randn = r"\texttt{randn}(n_l,\ n_{l-1})"
            if self.scale == 1.0:
                return rf"W = \frac{{{randn}}}{{\sqrt{{n_{{l-1}}}}}}"
            return rf"W = {randn} \cdot \sqrt{{{self.variance_latex()}}}"
        if kind == "uniform":
            uniform = r"W \sim \mathcal{U}(-b,\ b),\quad b = \sqrt{3}\,\sigma,\quad \sigma^2 = "
            return uniform + self.variance_latex()
        return rf"W \sim \mathcal{{N}}\!\left(0,\ {self.variance_latex()}\right)"


def _registry(*entries: Initializer) -> dict[str, Initializer]:
    return {e.name: e for e in entries}


_GLOROT = "Glorot & Bengio (2010): a compromise between keeping the forward and the backward variance."
_HE = ("He et al. (2015): g is the gain of the activation that follows the layer (relu: sqrt 2; the output layer's "
       "is 1), n the chosen fan: fan_in keeps the forward variance, fan_out the backward.")
_LECUN = "LeCun et al. (1998): unit variance forward for a linear or tanh-like layer."

INITIALIZERS: dict[str, Initializer] = _registry(
    Initializer("zeros", "zeros", "zeros",
                doc="Every unit of a layer computes the same thing and gets the same gradient: symmetry never breaks."),
    Initializer("constant", "constant c", "constant", doc="c is the scale. Like zeros, all units stay identical."),
    Initializer("normal", "normal × scale (course: ×0.01)", "normal",
                doc="The course's ``np.random.randn(n_l, n_prev) * s`` (s = 0.01 there)."),
    Initializer("uniform", "uniform ±scale", "uniform", doc="Variance s^2 / 3."),
    Initializer("truncated_normal", "truncated normal", "truncated_normal",
                doc="Keras's TruncatedNormal, s the std before the cut; variance 0.774 s^2."),
    Initializer("xavier_normal", "Xavier/Glorot normal", "normal", fan="fan_avg", doc=_GLOROT),
    Initializer("xavier_uniform", "Xavier/Glorot uniform", "uniform", fan="fan_avg", doc=_GLOROT),
    Initializer("he_normal", "He/Kaiming normal", "normal", fan="chosen", gain=True, doc=_HE),
    Initializer("he_uniform", "He/Kaiming uniform", "uniform", fan="chosen", gain=True, doc=_HE),
    Initializer("lecun_normal", "LeCun normal", "normal", fan="fan_in", doc=_LECUN),
    Initializer("lecun_uniform", "LeCun uniform", "uniform", fan="fan_in", doc=_LECUN),
    Initializer("course_sqrt", "course: randn / sqrt(n_prev)", "normal", fan="fan_in", course=True,
                doc="The course's ``np.random.randn(n_l, n_prev) / np.sqrt(n_prev)``: LeCun normal, divided as the "
                    "course divides."),
    Initializer("course_he", "course: randn × sqrt(2 / n_prev)", "normal", scale=2.0, fan="fan_in", course=True,
                doc="The course's He on every layer, the sigmoid output layer too (``he_normal`` gives the output "
                    "layer gain 1, as PyTorch's ``calculate_gain`` would)."),
    Initializer("orthogonal", "orthogonal", "orthogonal", fan="fan_max",
                doc="Saxe et al. (2013): signs fixed by diag R, so Q is uniform over orthogonal matrices; each entry "
                    "has variance 1 / max(n_in, n_out)."),
    Initializer("torch_default", "PyTorch nn.Linear default", "uniform", scale=1.0 / 3.0, fan="fan_in",
                doc="kaiming_uniform with a = sqrt 5 (gain^2 = 1/3), i.e. U(-1/sqrt(n_in), 1/sqrt(n_in))."),
    Initializer("lsuv", "LSUV (orthogonal, then unit variance on data)", "orthogonal", fan="fan_max",
                data_dependent=True,
                doc="Mishkin & Matas (2015): start orthogonal, then rescale each layer on a data batch."),
)


@dataclass(frozen=True)
class BiasInitializer:
    """One bias initialiser as data, from which both the sampling and the moments the theory uses are derived.

    distribution: "zeros"; "constant", every bias the config's bias value c; "normal", N(0, c^2) with c the bias
    value (the mean-field theory's sigma_b^2 = c^2, as the trainability sweep sets it); or "uniform", U(-b, b) with
    b = 1 / sqrt(n), n the layer's fan ``fan`` (PyTorch's nn.Linear bias: fan_in), so Var(b_i) = b^2 / 3.
    """

    name: str
    distribution: str
    fan: Optional[str] = None

    def __post_init__(self):
        if self.distribution not in ("zeros", "constant", "normal", "uniform") or (
                self.distribution == "uniform") != bool(self.fan):
            raise ValueError(f"{self.name}: a bias is zeros, constant, normal, or uniform with a fan")

    def bound(self, fan_in: int, fan_out: int) -> float:
        return 1.0 / math.sqrt(_FANS[self.fan](fan_in, fan_out))

    def moments(self, fan_in: int, fan_out: int, value: float) -> tuple[float, float]:
        """(Var(b_i), E[b_i]) for a layer with these fans; ``value`` is the config's constant c."""
        if self.distribution == "uniform":
            return self.bound(fan_in, fan_out) ** 2 / 3.0, 0.0
        if self.distribution == "normal":
            return float(value) ** 2, 0.0
        return 0.0, (float(value) if self.distribution == "constant" else 0.0)

    def sample(self, fan_in: int, fan_out: int, rng: RNG, value: float) -> Array:
        """A bias of shape (fan_out, 1), drawn from ``rng`` (after the layer's weight, in the course's order)."""
        if self.distribution == "uniform":
            bound = self.bound(fan_in, fan_out)
            return rng.uniform(-bound, bound, (fan_out, 1))
        if self.distribution == "normal":
            return rng.standard_normal((fan_out, 1)) * float(value)
        return np.full((fan_out, 1), self.moments(fan_in, fan_out, value)[1])


BIAS_INITIALIZERS: dict[str, BiasInitializer] = {b.name: b for b in (
    BiasInitializer("zeros", "zeros"),  # the course's np.zeros((n_l, 1))
    BiasInitializer("constant", "constant"),
    BiasInitializer("normal", "normal"),  # N(0, c^2): the mean-field theory's random bias, sigma_b = c
    BiasInitializer("torch_default", "uniform", fan="fan_in"),  # PyTorch nn.Linear's: U(-1/sqrt(n_in), 1/sqrt(n_in))
)}
