"""The dashboard's charts: Plotly charts that the page draws in turn and that change in place.

`st.plotly_chart` (Streamlit 1.67) derives its element's identity from the figure, so every new figure of a live
chart mounted a new chart: the page dropped the old drawing and drew the new one from nothing. Line charts redraw
within a frame, but the histogram heatmaps and the decision boundary were blank for a frame or more at every update
(seen in screencasts of the Training tab, once a second). This component keeps one chart per key and hands it each
new figure through `Plotly.react`, which changes the drawing where it is.

The page's charts draw one at a time, a frame apart. With `st.plotly_chart` the first screen's five charts were
drawn in one task of the browser, once Streamlit's Plotly chunk (4.7 MB) had been evaluated, and all appeared
together; here its first chart appears as soon as it is drawn (tests/benchmarks/bench_first_chart.py). Every chart
but the sweep's heatmap, whose cells take clicks (`on_select`), is drawn this way (app/ui.py: `chart`).

It runs in the page itself (`st.components.v2`), not in an iframe, so the page loads plotly.js once for all its
charts, and starts loading it as the page begins (`load_plotly`), before the server has computed the first chart.

That plotly.js is plotly.js's cartesian bundle (app/vendor/, MIT licence, of the plotly.js version requirements.txt's
plotly builds figures for), not that package's full one: Init Lab draws only scatter, bar, heatmap and contour
traces, and a new student's page had to download and evaluate the full bundle (4.8 MB, 1.5 MB compressed, against
1.5 and 0.5 MB) before its first chart (README, Speed: tests/benchmarks/bench_first_chart.py)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import weakref
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
import streamlit.components.v1 as components

PLOTLY_JS = Path(__file__).with_name("vendor") / "plotly-cartesian.min.js"
# The trace types that bundle registers (tests/test_figures.py reads them off the file): a trace of any other type
# would not be drawn (plotly.js leaves out a type it lacks), so `live_chart` refuses it.
BUNDLED_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
                            "image", "pie", "scatter", "scatterternary", "violin"})
SCRIPT = Path(__file__).with_name("live_chart.js")
PRELOAD_KEY = "plotly_preload"  # `load_plotly`'s element, hidden by app/page.css: it draws nothing
PLOTLY_JS_URL = f"component/{__name__}.plotly_js/{PLOTLY_JS.name}"  # page-relative (app/serving/assets.py sends it)


@functools.cache
def _serve_plotly_js() -> str:
    """Serve PLOTLY_JS at PLOTLY_JS_URL. Streamlit serves only the files inside a component's folder, so the
    file is copied into a temporary one (removed at exit). Done on the first live chart, in a page's run: Streamlit
    registers a component only within a script run, and the server imports this module as it starts
    (server.load_page), outside any; a component declared then was never served (plotly.js answered 404 and every
    live chart stayed blank)."""
    folder = Path(tempfile.mkdtemp(prefix="initlab-plotly-js-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    shutil.copy(PLOTLY_JS, folder)
    components.declare_component("plotly_js", path=str(folder))
    return PLOTLY_JS_URL


_live_chart = st.components.v2.component("initlab_live_chart", js=SCRIPT.read_text(), isolate_styles=False)


_specs: dict[int, str] = {}  # id of a live figure -> its JSON (a Figure is unhashable); dropped with the figure


def live_chart(fig: go.Figure, key: str, config: dict) -> None:
    """``fig`` in the chart named ``key``, which keeps its place and its drawing from one update to the next. A
    figure is turned into JSON once: the pages' timers redraw the same figure (ui.cached_figures) until the run has
    a new snapshot, several times a second for every student watching a run."""
    spec = _specs.get(id(fig))
    if spec is None:
        unbundled = {trace.type for trace in fig.data} - BUNDLED_TRACES
        if unbundled:
            raise ValueError(f"{key}: trace type {', '.join(sorted(unbundled))} is not in app/vendor's plotly.js "
                             "bundle, which would leave it out of the chart")
        spec = _specs[id(fig)] = pio.to_json(fig, validate=False)
        weakref.finalize(fig, _specs.pop, id(fig), None)
    _live_chart(key=key, data={"figure": spec, "config": config, "plotly": _serve_plotly_js()})


def load_plotly() -> None:
    """Have the page load and evaluate plotly.js now, while the server computes its first chart: on a new server's
    first page that chart came a second after the page's first elements, and plotly.js was only then asked for."""
    _live_chart(key=PRELOAD_KEY, data={"plotly": _serve_plotly_js()})
