"""The Compare tab: the sidebar's network under several initialisers, side by side: the activation std against
depth at initialisation for each, then all of them trained at once, their loss curves and final accuracies."""

from __future__ import annotations

import streamlit as st

from app import verdict_view
from app.charts import figures
from app.charts.training import loss_curves, steps, thin
from app.markup import escape_markdown
from app.presets import VARIANTS
from app.serving.pace import pace
from app.serving.server import run_store
from app.serving.store import FINISHED, RUNNING, run_key
from app.timing import duration
from app.ui import (LOSS_LOG_KEY, MAX_POINTS, WHY_INIT, SessionState, cached_figures, chart, cost_note_of,
                   data_download, keep, kept_value, live_fragment, loss_log_toggle, probe_of, run_seconds_left,
                   run_wait, state, table, verdict_of, why)
from core.config import Config, ConfigError
from core.limits import Limits
from core.measures import chance_cost
from core.stats import latest_test_accuracy

COMPARE_SECONDS = 1.0  # the loss curves and table redraw once a second: a class watches several runs at once here
# How much earlier than one paced period before the runs' estimated end a paced page starts redrawing every second
# too: the estimate comes from a run's average pace (a run that speeds up when the server's load falls ends sooner),
# and on a loaded server a paced tick comes late. With one second, a class on a loaded test machine sometimes saw
# no redraw between its last paced tick and the runs' end (tests/test_load_tools.py).
ENDING_SLACK_SECONDS = 3.0

def compare_watcher() -> str:
    return f"{state.session_id}:compare"


def start_compare(config: Config, dataset, limits: Limits) -> None:
    """A new comparison replaces the session's previous one: its runs are left (stopped unless others watch them)."""
    store = run_store()
    variants = applicable(config, kept_value("compare", []))
    kept_keys = {run_key(variant, dataset.fingerprint()) for variant in variants.values()}
    for key in set(state.compare_keys.values()) - kept_keys:
        store.detach(key, compare_watcher())
    keys, errors = {}, []
    store.reserve(state.session_id, "comparison")
    for label, variant in variants.items():
        try:
            keys[label] = store.start(variant, dataset, compare_watcher(), limits,
                                      instant=state.instant, session=state.session_id, kind="comparison").key
        except ConfigError as e:
            errors.append(f"{label}: {e}")
    state.compare_keys, state.compare_errors, state.compare_ended = keys, errors, None


def applicable(config: Config, labels) -> dict[str, Config]:
    """Each chosen variant applied to the sidebar's network, leaving out those it cannot take (a residual variant on
    unequal widths: Compare says why, below)."""
    out = {}
    for label in labels:
        try:
            out[label] = VARIANTS[label].apply(config)
        except ConfigError:
            continue
    return out


def compare_verdict(config: Config, dataset, limits: Limits, labels: list[str]) -> None:
    """One line per compared initialiser: learns or not, and why (finished runs: their final accuracy)."""
    verdicts = {label: verdict_of(variant, dataset, limits) for label, variant in applicable(config, labels).items()}
    finals = {}
    for label, key in state.compare_keys.items():
        run = run_store().get(key)
        if label in verdicts and run is not None and run.status == FINISHED and run.snapshots:
            finals[label] = run.snapshots[-1]
    verdict_view.render_compare(verdicts, finals)


def render(config: Config, dataset, limits: Limits, forward_only: bool) -> None:
    chosen = kept_value("compare", [])  # the choice of the multiselect below, as it stands
    if chosen:
        compare_verdict(config, dataset, limits, chosen)
    if any(VARIANTS[label].architecture for label in chosen):
        why("Same data, widths and seed: each line sets the initialiser and the architecture (plain, skips, batch "
            "norm) its label names. " + WHY_INIT)
    else:
        why("Same data, same network, same seed: only the initialiser changes. " + WHY_INIT)
    st.multiselect("Initialisers", list(VARIANTS), key=SessionState.compare.key, **keep("compare", []))
    if not state.compare:
        st.info("Pick at least one initialiser.")
        return
    stds = {}
    for label in state.compare:
        try:
            variant = VARIANTS[label].apply(config)
        except ConfigError as e:
            st.warning(f"{label} does not fit this network: {escape_markdown(e)}")
            continue
        try:
            stds[label] = probe_of(variant, dataset, limits)[1].stats["a_std"]
        except FloatingPointError as e:
            st.warning(f"{label}: the probe {e}.")
            continue
        note = cost_note_of(variant, dataset, limits)
        if note:
            st.caption(f"{label}: at step 0, {note}")
    chart(figures.depth_profile(stds, "Activation std against depth at step 0", "std A", log_y=True,
                                zero_note="std = 0: every value of the layer identical"),
          "compare_std", "The initialiser whose line stays flat keeps the signal alive through every layer.")
    train, download = st.columns([5, 1], vertical_alignment="center")
    data_download(download, "compare")
    train.button("Train all", key="train_all", type="secondary" if forward_only else "primary", on_click=start_compare,
              args=(config, dataset, limits),
              help=f"{len(state.compare)} runs of {config.iterations:,} steps on the same data, network and seed.")
    for error in state.compare_errors:
        st.error(f"Refused before starting: {escape_markdown(error)}")
    keys = {label: key for label, key in state.compare_keys.items() if label in state.compare}
    if not keys:
        return
    runs = {label: run_store().get(key) for label, key in keys.items()}
    live = any(r is not None and not r.done for r in runs.values())
    # Around the fragment, not in it: a tick redraws only what changes (each watching page's tick is a script run
    # of the server, app/serving/pace.py). The toggle reruns the page; the fragment reads its value.
    st.caption("Final accuracies after training; a test accuracy equal to the share of the majority class "
               "means the net learned nothing.")
    live_fragment(compare_live, COMPARE_SECONDS, live)(keys, live)
    st.caption("The curve that leaves ln 2 ≈ 0.693 first is the initialiser that lets every layer learn.")
    loss_log_toggle()


