"""Init Lab's dashboard page, served by app/main.py (`streamlit run app/main.py`).

This script is the page: its header and its tabs. The sidebar (widgets -> one validated config, presets, URL) is
app/sidebar.py, each tab a `render` in app/tabs/, what the tabs share (charts, session state, cached probes)
app/ui.py; the numbers come from the engine (core/), the shared runs from app/serving/, the figures from
app/charts/.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # Streamlit puts app/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import sidebar  # noqa: E402
from app.live_chart import load_plotly  # noqa: E402
from app.markup import escape_markdown  # noqa: E402
from app.presets import presets  # noqa: E402
from app.serving.pace import pace  # noqa: E402
from app.serving.server import run_store  # noqa: E402
from app.state import LESSON_PARAM, TAB_PARAM, TRAINING_TAB  # noqa: E402
from app.tabs import compare, init, lessons, run_file, sweep, theory, training  # noqa: E402
from app.ui import begin_tab_data, state  # noqa: E402
from core.config import ConfigError  # noqa: E402
from core.data import DatasetError, default_data_dir  # noqa: E402
from core.limits import Limits, network_within_limits  # noqa: E402

TAB_KEY = TAB_PARAM  # the open tab, in session state and in the URL
PAGE_CSS = Path(__file__).with_name("page.css").read_text()


def main() -> None:
    st.set_page_config(page_title="Init Lab", page_icon="🧪", layout="wide")
    st.html(f"<style>{PAGE_CSS}</style>")  # first, so that the page never shows in the default layout
    load_plotly()
    sidebar.boot()
    pace.saw(state.session_id)  # an open page, for the live views' pace (app/serving/pace.py)
    config = sidebar.render()
    name, tagline = st.columns([1, 4], vertical_alignment="bottom")  # one row on a screen of any width but a phone's
    name.title("Init Lab", anchor=False)
    tagline.caption("Why the initial weights decide whether a deep network learns, layer by layer.")
    if state.boot_warning:
        st.warning(escape_markdown(state.boot_warning))
    if config is None:
        st.error("Fix the highlighted setting in the sidebar to continue.")
        return
    try:
        run_store()  # a malformed $INITLAB_CACHE_* or server cap is reported here as a message, not a traceback
        limits = Limits.from_env()
        dataset = sidebar.resolve_dataset(config)
        network = network_within_limits(config, dataset, limits)
    except (ConfigError, DatasetError, ValueError) as e:
        st.error(escape_markdown(e))
        return
    st.markdown(f"**{network}** · {network.n_params:,} parameters · {escape_markdown(dataset.description)}")
    forward_only = presets(default_data_dir())[state.preset].forward_only
    views = {
        "At initialisation": lambda: init.render(config, dataset, limits),
        TRAINING_TAB: lambda: training.render(config, dataset, limits),
        "Compare": lambda: compare.render(config, dataset, limits, forward_only),
        "Run file": run_file.render,
        "Theory": lambda: theory.render(config, dataset, limits),
        "Sweep": lambda: sweep.render(config, dataset, limits),
        "Lessons": lambda: lessons.render(limits),
    }
    if LESSON_PARAM in st.query_params and TAB_KEY not in st.session_state:  # a teacher's link to a lesson step
        st.session_state[TAB_KEY] = "Lessons"
    # Only the open tab runs (and reaches the browser): a page redraw costs one tab's figures, not five.
    for tab, view in zip(st.tabs(list(views), key=TAB_KEY, on_change="rerun", bind="query-params"), views.values()):
        if tab.open:
            begin_tab_data()
            with tab:
                view()
        elif view is views["Lessons"]:
            lessons.forget_url()


if __name__ == "__main__":  # Streamlit runs this file as __main__; the server imports it only to load its modules
    main()
