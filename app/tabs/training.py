"""The Training tab: start and stop a run shared with every session training the same config, watch its loss,
accuracy and per-layer statistics as it learns, or replay a recorded run (uploaded in the Run file tab)."""

from __future__ import annotations

import streamlit as st

from app import verdict_view
from app.replay import render_header, run_network
from app.charts import export
from app.charts.training import HEATMAP_QUANTITIES, layer_figures, progress_figures
from app.glossary import explain
from app.markup import escape_markdown
from app.serving.server import run_store
from app.serving.store import DIVERGED, FINISHED, RUNNING
from app.timing import duration
from app.ui import (LOSS_LOG_KEY, MAX_POINTS, cached_figures, chart, data_download, kept_value, live_fragment,
                   loss_log_toggle, prediction_of, run_wait, state, tab_data, theory_toggle, verdict_of, why)
from core.config import Config, ConfigError
from core.limits import Limits
from core.measures import chance_cost
from core.network import Network
from core.stats import latest_test_accuracy

LIVE_SECONDS = 0.2  # progress and curves redraw 5 times a second while the watched run computes
LAYER_SECONDS = 1.0  # and the per-layer figures once a second

WHY_TRAIN = r"""
Gradient descent moves $W^l \leftarrow W^l - \alpha\, dW^l$ with $dW^l = \frac{1}{m}\, dZ^l (A^{l-1})^\top$: a layer
whose activations or back-propagated gradients vanished at initialisation gets no update, and the loss sits at
$\ln 2 \approx 0.693$ (the net predicts one class). The update-to-weight ratio
$\lVert \alpha\, dW^l\rVert / \lVert W^l\rVert$ near $10^{-3}$ is a healthy pace (Karpathy's rule of thumb).
"""


def start_training(config: Config, dataset, limits: Limits) -> None:
    try:
        run_store().reserve(state.session_id, "training")
        run = run_store().start(config, dataset, state.session_id, limits, instant=state.instant)
    except ConfigError as e:
        state.train_error = f"Refused before starting: {e}"
        return
    state.train_error = None
    state.train_key, state.train_frozen, state.replay = run.key, None, None


def stop_training() -> None:
    run = run_store().get(state.train_key or "")
    if run is not None:
        state.train_frozen = len(run.snapshots)
        run_store().detach(run.key, state.session_id)


def watched_run():
    run = run_store().get(state.train_key or "", state.session_id)
    live = run is not None and not run.done and state.train_frozen is None
    return run, live


def training_verdict(config: Config, dataset, limits: Limits, run) -> None:
    """The panel: the watched (or replayed) run's verdict at initialisation and, once it has finished, its accuracy
    against the majority-class baseline; before any run, the sidebar config's verdict. A run on other data than the
    sidebar's has no panel (its labels, for the baseline, are not here)."""
    replay = state.replay
    if replay is not None:
        if dataset.fingerprint() == replay.dataset_fingerprint:
            verdict_view.render_run(replay.config, run_network(replay),
                                    replay.snapshots[-1] if replay.snapshots else None,
                                    replay.complete and not replay.stopped_reason, dataset, limits)
        return
    if run is None:
        verdict_view.render(verdict_of(config, dataset, limits), folded=True)
        return
    if (run.config.dataset, run.config.standardize) == (config.dataset, config.standardize):
        _, snapshots = watched_snapshots()
        verdict_view.render_run(run.config, run.network, snapshots[-1] if snapshots else None,
                                run.status == FINISHED and state.train_frozen is None, dataset, limits)


