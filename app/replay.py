"""A replayed run file (uploaded in the Run file tab): its header, which says what the run is (its own config, not
the sidebar's), and "Load these settings into the sidebar", which sets the sidebar from the run's config through the
same validated path a link takes (app.state.to_query -> Config.from_query -> sidebar.load_config)."""

from __future__ import annotations

import streamlit as st

from app import sidebar
from app.markup import code, escape_markdown
from app.state import PRESET_PARAM, to_query
from app.ui import state
from core.config import Config, ConfigError
from core.initializers import INITIALIZERS
from core.network import Network

CUSTOM_PRESET = "custom"  # a run's settings are nobody's preset


def run_network(recorded) -> Network:
    """The network the run file describes (its own dimensions, hidden activations, normalisation and blocks)."""
    dims, config = tuple(recorded.network_dims), recorded.config
    return Network(dims, tuple(recorded.activations[:len(dims) - 2]), config.norm, config.residual,
                   config.residual_scale)


def summary(config: Config, network: Network, dataset_name: str) -> str:
    """One line of Markdown: what the run trained, on what, with what; text from the file escaped."""
    init = INITIALIZERS[config.init]
    scale = f" s = {config.init_scale:g}" if init.fan is None and init.distribution != "zeros" else ""
    gain = f" × {config.init_gain:g}" if config.init_gain != 1 else ""
    batch = "full batch" if config.batch_size == 0 else f"batches of {config.batch_size}"
    return (f"**{escape_markdown(network)}** on {code(dataset_name)} · {escape_markdown(init.label)}{scale}{gain} · "
            f"seed {config.seed} ({config.rng}) · {config.optimizer}, lr {config.lr:g}, {batch}, "
            f"{config.iterations:,} iterations")


def render_header() -> None:
    """The replayed run's own config, with the button that loads it into the sidebar."""
    recorded = state.replay
    with st.container(border=True, key="replay_header"):
        st.markdown(f"Replaying {code(state.replay_name)}: "
                    + summary(recorded.config, run_network(recorded), recorded.dataset_name))
        left, right = st.columns([2, 3], vertical_alignment="center")
        left.button("Load these settings into the sidebar", key="load_replay_settings", on_click=load_settings,
                    help="Sets every sidebar setting to this run's, as a link to it would; Start then trains it.")
        if state.config == recorded.config:
            right.caption("The sidebar holds these settings. Start trains them anew and leaves the replay.")
        else:
            right.caption("The sidebar's settings differ: the header above the tabs shows the sidebar's, and Start "
                          "trains them, leaving the replay.")
        if state.replay_load_error:
            st.error(escape_markdown(state.replay_load_error))


def load_settings() -> None:
    """The run's config into the sidebar, checked as a link's parameters are, under the preset "custom"."""
    params = to_query(state.replay.config, CUSTOM_PRESET)
    params.pop(PRESET_PARAM)
    try:
        config = Config.from_query(params)
    except ConfigError as e:
        state.replay_load_error = f"This run's settings cannot be loaded here: {e}."
        return
    state.replay_load_error = None
    state.preset = CUSTOM_PRESET
    sidebar.load_config(config)

