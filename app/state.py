"""The sidebar's state as plain data: Config <-> widget values <-> URL query parameters. No Streamlit here."""

from __future__ import annotations

from itertools import groupby
from typing import Any, Mapping

from core.config import Config, ConfigError

from .presets import DEFAULT_PRESET

# Config fields the sidebar edits, each bound to the widget key "cfg_<field>".
EDITABLE = ("dataset", "standardize", "layers", "activation", "init", "init_scale", "init_gain", "init_mode",
            "bias_init", "bias_value", "seed", "rng", "optimizer", "lr", "iterations", "batch_size", "record_every",
            "dtype")
PRESET_PARAM = "preset"


def widget_key(field: str) -> str:
    return f"cfg_{field}"


def compact_layers(layers: tuple[int, ...]) -> str:
    """(20, 7, 5) -> "20,7,5"; (500,)*10 -> "500x10": short enough for a URL at 100 layers."""
    parts = []
    for width, run in groupby(layers):
        count = len(list(run))
        parts.append(f"{width}x{count}" if count > 2 else ",".join([str(width)] * count))
    return ",".join(parts)


def widget_values(config: Config) -> dict[str, Any]:
    """The value each sidebar widget shows for this config."""
    values = {widget_key(f): getattr(config, f) for f in EDITABLE}
    values[widget_key("layers")] = compact_layers(config.layers)
    return values


def config_from_widgets(values: Mapping[str, Any], base: Config) -> Config:
    """The base config with every widget value present in `values` applied. Raises ConfigError."""
    data = base.to_dict()
    for f in EDITABLE:
        if widget_key(f) in values:
            data[f] = values[widget_key(f)]
    return Config.from_dict(data)


def to_query(config: Config, preset: str) -> dict[str, str]:
    query = config.to_query()
    query["layers"] = compact_layers(config.layers)
    query[PRESET_PARAM] = preset
    return query


def from_query(params: Mapping[str, str], preset_names) -> tuple[Config | None, str, str | None]:
    """(config or None when the URL holds none, preset, warning). A malformed URL gives defaults and a warning."""
    params = dict(params)
    preset = params.pop(PRESET_PARAM, DEFAULT_PRESET)
    if preset not in preset_names:
        return None, DEFAULT_PRESET, f"The link names an unknown preset {preset[:40]!r}; showing the defaults."
    if not params:
        return None, preset, None
    try:
        return Config.from_query(params), preset, None
    except ConfigError as e:
        return None, DEFAULT_PRESET, f"The link's settings are not valid ({e}); showing the defaults instead."