def render(config: Config, dataset, limits: Limits) -> None:
    """The first screen holds the verdict, one row of controls and status, then the loss and accuracy curves: at
    1280x720 (a projector) the curves are in view without scrolling. The numbers and the "Why?" come after them."""
    run, live = watched_run()
    training_verdict(config, dataset, limits, run)
    if state.replay is not None:
        controls(config, dataset, limits, live)
        render_header()
        draw_replay(state.replay, dataset)
    elif run is None:
        controls(config, dataset, limits, live).info("Press Start to train this config; the charts update while it "
                                                     "learns.")
    else:
        same_data = (run.config.dataset, run.config.standardize) == (config.dataset, config.standardize)
        # Two timers: the browser redraws a changed Plotly chart from scratch, and the per-layer figures cost it ~4x
        # the loss curves, so they refresh once a second while the controls, status and curves refresh 5 times.
        live_fragment(live_progress, LIVE_SECONDS, live)(config, dataset, limits, live)
        live_fragment(live_layers, LAYER_SECONDS, live)(dataset if same_data else None, live)
    why(WHY_TRAIN)


def controls(config: Config, dataset, limits: Limits, live: bool):
    """Start and Stop, and beside them the container for the status, which the caller fills."""
    start, stop, status = st.columns([1, 1, 8], vertical_alignment="center")
    start.button("Start", key="start", type="primary", disabled=live, on_click=start_training,
                 args=(config, dataset, limits))
    stop.button("Stop", key="stop", disabled=not live, on_click=stop_training)
    if state.train_error:
        st.error(escape_markdown(state.train_error))
    return status


def live_progress(config: Config, dataset, limits: Limits, live: bool) -> None:
    """The controls, the watched run's status and its loss and accuracy curves and latest figures. Start and Stop
    are drawn here, beside the status they change: a click reruns this fragment only, so a change of liveness (or
    the run's end) reruns the page once, to set the timers anew."""
    if watched_run()[1] != live:
        st.rerun()
    status = controls(config, dataset, limits, live)
    run, snapshots = watched_snapshots()
    if run is None:
        status.warning("This run was dropped from the server's cache; press Start to run it again.")
        return
    frozen = state.train_frozen
    phase = run.status if frozen is None else "stopped"
    last = snapshots[-1].step if snapshots else 0
    if phase == RUNNING and run.queued:
        status.info(f"Waiting for a free worker to train this run ({run.config.iterations:,} steps): the server's "
                    "workers are busy with other students' runs.")
    elif phase == RUNNING:
        status.info(f"Training… step {last:,} of {run.config.iterations:,} · {run_wait(run, snapshots)}")
    elif phase == FINISHED:
        status.success(f"Finished {run.config.iterations:,} steps" + (f" in {duration(run.seconds)}."
                                                                      if run.seconds else ".")
                       + (" Replayed from the run cache." if run.cached else ""))
    elif phase == DIVERGED:
        status.error(f"The run {escape_markdown(run.message)}")
    else:
        status.warning(escape_markdown(run.message) if frozen is None and run.message else
                       f"Stopped at step {last:,}: the charts show the run up to there.")
    if run.config != config:
        st.caption("These charts show the run of an earlier setting; press Start to train the sidebar's config.")
    draw_progress(snapshots, "live", run.key, run.network, live, shared=True)


def watched_snapshots():
    """The watched run (None if the server dropped it) and the snapshots this session sees: all, or up to Stop."""
    run = run_store().get(state.train_key or "", state.session_id)
    if run is None:
        return None, []
    frozen = state.train_frozen
    return run, run.snapshots[:frozen] if frozen is not None else run.snapshots[:]


def live_layers(dataset, live: bool) -> None:
    """The watched run's per-layer figures; `dataset` (for the decision boundary) is None if it is not the run's."""
    run, snapshots = watched_snapshots()
    if run is not None:
        draw_layers(snapshots, run.config, run.network, run.step_params, dataset, "live", run.key,
                    live and not run.done, shared=True)


def draw_replay(recorded, dataset) -> None:
    network = run_network(recorded)
    if recorded.stopped_reason:
        st.warning(f"The recorded run ended early: {escape_markdown(recorded.stopped_reason)}")
    same_data = dataset.fingerprint() == recorded.dataset_fingerprint
    draw_progress(recorded.snapshots, "replay", state.replay_name, network)
    draw_layers(recorded.snapshots, recorded.config, network, recorded.step_params, dataset if same_data else None,
                "replay", state.replay_name)


