"""The one description of a run: a validated, frozen `Config`, serialisable to JSON and to URL query parameters.

The sidebar builds it, the engine runs it, the recorder stores it, and a copied URL rebuilds it. Parsing never
evaluates anything: every field is converted by its declared type, and every value is checked against a plain
rule whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from .activations import ACTIVATIONS, canonical_name, get_activation
from .initializers import BIAS_INITIALIZERS, INITIALIZERS

OPTIMIZERS = ("gd", "momentum", "adam")
RNG_MODES = ("legacy", "default")
DTYPES = ("float64", "float32")
FAN_MODES = ("fan_in", "fan_out")
NORMS = ("none", "batch", "layer")  # normalisation of each hidden layer's pre-activation Z (core/normalization.py)
MAX_TEXT = 200  # longest accepted string field: a URL is untrusted input
MAX_DEPTH = 1000  # most hidden layers a config may describe (the server's own cap is lower: core/limits.py)
_DEPTH_RULE = f"a network has at most {MAX_DEPTH} hidden layers, and fewer where INITLAB_MAX_LAYERS caps its layers"


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    dataset: str = "circles"
    standardize: bool = False
    layers: tuple[int, ...] = (10, 5)  # hidden sizes; input and output sizes come from the data
    activation: str = "relu"  # one name for all hidden layers, or one per hidden layer: "relu,relu,tanh"
    init: str = "he_normal"
    init_scale: float = 0.01  # normal / uniform / truncated_normal / constant
    init_gain: float = 1.0  # global multiplier applied to every weight matrix
    init_mode: str = "fan_in"  # he_* only
    bias_init: str = "zeros"
    bias_value: float = 0.0
    lsuv_tol: float = 0.1
    lsuv_max_iter: int = 10
    seed: int = 1
    rng: str = "default"
    optimizer: str = "gd"
    lr: float = 0.0075
    iterations: int = 2500
    batch_size: int = 0  # 0: full batch
    beta1: float = 0.9  # momentum's average v = beta1 v + (1 - beta1) g, and Adam's first moment
    beta2: float = 0.999  # Adam's second moment
    eps: float = 1e-8  # Adam's denominator sqrt(s_hat) + eps
    l2: float = 0.0
    record_every: int = 100
    dtype: str = "float64"
    bins: int = 64
    norm: str = "none"  # "batch" (Ioffe & Szegedy 2015) or "layer" (Ba et al. 2016) normalisation of each hidden Z
    residual: bool = False  # hidden layers 2.. add their input: A^l = A^{l-1} + residual_scale * phi(Z^l)
    residual_scale: float = 1.0  # alpha, the residual branch's factor (1/sqrt(depth) keeps deep stacks bounded)
    zero_init_residual: bool = False  # each branch starts at zero: its W (or, with a norm, its gamma) is 0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def hidden_activations(self) -> tuple[str, ...]:
        names = tuple(n.strip() for n in self.activation.split(","))
        return names * len(self.layers) if len(names) == 1 else names

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    # --- serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """A config from setting: value pairs (settings left out take their defaults), also as written by an
        earlier version: a renamed setting or activation is read under its current name."""
        data = _current_names(data)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        values = {name: _coerce(known[name], value) for name, value in data.items()}
        if "activation" in values:
            values["activation"] = ",".join(canonical_name(n.strip()) for n in values["activation"].split(","))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON ({e.msg} at position {e.pos})") from None
        if not isinstance(data, dict):
            raise ConfigError("config JSON must be an object of setting: value")
        return cls.from_dict(data)

    def to_query(self) -> dict[str, str]:
        """Every setting as a string, for URL query parameters (which hold strings only)."""
        return {k: _to_text(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "Config":
        """Rebuild from query parameters; missing settings take their defaults. Raises ConfigError."""
        return cls.from_dict(dict(params))


RENAMED_SETTINGS = {"momentum": "beta1"}  # former name: current name (links and run files keep the old one)


def _current_names(data: Mapping[str, Any]) -> dict[str, Any]:
    current = dict(data)
    for old, new in RENAMED_SETTINGS.items():
        if old in current:
            value = current.pop(old)
            if new in current and str(current[new]) != str(value):
                raise ConfigError(f"{old} is the former name of {new}; give only {new}")
            current.setdefault(new, value)
    return current


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Convert one raw value (a JSON value or a query-string) to the field's type, or raise ConfigError."""
    kind = field.type
    name = field.name
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ConfigError(f"{name} is {len(value)} characters long; at most {MAX_TEXT} are accepted")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "tuple[int, ...]":
            if isinstance(value, (list, tuple)):
                return tuple(_coerce_int(item) for item in value)
            return _parse_layers(str(value))
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value.strip()
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name}={str(value)[:40]!r} is not a valid {kind.replace('tuple[int, ...]', 'list of whole numbers like 20,7,5')}") from None
    raise AssertionError(f"unhandled field type {kind}")


def _parse_layers(text: str) -> tuple[int, ...]:
    """"20,7,5" lists hidden sizes; "500x50" is 50 layers of 500 units (also inside a list: "784,100x3")."""
    sizes: list[int] = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        width, _, repeat = item.partition("x")
        count = int(repeat) if repeat else 1
        if count < 1:
            raise ConfigError(f"layers: {item!r} repeats a layer {count} times; repeat it at least once, e.g. 500x10")
        if count > MAX_DEPTH:
            raise ConfigError(f"layers: {item!r} repeats a layer {count} times; {_DEPTH_RULE}")
        sizes.extend([int(width)] * count)
        if len(sizes) > MAX_DEPTH:
            raise ConfigError(f"layers: more than {MAX_DEPTH} hidden layers; {_DEPTH_RULE}")
    return tuple(sizes)


