"""What every tab of the page shares: the session's state, typed; a chart with its caption, and the tab's one download
of its data; tables; the "Why?" expander; widgets that remember their value across tabs; the probes (kept by the
server: app/serving/probes.py), the predictions and the figures of a run, shared by every session."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Generic, TypeVar

import pyarrow as pa  # Streamlit's own dependency, its tables' format
import streamlit as st

from app.charts import export
from app.charts.style import frozen
from app.glossary import explain
from app.live_chart import live_chart
from app.markup import escape_markdown
from app.serving.pace import pace
from app.serving.server import run_store
from app.serving.store import Replay
from app.timing import seconds_left, wait_text
from core.config import Config
from core.limits import Limits
from core.meanfield import TheoryError
from core.measures import baseline, reference_configs
from core.theory import Prediction, predict_for
from core.verdict import Verdict, verdict

# plotly.js (3 and 4) offers by default a "Share chart..." button that uploads the chart to Plotly Cloud: a student's
# data leaves the classroom in one click. Streamlit's plotly_chart showed no such button; the page's charts show none
# either.
PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
LIVE_PLOT_CONFIG = {"staticPlot": True}
MAX_POINTS = 240  # snapshots drawn per curve: enough for any chart width, cheap to send 5 times a second
THEORY_KEY = "show_theory"  # the tabs' "Mean-field prediction" toggle (one choice for every tab)
LOSS_LOG_KEY = "loss_log"  # the loss charts' log-scale toggle (Training and Compare share the choice)
T = TypeVar("T")


# --- session state ----------------------------------------------------------------------------------------------
class Slot(Generic[T]):
    """One entry of `st.session_state`, read and written as an attribute of `SessionState`, with its type and its
    value when unset in one place. Its `key` is the session-state key (and the widget key, for a widget's value).
    The value when unset is shared by every session: assign a new value, never change one in place."""

    def __init__(self, default: T = None, key: str | None = None):
        self.default, self.key = default, key

    def __set_name__(self, owner, name: str) -> None:
        self.key = self.key or name

    def __get__(self, obj, owner=None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]  # on the class: the slot itself, for its key
        return st.session_state.get(self.key, self.default)

    def __set__(self, obj, value: T) -> None:
        st.session_state[self.key] = value


class SessionState:
    """Everything a session keeps between script runs, by name. Keys derived at run time (a widget of a sidebar
    generation, a kept widget value, a tab's cached figures) go through the functions that build them."""

    session_id: Slot[str | None] = Slot()
    boot_warning: Slot[str | None] = Slot()  # what was wrong with the URL the session opened
    config: Slot[Config | None] = Slot()  # the sidebar's config as last validated
    generation: Slot[int | None] = Slot(key="widget_generation")  # of the sidebar's config widgets
    preset: Slot[str | None] = Slot()  # widget
    instant: Slot[bool] = Slot(False, key="replay_instantly")  # widget: "Replay cached runs instantly"
    dataset_upload: Slot[Any] = Slot()  # widget: the uploaded dataset files (a list)
    uploaded_dataset: Slot[Any] = Slot()  # its Dataset: one per session, a new upload replaces it
    upload_error: Slot[str | None] = Slot()  # as Markdown (escaped, file names as code)
    train_key: Slot[str | None] = Slot()  # the run the Training tab watches
    train_frozen: Slot[int | None] = Slot()  # snapshots seen when Stop was pressed; None while it is watched live
    train_error: Slot[str | None] = Slot()
    run_upload: Slot[Any] = Slot()  # widget: the uploaded run file
    replay: Slot[Any] = Slot()  # its recorded run, shown in the Training tab
    replay_name: Slot[str | None] = Slot()
    run_upload_error: Slot[str | None] = Slot()  # as Markdown (escaped, file names as code)
    replay_load_error: Slot[str | None] = Slot()  # why the replay's settings could not be loaded into the sidebar
    compare: Slot[list] = Slot([])  # widget: the initialisers to compare
    compare_keys: Slot[dict] = Slot({})  # initialiser label -> its run's key
    compare_errors: Slot[list] = Slot([])
    compare_ended: Slot[dict | None] = Slot()  # compare_keys once its page has drawn them all ended
    tab_data: Slot[Any] = Slot()  # the open tab's TabData: its download


state = SessionState()


def kept(key: str) -> str:
    return f"kept_{key}"


def keep(key: str, default) -> dict:
    """Streamlit forgets the state of a widget that a run does not draw (one in a closed tab), so a widget's value
    lives in a copy: loaded into the widget before it is drawn, stored back when it changes. Returns the widget's
    on_change; the widget itself must not pass a default value."""
    ss = st.session_state
    ss.setdefault(kept(key), default)
    ss[key] = ss[kept(key)]
    return dict(on_change=lambda: ss.update({kept(key): ss[key]}))


def kept_value(key: str, default=None):
    """A kept widget's value, as it stands, before (or without) drawing the widget."""
    return st.session_state.setdefault(kept(key), default)


def set_kept(key: str, value) -> None:
    st.session_state[kept(key)] = value


def cached_figures(slot: str, token: tuple, build: Callable[[], dict], shared: bool = False):
    """`build()`'s figures, rebuilt only when `token` changes: most ticks of a slow run have no new snapshot and
    reuse the last ones, leaving the CPU to the training. `shared`: the token names the figures' content for every
    session (a run key is a config's JSON and its dataset's fingerprint), so a class watching one run builds them,
    and a live chart turns them into JSON, once."""
    if shared:
        return _shared_figures((slot, *token), build)
    cached = st.session_state.get(slot)
    if cached is None or cached[0] != token:
        cached = token, build()
        st.session_state[slot] = cached
    return cached[1]


@st.cache_resource(max_entries=128, show_spinner=False)
def _shared_figures(token: tuple, _build: Callable[[], dict]):
    return frozen(_build())  # kept, not copied for each session: pages draw figures, never change them


# --- shared, cached computation ---------------------------------------------------------------------------------
def probes_of(configs: list[Config], dataset, limits: Limits) -> list[tuple]:
    """Each config's probe at initialisation (app.serving.probes: computed once in a worker, kept for every
    session): (network, snapshot, which layers start as copies of one unit, the step-0 cost note)."""
    probes = run_store().probes
    if all(probes.kept(config, dataset) for config in configs):
        return probes.get(configs, dataset, limits)
    with st.spinner("Probing the network at initialisation…"):
        return probes.get(configs, dataset, limits)


def probe_of(config: Config, dataset, limits: Limits):
    """The config's network and its snapshot at initialisation."""
    return probes_of([config], dataset, limits)[0][:2]


def verdict_of(config: Config, dataset, limits: Limits) -> Verdict:
    """The verdict on the config, from the same probes the charts draw: its own and Xavier's and He's on the same
    network, asked for together."""
    references = reference_configs(config)
    (network, snapshot, identical, _), *others = probes_of([config, *references.values()], dataset, limits)
    return verdict(network, config, snapshot, baseline(dataset),
                   {name: probe[1] for name, probe in zip(references, others)}, identical)


def cost_note_of(config: Config, dataset, limits: Limits) -> str | None:
    """Why the course would print cost inf at step 0 where Init Lab shows a number (None when it would not)."""
    return probes_of([config], dataset, limits)[0][3]


@st.cache_data(max_entries=64, show_spinner=False)
def cached_prediction(config_json: str, fingerprint: str, _dataset) -> Prediction:
    return predict_for(Config.from_json(config_json), _dataset)


def prediction_of(config: Config, dataset) -> Prediction | None:
    """The mean-field prediction, if the tab's theory toggle (drawn by the caller) is on and theory applies."""
    if not kept_value(THEORY_KEY, True) or dataset is None:
        return None
    try:
        prediction = cached_prediction(config.to_json(), dataset.fingerprint(), dataset)
    except TheoryError as e:
        st.caption(f"No prediction: {escape_markdown(e)}.")
        return None
    if prediction.unpredicted:
        st.caption(f"Dashed lines with gaps: {escape_markdown(prediction.unpredicted)}.")
    return prediction


def run_elapsed(run) -> float | None:
    """Seconds since a `run` still computing (or replaying) started: a replay's clock starts when this session
    pressed Start, a run's when its worker started training it (as told by its file; None before that)."""
    if isinstance(run, Replay):
        return run.clock() - run.started
    return None if run.started is None else time.perf_counter() - run.started


def run_wait(run, snapshots) -> str:
    """Elapsed and estimated time left of a `run` still computing (or replaying), of which `snapshots` are shown."""
    elapsed = run_elapsed(run)
    if elapsed is None:  # its worker has not written its first snapshot yet
        return "estimating…"
    return wait_text([s.step for s in snapshots], run.offsets, run.config.iterations, elapsed)


def run_seconds_left(run) -> float | None:
    """The estimated seconds until a run still computing (or replaying) ends; None while there is no estimate."""
    elapsed, snapshots = run_elapsed(run), run.snapshots
    if elapsed is None:
        return None
    return seconds_left([s.step for s in snapshots], run.offsets, run.config.iterations, elapsed)


def live_fragment(view: Callable, fastest: float, live: bool) -> Callable:
    """``view`` as a fragment that, while ``live``, reruns on its own every `pace.every(fastest)` seconds: at its own
    pace in a small class, slower in a large one (app/serving/pace.py). Each of its runs counts the page as open."""
    @functools.wraps(view)  # the fragment's identity is the view's (Streamlit names a fragment by its function)
    def counted(*args, **kwargs):
        pace.saw(state.session_id)
        return view(*args, **kwargs)

    return st.fragment(run_every=pace.every(fastest) if live else None)(counted)


# --- shared widgets ---------------------------------------------------------------------------------------------
def theory_toggle(container) -> None:
    container.toggle("Mean-field prediction (dashed)", key=THEORY_KEY, **keep(THEORY_KEY, True),
                     help=explain("mean-field") + "\n\nSee the Theory tab.")


def loss_log_toggle() -> bool:
    return st.toggle("Log scale for the loss", key=LOSS_LOG_KEY, **keep(LOSS_LOG_KEY, False),
                     help="Off: a linear axis from 0, clipped above so that a spike does not flatten the rest.")


def chart(fig, key: str, caption: str | None, live: bool = False, csv: bool = True, help: str | None = None) -> None:
    """A figure and what to look for in it (`help`: hover help for its words, app.glossary; a `caption` of None is
    written elsewhere by the caller); unless not `csv`, its data goes into the tab's one download (`data_download`).
    Drawn by `live_chart`, in turn with the page's other charts; a `live` one as a static picture: it is replaced
    several times a second, so hover and zoom could not be used anyway, and skipping their setup makes the browser's
    redraw cheaper."""
    live_chart(fig, key, LIVE_PLOT_CONFIG if live else PLOT_CONFIG)
    if caption is not None:
        st.caption(caption, help=help)
    if csv:
        tab_data().figures[key] = fig


def table(rows: list[dict]) -> None:
    """Rows of text (dicts with the same keys) as a table. Built as an Arrow table, index hidden: st.table given the
    list built a pandas frame of Arrow strings and checked its index, 3-4 ms of a Compare tick that every student
    watching a run pays each second; this way 0.1 ms."""
    if rows:
        st.table(pa.table({name: [row[name] for row in rows] for name in rows[0]}), hide_index=True)


class TabData:
    """What the open tab's download holds: the latest figure of each of its charts (a live chart's redraw replaces
    its own) and, where the tab has them, the per-layer statistics. The download reads it when it is pressed, so it
    writes what is on screen then. One download a tab, not one a chart: every download button is registered with
    Streamlit's media manager, whose one lock every page run of every session takes, and whose cleanup after every
    run walks every session's buttons (with 30 students, a CSV button beside each chart cost the server a third of
    its CPU: tests/load/load_test.py)."""

    def __init__(self):
        self.figures: dict[str, Any] = {}
        self.statistics: Callable[[], str] | None = None

    def zip(self) -> bytes:
        return export.data_zip(self.figures, None if self.statistics is None else self.statistics())


def begin_tab_data() -> None:
    """A new page run: the open tab's charts register anew (a fragment's rerun replaces only its own)."""
    state.tab_data = TabData()


def tab_data() -> TabData:
    data = state.tab_data
    if data is None:  # a page not begun by page.main (a tab's module drawn on its own)
        begin_tab_data()
        data = state.tab_data
    return data


def data_download(container, name: str) -> None:
    """The tab's one download: a .zip of a CSV for each of its charts (`chart`) and its statistics, if any."""
    container.download_button("Data (.zip)", data=tab_data().zip, file_name=f"initlab-{name}.zip",
                              mime="application/zip", key=f"{name}_data", on_click="ignore",
                              help="This tab's charts as CSV files, one per chart (series, x, y), and where the tab "
                                   "has them its per-layer statistics (statistics.csv), as they are on screen when "
                                   "you press it.")


WHY_INIT = r"""
Each layer computes $Z^l = W^l A^{l-1} + b^l$. With independent zero-mean weights,
$\mathrm{Var}(Z^l) = n_{l-1}\,\mathrm{Var}(W^l)\,\mathrm{E}[(A^{l-1})^2]$: every layer multiplies the signal's
variance by a factor. Below 1 the signal shrinks geometrically with depth (randn×0.01: activations and gradients
vanish), above 1 it explodes or saturates tanh. The classic choices make the factor 1:
"""


def why(body: str) -> None:
    with st.expander("Why?"):
        st.markdown(body)
        st.latex(r"\mathrm{Var}(W) = \frac{1}{n_{in}}\ \text{(LeCun)},\qquad \frac{2}{n_{in}}\ \text{(He, ReLU)},"
                 r"\qquad \frac{2}{n_{in}+n_{out}}\ \text{(Xavier/Glorot)}")
