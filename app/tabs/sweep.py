"""The Sweep tab: train a grid of (sigma_w^2, depth) networks on the server's cluster and see where depth trains,
with the mean-field theory's critical line and trainable depth 6 xi_c on top (Schoenholz et al. 2017, Fig. 5-6).

The sidebar gives everything but the grid: dataset, optimizer, learning rate, batch, seed. The sweep runs on the
server (app/serving/sweeps.py), queued behind any other; the page reads it every second while it runs. A sweep file
(downloaded here, or written by `python -m core sweep --out`) reopens here, read through the sandbox as every upload.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from app.charts.sweep import cell_loss_curve, clicked_cell, sweep_heatmap, theory_axis
from app.markup import code, escape_markdown, with_file_names_as_code
from app.replay import CUSTOM_PRESET
from app.serving.cache import session_owner
from app.serving.sweeps import QUEUED, RUNNING, STOPPED, ServerSweep, sweep_queue
from app.state import TAB_PARAM, TRAINING_TAB, to_query
from app.ui import PLOT_CONFIG, Slot, live_fragment, state
from core.activations import ACTIVATIONS
from core.config import ConfigError
from core.limits import Limits
from core.record import RunFileError
from core.sweep import SweepLimits, SweepSpec, boundary_depths, critical_sigma_w2, trainable_depths
from core.sweep_cli import clock
from core.sweep_file import SweepResults, read_uploaded_sweep, write_sweep

TICK_SECONDS = 1.0  # how often a running sweep's page reads it
HEATMAP_KEY = "sweep_heatmap"
CELL_KEY = "sweep_cell"  # the cell picker: what a click on the heatmap sets, or a keyboard's choice


class SweepState:
    """What the Sweep tab keeps between script runs (app.ui.Slot: one session-state entry each)."""

    key: Slot[str | None] = Slot(key="sweep_key")  # the server sweep this session shows
    upload: Slot = Slot(key="sweep_upload")  # widget: an uploaded sweep file
    uploaded: Slot = Slot(key="sweep_uploaded")  # its SweepResults, shown instead of a server sweep
    uploaded_name: Slot[str | None] = Slot(key="sweep_uploaded_name")
    upload_error: Slot[str | None] = Slot(key="sweep_upload_error")
    error: Slot[str | None] = Slot(key="sweep_error")
    waiting: Slot[tuple[int, int] | None] = Slot(key="sweep_waiting_cell")  # clicked before computed: shown once it is


sweep_state = SweepState()


def take_upload() -> None:
    upload = sweep_state.upload
    if upload is None:
        return
    try:
        sweep_state.uploaded = read_uploaded_sweep(upload.getvalue(), upload.name)
        sweep_state.uploaded_name, sweep_state.upload_error = upload.name, None
    except RunFileError as e:
        sweep_state.uploaded, sweep_state.upload_error = None, with_file_names_as_code(e, [upload.name])


def grid_form(config, dataset, limits: Limits, caps: SweepLimits) -> SweepSpec | None:
    """The grid's widgets; the spec they describe, or None (with the reason shown) if it is over a cap."""
    st.markdown(f"The sidebar's dataset ({code(config.dataset)}), optimizer ({config.optimizer}, lr {config.lr:g}, "
                f"{'full batch' if config.batch_size == 0 else f'batches of {config.batch_size}'}) and seed; every "
                "cell's weights are LeCun normal × √σ_w² (so n_in·Var(W) = σ_w²) and its biases N(0, σ_b²).")
    names = list(ACTIVATIONS)
    first = config.hidden_activations[0]
    left, middle, right = st.columns(3)
    activation = left.selectbox("Activation", names, index=names.index(first) if first in names else 0,
                                key="sweep_activation")
    width = middle.number_input("Width (units per layer)", 1, limits.max_width, 32, key="sweep_width")
    sigma_b2 = right.number_input("σ_b² (bias variance)", 0.0, 10.0, 0.05, step=0.01, format="%g",
                                  key="sweep_sigma_b2")
    left, middle, right = st.columns(3)
    low, high = left.slider("σ_w² from, to", 0.1, 8.0, (0.5, 4.0), step=0.1, key="sweep_sigma_w2")
    columns = left.number_input("σ_w² values", 1, caps.max_cells, min(8, caps.max_cells), key="sweep_columns")
    deepest = max(1, limits.max_layers - 1)
    shallow, deep = middle.slider("Depth from, to (hidden layers)", 1, deepest, (4, min(40, deepest)),
                                  key="sweep_depth")
    rows = middle.number_input("Depths", 1, caps.max_cells, min(7, caps.max_cells), key="sweep_rows")
    steps = right.number_input("Training steps per cell", 1, caps.max_sweep_steps, min(300, caps.max_sweep_steps),
                               key="sweep_steps")
    right.caption(f"This server's caps: {caps.max_cells} cells, {caps.max_sweep_steps:,} steps a cell, "
                  f"{deepest} hidden layers.")
    depths = tuple(int(d) for d in np.unique(np.round(np.linspace(shallow, deep, int(rows)))))
    spec = SweepSpec(config.replace(activation=activation, iterations=int(steps)),
                     tuple(float(v) for v in np.round(np.linspace(low, high, int(columns)), 6)), depths, int(width),
                     float(sigma_b2))
    try:
        spec.check(dataset, limits, caps)
    except ConfigError as e:
        st.error(escape_markdown(e))
        return None
    return spec