def time_column(run, snapshots, status: str) -> str:
    """How long the run took; while it computes (or replays), elapsed and estimated time left."""
    if status == RUNNING and run.queued:
        return "waiting for a free worker"
    if status == RUNNING:
        return run_wait(run, snapshots)
    return f"took {duration(run.seconds)}" if run.seconds else "–"


def compare_live(keys: dict[str, str], live: bool) -> None:
    """The results, redrawn at the class's pace (app/serving/pace.py: every few seconds in a large class); in the
    last such period before the runs are due to end (and ENDING_SLACK_SECONDS before it), once a second as well, so
    that a class sees the result within a second of it rather than up to a whole period late."""
    paced = pace.every(COMPARE_SECONDS)
    ending = live and paced > COMPARE_SECONDS and ends_within(keys, paced + ENDING_SLACK_SECONDS)
    st.fragment(run_every=COMPARE_SECONDS if ending else None)(compare_results)(keys, live)


def ends_within(keys: dict[str, str], seconds: float) -> bool:
    """Whether every run of ``keys`` still computing is estimated to end within ``seconds``."""
    for key in keys.values():
        run = run_store().get(key)
        if run is not None and not run.done:
            left = run_seconds_left(run)
            if left is None or left > seconds:
                return False
    return True


def compare_results(keys: dict[str, str], live: bool) -> None:
    runs = {label: run_store().get(key, compare_watcher()) for label, key in keys.items()}
    runs = {label: r for label, r in runs.items() if r is not None}
    # Each run's snapshots read once: a run (or a replay's clock) may add one between two reads, and a figure keyed
    # by the later count but drawn from the earlier list would stay one snapshot short, the final one included.
    # Each status is read before the snapshots: a run that has finished has all of them, so a row never says
    # "finished" beside a step short of the last (the run may end between the two reads).
    statuses = {label: r.status for label, r in runs.items()}
    seen = {label: r.snapshots[:] for label, r in runs.items()}
    curves = {label: thin(snapshots, MAX_POINTS) for label, snapshots in seen.items()}
    counts = tuple((label, len(snapshots)) for label, snapshots in seen.items())
    # The table first, right below Train all: how far each run is and how long it has left, then the curves.
    rows = []
    for label, r in runs.items():
        last = curves[label][-1] if curves[label] else None
        rows.append({"initialiser": label, "status": statuses[label] + (" (from the run cache)" if r.cached else
                                                                        " (waiting for a free worker)" if r.queued else ""),
                     "step": f"{last.step:,}" if last else "–",
                     "loss": f"{last.loss:.4f}" if last else "–",
                     "train accuracy": f"{last.train_accuracy:.2f}" if last else "–",
                     "test accuracy": f"{latest_test_accuracy(seen[label]):.2f}" if last else "–",
                     "time": time_column(r, seen[label], statuses[label])})
    table(rows)
    # Every run has its curve from the start, empty until its first snapshot: its colour and legend entry then do
    # not move when a run listed before it starts later.
    chance = chance_cost(next(iter(runs.values())).network) if runs else None
    log_y = kept_value(LOSS_LOG_KEY, False)  # the toggle below the fragment
    loss = cached_figures("compare_loss_figure", (tuple(keys.items()), counts, log_y), lambda: {"loss": loss_curves(
        {k: steps(v) for k, v in curves.items()}, {k: [s.loss for s in v] for k, v in curves.items()},
        "Loss by initialiser", chance, log_y)}, shared=True)["loss"]
    chart(loss, "compare_loss", None, live)
    if live and all(r.done for r in runs.values()):
        # The page reruns (its verdict takes the final accuracies, its timer stops) at the tick after the one that
        # drew the result: a class's pages all see their runs end within one tick, and their page runs, in that
        # same tick, held back the last students' results by seconds (tests/load/load_test.py).
        if state.compare_ended == keys:
            st.rerun()
        state.compare_ended = keys
