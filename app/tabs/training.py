"""The Training tab: start and stop a run shared with every session training the same config, watch its loss,
accuracy and per-layer statistics as it learns, or replay a recorded run (uploaded in the Run file tab)."""

from __future__ import annotations

import streamlit as st

from app import verdict_view
from app.charts import export
from app.charts.training import HEATMAP_QUANTITIES, layer_figures, progress_figures
from app.markup import escape_markdown
from app.serving.store import DIVERGED, FINISHED, RUNNING, run_store
from app.ui import (MAX_POINTS, cached_figures, chart, loss_log_toggle, prediction_of, state, theory_toggle, verdict_of,
                   why)
from core.config import Config, ConfigError
from core.limits import Limits
from core.network import Network
from core.verdict import chance_cost

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
            network = Network(tuple(replay.network_dims), tuple(replay.activations[:len(replay.network_dims) - 2]))
            verdict_view.render_run(replay.config, network, replay.snapshots[-1] if replay.snapshots else None,
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
    run, live = watched_run()
    training_verdict(config, dataset, limits, run)
    why(WHY_TRAIN)
    left, middle, right = st.columns([1, 1, 5])
    left.button("Start", key="start", type="primary", disabled=live, on_click=start_training,
                args=(config, dataset, limits))
    middle.button("Stop", key="stop", disabled=not live, on_click=stop_training)
    if state.train_error:
        st.error(escape_markdown(state.train_error))
    if state.replay is not None:
        right.info(f"Replaying a recorded run ({escape_markdown(state.replay_name)}). Start a run to leave the replay.")
        draw_replay(state.replay, dataset)
        return
    if run is None:
        right.info("Press Start to train this config; the charts update while it learns.")
        return
    same_data = (run.config.dataset, run.config.standardize) == (config.dataset, config.standardize)
    if run.config != config:
        st.caption("These charts show the run of an earlier setting; press Start to train the sidebar's config.")
    # Two timers: the browser redraws a changed Plotly chart from scratch, and the per-layer figures cost it ~4x the
    # loss curves, so they refresh once a second while the progress and the curves refresh 5 times.
    st.fragment(run_every=LIVE_SECONDS if live else None)(live_progress)(live)
    st.fragment(run_every=LAYER_SECONDS if live else None)(live_layers)(dataset if same_data else None, live)


def watched_snapshots():
    """The watched run (None if the server dropped it) and the snapshots this session sees: all, or up to Stop."""
    run = run_store().get(state.train_key or "", state.session_id)
    if run is None:
        return None, []
    frozen = state.train_frozen
    return run, run.snapshots[:frozen] if frozen is not None else run.snapshots[:]


def live_progress(live: bool) -> None:
    """The watched run's status, latest figures and loss and accuracy curves."""
    run, snapshots = watched_snapshots()
    if run is None:
        st.warning("This run was dropped from the server's cache; press Start to run it again.")
        return
    frozen = state.train_frozen
    status = run.status if frozen is None else "stopped"
    last = snapshots[-1].step if snapshots else 0
    if status == RUNNING and run.queued:
        st.info(f"Waiting for a free worker to train this run ({run.config.iterations:,} steps): the server's "
                "workers are busy with other students' runs.")
    elif status == RUNNING:
        st.info(f"Training… step {last:,} of {run.config.iterations:,}")
    elif status == FINISHED:
        st.success(f"Finished {run.config.iterations:,} steps" + (f" in {run.seconds:.1f} s." if run.seconds else ".")
                   + (" Replayed from the run cache." if run.cached else ""))
    elif status == DIVERGED:
        st.error(f"The run {escape_markdown(run.message)}")
    else:
        st.warning(escape_markdown(run.message) if frozen is None and run.message else
                   f"Stopped at step {last:,}: the charts show the run up to there.")
    draw_progress(snapshots, "live", run.key, run.network, live and not run.done)
    if live and run.done:
        st.rerun()  # the run ended: redraw the whole page once, without the timers


def live_layers(dataset, live: bool) -> None:
    """The watched run's per-layer figures; `dataset` (for the decision boundary) is None if it is not the run's."""
    run, snapshots = watched_snapshots()
    if run is not None:
        draw_layers(snapshots, run.config, run.network, run.params, dataset, "live", run.key, live and not run.done)


def draw_replay(recorded, dataset) -> None:
    network = Network(tuple(recorded.network_dims), tuple(recorded.activations[:len(recorded.network_dims) - 2]))
    if recorded.stopped_reason:
        st.warning(f"The recorded run ended early: {escape_markdown(recorded.stopped_reason)}")
    same_data = dataset.fingerprint() == recorded.dataset_fingerprint
    draw_progress(recorded.snapshots, "replay", state.replay_name, network)
    draw_layers(recorded.snapshots, recorded.config, network, recorded.final_params, dataset if same_data else None,
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
}
LAYER_COLUMNS = (("a_std", "dw_norm", "boundary"), ("update_ratio", "heatmap"))


def draw_progress(snapshots, prefix: str, run_id: str, network: Network, live: bool = False) -> None:
    if not snapshots:
        st.caption("Waiting for the first snapshot…")
        return
    last = snapshots[-1]
    a, b, c, d = st.columns([2, 2, 2, 1], vertical_alignment="center")
    a.metric("Loss", f"{last.loss:.4f}")
    b.metric("Train accuracy", f"{last.train_accuracy:.2f}")
    c.metric("Test accuracy", f"{last.test_accuracy:.2f}")
    d.download_button("Statistics (CSV)", data=lambda: export.run_csv(snapshots), mime="text/csv",
                      file_name=f"initlab-run-{run_id[:8]}.csv", key=f"{prefix}_stats_csv", on_click="ignore",
                      help="Every per-layer statistic of every snapshot so far: one row per step and layer.")
    log_y = loss_log_toggle()
    figs = cached_figures(f"{prefix}_progress_figures", (run_id, len(snapshots), log_y),
                          lambda: progress_figures(snapshots, MAX_POINTS, chance_cost(network), log_y))
    for column, name in zip(st.columns(2), ("loss", "accuracy")):
        with column:
            chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live)


def draw_layers(snapshots, config: Config, network: Network, params, dataset, prefix: str, run_id: str,
                live: bool = False) -> None:
    """`dataset` is the run's own data, or None when the sidebar's is another (no boundary, no prediction)."""
    if not snapshots:
        return
    theory_toggle(st)
    prediction = prediction_of(config, dataset)
    quantity_key = f"{prefix}_heat_q"
    quantity = st.session_state.get(quantity_key, "a")
    figs = cached_figures(f"{prefix}_layer_figures",
                          (run_id, len(snapshots), quantity, dataset is None, prediction is None),
                          lambda: layer_figures(snapshots, network, params, dataset, quantity, MAX_POINTS,
                                                predicted_a_std=None if prediction is None else prediction.a_std))
    for column, names in zip(st.columns(2), LAYER_COLUMNS):
        with column:
            for name in names:
                if name == "heatmap":  # its choice was read from session state above; the widget sits here
                    st.selectbox("Histograms over time of", list(HEATMAP_QUANTITIES), key=quantity_key,
                                 format_func=HEATMAP_QUANTITIES.get)
                if name in figs:
                    chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live)