def run(spec: SweepSpec, dataset) -> None:
    try:
        sweep_state.key = sweep_queue().submit(spec, dataset, session_owner(state.session_id)).key
        sweep_state.uploaded, sweep_state.error, sweep_state.waiting = None, None, None
    except ConfigError as e:
        sweep_state.error = str(e)


def stop() -> None:
    sweep = sweep_queue().get(sweep_state.key)
    if sweep is not None:
        sweep_queue().stop(sweep)


def status_line(sweep: ServerSweep) -> None:
    if sweep.status == QUEUED:
        position = sweep_queue().position(sweep)
        st.info(f"Waiting: number {position} in this server's queue. One sweep runs at a time, so that a class "
                "shares the cores fairly; this page fills in as soon as it starts.")
        return
    done, total = len(sweep.results), sweep.spec.shape[0] * sweep.spec.shape[1]
    eta = sweep.run.eta() if sweep.run is not None and sweep.status == RUNNING else 0.0
    cached = f" ({sweep.run.cached} from the cache)" if sweep.run is not None and sweep.run.cached else ""
    text = (f"{done} of {total} cells{cached} · elapsed {clock(sweep.elapsed())}" +
            (f" · about {clock(eta)} left" if sweep.status == RUNNING else f" · {sweep.status}"))
    st.progress(done / total if total else 1.0, text=text)
    if sweep.message:
        (st.warning if sweep.status == STOPPED else st.error)(escape_markdown(sweep.message))


def cell_name(spec: SweepSpec, cell: tuple[int, int]) -> str:
    row, column = cell
    return f"σ_w² = {spec.sigma_w2[column]:g}, depth {spec.depths[row]}"


def take_click(spec: SweepSpec) -> None:
    """A click on the heatmap picks its cell: the picker shows it (one not computed yet once it is: `cell_picker`)."""
    cell = clicked_cell(spec, st.session_state.get(HEATMAP_KEY))
    if cell is not None:
        st.session_state[CELL_KEY], sweep_state.waiting = cell, None


def cell_picker(spec: SweepSpec, results: dict) -> tuple[int, int] | None:
    """The picked cell, from a click on the heatmap or the picker's list of computed cells (keyboard friendly)."""
    computed = sorted(results)
    wanted = st.session_state.get(CELL_KEY)
    if wanted is not None and wanted not in computed:  # clicked before it was computed, or a cell of another grid
        st.session_state[CELL_KEY] = None
        sweep_state.waiting = wanted if wanted in set(spec.cells()) else None
    waiting = sweep_state.waiting
    if waiting is not None and waiting in results:  # the clicked cell is in: show it
        st.session_state[CELL_KEY], sweep_state.waiting = waiting, None
    elif waiting is not None:
        st.caption(f"{cell_name(spec, waiting)} is not computed yet: it shows here as soon as it is.")
    return st.selectbox("Cell", computed, index=None, key=CELL_KEY, format_func=lambda c: cell_name(spec, c),
                        placeholder="Click a cell in the heatmap, or choose one here", on_change=forget_waiting,
                        help="Its loss curve and a link that trains it in the Training tab.")


def forget_waiting() -> None:
    sweep_state.waiting = None


def training_link(config) -> str:
    """A link to a new page with ``config`` in the sidebar and the Training tab open."""
    return "?" + urlencode(to_query(config, CUSTOM_PRESET) | {TAB_PARAM: TRAINING_TAB})


def show_cell(spec: SweepSpec, results: dict, cell: tuple[int, int] | None) -> None:
    if cell is None:
        return
    row, column = cell
    figures = results[cell]
    title = cell_name(spec, cell)
    st.plotly_chart(cell_loss_curve(figures, f"Loss while training, {title}"), key="sweep_cell_curve",
                    config=PLOT_CONFIG, theme=None)
    outcome = "diverged" if figures["diverged"] else (
        f"train accuracy {figures['train_accuracy']:.1%}, test {figures['test_accuracy']:.1%}, "
        f"loss {figures['loss']:.4g}")
    left, right = st.columns([3, 2], vertical_alignment="center")
    left.caption(f"{title}: {outcome}.")
    right.link_button("Open in the Training tab ↗", training_link(spec.cell_config(row, column)),
                      help="A new page with this cell's settings in the sidebar: press Start in its Training tab.")