def _coerce_int(item: Any) -> int:
    if isinstance(item, bool) or (isinstance(item, float) and not item.is_integer()):
        raise ValueError
    return int(item)


def _choice(name: str, value: str, options) -> None:
    if value not in options:
        raise ConfigError(f"{name}={value[:40]!r} is not known; choose one of: {', '.join(options)}")


def _finite(name: str, value: float, low: float | None = None, high: float | None = None, *, open_low=False) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    if low is not None and (value <= low if open_low else value < low):
        raise ConfigError(f"{name} must be {'>' if open_low else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value}")


def _whole(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {value}")


def _validate(c: Config) -> None:
    if not c.dataset or len(c.dataset) > MAX_TEXT:
        raise ConfigError("dataset must be a dataset name such as circles, shapes64 or catvnoncat")
    if not c.layers:
        raise ConfigError("layers must list at least one hidden size, e.g. 20,7,5")
    for size in c.layers:
        if size < 1:
            raise ConfigError(f"layers: every hidden size must be at least 1, got {size} (e.g. --layers 20,7,5)")
    acts = c.hidden_activations
    for name in acts:
        _choice("activation", name, tuple(ACTIVATIONS))
    if len(acts) != len(c.layers):
        raise ConfigError(
            f"activation lists {len(acts)} names for {len(c.layers)} hidden layers; give one name or one per layer"
        )
    _choice("init", c.init, tuple(INITIALIZERS))
    _choice("bias_init", c.bias_init, tuple(BIAS_INITIALIZERS))
    _choice("init_mode", c.init_mode, FAN_MODES)
    _choice("rng", c.rng, RNG_MODES)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("dtype", c.dtype, DTYPES)
    _finite("init_scale", c.init_scale, -1e6, 1e6)
    _finite("init_gain", c.init_gain, -1e6, 1e6)
    _finite("bias_value", c.bias_value, -1e6, 1e6)
    _finite("lsuv_tol", c.lsuv_tol, 0.0, 10.0, open_low=True)
    _whole("lsuv_max_iter", c.lsuv_max_iter, 1, 1000)
    _whole("seed", c.seed, 0, 2**32 - 1)
    _finite("lr", c.lr, 0.0, 1e3, open_low=True)
    _whole("iterations", c.iterations, 0, 10**9)
    _whole("batch_size", c.batch_size, 0, 10**9)
    for name, usual in (("beta1", 0.9), ("beta2", 0.999)):
        value = getattr(c, name)
        _finite(name, value, 0.0, 1.0)
        if value == 1.0:
            raise ConfigError(f"{name} must be below 1 ({usual} is usual)")
    _finite("eps", c.eps, 0.0, 1.0, open_low=True)
    _finite("l2", c.l2, 0.0, 1e6)
    _whole("record_every", c.record_every, 1, 10**9)
    _whole("bins", c.bins, 2, 1024)
    _validate_norm_and_residual(c)


def _validate_norm_and_residual(c: Config) -> None:
    """Residual blocks are hidden layers 2.. (layer 1 maps the input's width, which differs in general): each adds
    its input, so it must be as wide as the layer before it. Mismatched widths are refused rather than silently
    left without a skip: a "residual" network that is partly a plain stack would misread every comparison."""
    _choice("norm", c.norm, NORMS)
    if c.norm == "batch" and c.batch_size == 1:
        raise ConfigError("norm=batch needs at least 2 examples per batch (one example has no batch variance); "
                          "set batch_size to 0 (full batch) or 2 or more, or use norm=layer")
    _finite("residual_scale", c.residual_scale, 0.0, 100.0, open_low=True)
    if c.zero_init_residual and not c.residual:
        raise ConfigError("zero_init_residual starts each residual branch at zero; it needs residual=true")
    if not c.residual:
        return
    if len(c.layers) < 2:
        raise ConfigError("residual needs at least 2 hidden layers: layer 1 maps the input, layers 2.. add their "
                          "input (e.g. layers 100x10)")
    for i in range(1, len(c.layers)):
        if c.layers[i] != c.layers[i - 1]:
            raise ConfigError(
                f"residual: hidden layer {i + 1} has {c.layers[i]} units but adds the output of layer {i}, which has "
                f"{c.layers[i - 1]}; an identity skip needs equal widths: give layers 2.. the width of layer 1 "
                f"(e.g. {c.layers[0]}x{len(c.layers)}) or turn residual off")
    if c.zero_init_residual:
        for i, name in enumerate(c.hidden_activations[1:], start=2):
            problem = _zero_branch_problem(name)
            if problem:
                raise ConfigError(f"zero_init_residual: layer {i}'s {problem}; use tanh, leaky_relu, elu, selu, gelu "
                                  f"or swish there, or leave zero_init_residual off")


def _zero_branch_problem(activation: str) -> str | None:
    """Why a branch phi(W x + b) zeroed at W = 0, b = 0 (or gamma = 0, beta = 0) would not be a learning identity:
    phi(0) must be 0 (the branch adds nothing) and phi'(0) not 0 (its gradient reaches its weights)."""
    fn = get_activation(activation)
    zero = np.zeros(1)
    at_zero = fn.forward(zero)
    if at_zero[0] != 0.0:
        return f"{activation}(0) = {at_zero[0]:g}, so a zeroed branch would not add zero"
    if fn.derivative(zero, at_zero)[0] == 0.0:
        return f"{activation}'(0) = 0, so a zeroed branch would get no gradient and never learn"
    return None