TRAINING_CAPTIONS = {
    "loss": "A loss stuck at 0.693 (ln 2) means the net predicts one class for everything.",
    "accuracy": "The gap between train and test is overfitting; flat lines mean nothing is learned.",
    "a_std": "Lines far apart on this log scale mean the signal shrinks or grows through depth. Dashed: each "
             "layer's std predicted at initialisation.",
    "dw_norm": "Early layers (dark) far below late ones (light): vanishing gradients.",
    "update_ratio": "Near the dashed 1e-3 line is a healthy pace; far below, the layer is frozen.",
    "boundary": "Colour is P(class 1). A boundary that follows the classes is learning; one plain colour means "
                "one class everywhere.",
    "heatmap": "Bright bands that narrow to one row mean the layer's values collapsed to one value.",
    "gamma": "γ starts at 1 (at 0 for zero-initialised residual branches): the scale each layer learns to give "
             "its normalised Z.",
}
TRAINING_HELP = {name: explain(*terms) for name, terms in {
    "a_std": ("Z, A", "mean-field"), "dw_norm": ("dW norm", "dZ"), "update_ratio": ("update-to-weight ratio",),
    "heatmap": ("Z, A", "dZ"),
}.items()}
LAYER_COLUMNS = (("a_std", "dw_norm", "boundary"), ("update_ratio", "gamma", "heatmap"))


def draw_progress(snapshots, prefix: str, run_id: str, network: Network, live: bool = False,
                  shared: bool = False) -> None:
    """The loss and accuracy curves, then the latest figures in one row with the loss axis's scale and the data's
    download. `shared`: `run_id` is a run key, whose figures every session watching it shares (ui.cached_figures)."""
    if not snapshots:
        st.caption("Waiting for the first snapshot…")
        return
    log_y = kept_value(LOSS_LOG_KEY, False)  # its toggle sits below the curves, in the row of figures
    figs = cached_figures(f"{prefix}_progress_figures", (run_id, len(snapshots), log_y),
                          lambda: progress_figures(snapshots, MAX_POINTS, chance_cost(network), log_y), shared)
    for column, name in zip(st.columns(2), ("loss", "accuracy")):
        with column:
            chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live)
    last = snapshots[-1]
    a, b, c, d, e = st.columns([2, 2, 2, 3, 2], vertical_alignment="center")
    a.metric("Loss", f"{last.loss:.4f}")
    b.metric("Train accuracy", f"{last.train_accuracy:.2f}")
    c.metric("Test accuracy", f"{latest_test_accuracy(snapshots):.2f}")
    with d:
        loss_log_toggle()
    tab_data().statistics = lambda: export.run_csv(snapshots)
    data_download(e, f"{prefix}-run-{run_id[:8]}")


def draw_layers(snapshots, config: Config, network: Network, step_params, dataset, prefix: str, run_id: str,
                live: bool = False, shared: bool = False) -> None:
    """`dataset` is the run's own data, or None when the sidebar's is another (no boundary, no prediction);
    `step_params` the weights the run kept by step, for the boundary (core.record.params_at); `shared` as for
    `draw_progress`."""
    if not snapshots:
        return
    theory_toggle(st)
    prediction = prediction_of(config, dataset)
    quantity_key = f"{prefix}_heat_q"
    quantity = st.session_state.get(quantity_key, "a")
    figs = cached_figures(f"{prefix}_layer_figures",
                          (run_id, len(snapshots), quantity, dataset is None, prediction is None),
                          lambda: layer_figures(snapshots, network, step_params, dataset, quantity, MAX_POINTS,
                                                predicted_a_std=None if prediction is None else prediction.a_std),
                          shared)
    for column, names in zip(st.columns(2), LAYER_COLUMNS):
        with column:
            for name in names:
                if name == "heatmap":  # its choice was read from session state above; the widget sits here
                    st.selectbox("Histograms over time of", list(HEATMAP_QUANTITIES), key=quantity_key,
                                 format_func=HEATMAP_QUANTITIES.get, help=TRAINING_HELP["heatmap"])
                if name in figs:
                    chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live, help=TRAINING_HELP.get(name))
