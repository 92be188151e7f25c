"""The sidebar's state as plain data: Config <-> widget values <-> URL query parameters. No Streamlit here."""

from __future__ import annotations

from typing import Any, Mapping

from core.config import Config, ConfigError
from core.network import compact_runs

from .presets import DEFAULT_PRESET

# Config fields the sidebar edits, each bound to the widget key "cfg_<field>" (versioned: see `versioned`).
EDITABLE = ("dataset", "standardize", "layers", "activation", "init", "init_scale", "init_gain", "init_mode",
            "bias_init", "bias_value", "seed", "rng", "optimizer", "lr", "beta1", "beta2", "eps", "iterations",
            "batch_size", "record_every", "dtype", "norm", "residual", "residual_scale", "zero_init_residual")
PRESET_PARAM = "preset"
LESSON_PARAM, STEP_PARAM = "lesson", "step"  # the Lessons tab's place (?lesson=2&step=3): not config settings
# The open tab (?view=Training): st.tabs is bound to it (key = TAB_PARAM, value = the tab's label), so a link opens on
# its tab. Not a config setting; Streamlit owns it (a bound parameter cannot be set through st.query_params).
TAB_PARAM, TRAINING_TAB = "view", "Training"
PAGE_PARAMS = (LESSON_PARAM, STEP_PARAM, TAB_PARAM)  # the URL's parameters that say where on the page, not what runs


def versioned(name: str, generation: int = 0) -> str:
    """A widget's key in a generation of the sidebar. Loading a preset starts a new generation: to the browser its
    widgets are new ones, so a click that still carries the old widgets' values (made before the preset's values
    reached the page, as on a busy server) cannot put them back over the preset's."""
    return f"{name}~{generation}" if generation else name


def widget_key(field: str, generation: int = 0) -> str:
    return versioned(f"cfg_{field}", generation)


def compact_layers(layers: tuple[int, ...]) -> str:
    """(20, 7, 5) -> "20,7,5"; (500,)*10 -> "500x10": short enough for a URL at 100 layers."""
    return ",".join(compact_runs(map(str, layers), "x"))


def widget_values(config: Config, generation: int = 0) -> dict[str, Any]:
    """The value each sidebar widget (of that generation) shows for this config."""
    values = {widget_key(f, generation): getattr(config, f) for f in EDITABLE}
    values[widget_key("layers", generation)] = compact_layers(config.layers)
    return values


def config_from_widgets(values: Mapping[str, Any], base: Config, generation: int = 0) -> Config:
    """The base config with every widget value (of that generation) present in `values` applied. Raises
    ConfigError."""
    data = base.to_dict()
    for f in EDITABLE:
        if widget_key(f, generation) in values:
            data[f] = values[widget_key(f, generation)]
    return Config.from_dict(data)


def to_query(config: Config, preset: str) -> dict[str, str]:
    query = config.to_query()
    query["layers"] = compact_layers(config.layers)
    query[PRESET_PARAM] = preset
    return query


def from_query(params: Mapping[str, str], preset_names) -> tuple[Config | None, str, str | None]:
    """(config or None when the URL holds none, preset, warning). A malformed URL gives defaults and a warning."""
    params = {k: v for k, v in params.items() if k not in PAGE_PARAMS}
    preset = params.pop(PRESET_PARAM, DEFAULT_PRESET)
    if preset not in preset_names:
        return None, DEFAULT_PRESET, f"The link names an unknown preset {preset[:40]!r}; showing the defaults."
    if not params:
        return None, preset, None
    try:
        return Config.from_query(params), preset, None
    except ConfigError as e:
        return None, DEFAULT_PRESET, f"The link's settings are not valid ({e}); showing the defaults instead."