def theory_table(spec: SweepSpec, results: dict, classes: int) -> None:
    """Per sigma_w^2: the deepest trained cell beside 6 xi_c (once every cell of the column is in)."""
    boundary = boundary_depths(spec, results, classes)
    theory = trainable_depths(spec.base.activation, spec.sigma_w2, spec.sigma_b2)
    st.dataframe({"σ_w²": [f"{s:g}" for s in spec.sigma_w2],
                  "deepest trained": ["–" if not math.isfinite(b) else f"{b:.0f}" for b in boundary],
                  "6 ξ_c (theory)": ["∞" if t == math.inf else "–" if not math.isfinite(t) else f"{t:.0f}"
                                     for t in theory]},
                 hide_index=True, key="sweep_theory_table")
    st.caption(f"A cell counts as trained if its train accuracy is at least halfway from chance (1/{classes}) to "
               "100% without diverging; \"deepest trained\" is the deepest such cell per σ_w² (– until the column "
               "is complete or if none trained).")


def show(spec: SweepSpec, results: dict, classes: int, live: bool) -> None:
    axis = theory_axis(spec)
    picked = st.session_state.get(CELL_KEY)
    picked = picked if picked in results else None
    figure = sweep_heatmap(spec, results, axis, trainable_depths(spec.base.activation, axis, spec.sigma_b2),
                           critical_sigma_w2(spec.base.activation, spec.sigma_b2), picked)
    st.plotly_chart(figure, key=HEATMAP_KEY, config=PLOT_CONFIG, theme=None, on_select=lambda: take_click(spec),
                    selection_mode="points")
    st.caption("Each cell is one network trained from scratch: bright cells learned, dark ones did not. The dashed "
               "curve is 6 ξ_c, the depth to which the mean-field theory says signals (and so training) get through; "
               "the dotted line is the edge of chaos χ₁ = 1, where ξ_c is infinite." +
               (" Cells appear as they finish." if live else ""))
    show_cell(spec, results, cell_picker(spec, results))
    theory_table(spec, results, classes)


def download(spec: SweepSpec, results: dict, dataset) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sweep.h5"
        write_sweep(path, SweepResults(spec, dataset.name, dataset.fingerprint(), classes_of(dataset), results))
        data = path.read_bytes()
    st.download_button("Download the sweep (.h5)", data, file_name="initlab-sweep.h5", mime="application/x-hdf5",
                       key="sweep_download", help="Reopen it here, or read it with h5py.")


def classes_of(dataset) -> int:
    return dataset.output_size if dataset.output_size > 1 else 2


def server_view(was_live: bool) -> None:
    sweep = sweep_queue().get(sweep_state.key)
    if sweep is None:
        st.caption("Choose the grid and press Run.")
        return
    if was_live and sweep.ended:
        st.rerun()  # the whole page: Stop greys out, the download appears, and the ticking stops
    status_line(sweep)
    if sweep.status == QUEUED:
        return
    ended = sweep.ended  # read before the results: a sweep ends after its last result is in
    results = sweep.results
    show(sweep.spec, results, classes_of(sweep.dataset), not ended)
    if ended and results:
        download(sweep.spec, results, sweep.dataset)


def render(config, dataset, limits: Limits) -> None:
    with st.expander("Why?"):
        st.markdown("Schoenholz et al. (2017) trained hundreds of networks over weight variance and depth: a network "
                    "trains only where its depth is below about 6 ξ_c, the depth over which two inputs' correlation "
                    "settles (`core/criticality.py`). ξ_c is infinite on the edge of chaos χ₁ = 1, so there any depth "
                    "trains. Make the picture: run a sweep and see the bright region hug the dashed curve.")
    try:
        caps = SweepLimits.from_env()
    except ConfigError as e:
        st.error(escape_markdown(e))
        return
    spec = grid_form(config, dataset, limits, caps)
    left, middle, _ = st.columns([1, 1, 4])
    left.button("Run", type="primary", key="sweep_run", disabled=spec is None, on_click=run, args=(spec, dataset))
    sweep = sweep_queue().get(sweep_state.key)
    middle.button("Stop", key="sweep_stop", disabled=sweep is None or sweep.ended, on_click=stop,
                  help="Cancels the cells not started; those running finish and are kept.")
    if sweep_state.error:
        st.error(escape_markdown(sweep_state.error))
    if sweep_state.uploaded is not None:
        uploaded = sweep_state.uploaded
        st.success(f"Showing {code(sweep_state.uploaded_name)}: {len(uploaded.results)} cells on "
                   f"{code(uploaded.dataset_name)}. Press Run to show this server's sweep instead.")
        show(uploaded.spec, uploaded.results, uploaded.classes, False)
    else:
        live = sweep is not None and not sweep.ended
        live_fragment(server_view, TICK_SECONDS, live)(live)
    st.file_uploader("Open a sweep file (.h5)", type=["h5"], key=SweepState.upload.key, on_change=take_upload)
    if sweep_state.upload_error:
        st.error(sweep_state.upload_error)
