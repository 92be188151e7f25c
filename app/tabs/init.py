"""The At initialisation tab: the verdict, and what one forward and backward pass at initialisation measures in
every layer (standard deviations and means against depth, histograms, dead and saturated units)."""

from __future__ import annotations

import streamlit as st

from app import verdict_view
from app.charts import export, figures
from app.glossary import explain
from app.serving.store import run_key
from app.ui import (WHY_INIT, cached_figures, chart, cost_note_of, data_download, keep, kept_value, prediction_of,
                    probe_of, tab_data, theory_toggle, verdict_of, why)
from core.config import Config
from core.limits import Limits
from core.stats import overflow_note

ZERO_STD_NOTES = {True: "std = 0: all units identical — the symmetry is never broken",
                  False: "std = 0: every value of the layer identical"}


def render(config: Config, dataset, limits: Limits) -> None:
    try:
        network, snap = probe_of(config, dataset, limits)
        judged = verdict_of(config, dataset, limits)
    except FloatingPointError as e:
        st.error(f"The probe {e}.")
        return
    note = overflow_note(snap.stats)
    if note:
        st.warning(note)
    # The first screen: the verdict and the chart it is read from, side by side. The toggles that shape the charts
    # are drawn below them, so the charts read the toggles' kept values (set by their on_change before this rerun).
    log_y = kept_value("init_log_y", True)
    shared_x = kept_value("init_shared_x", False)
    p = prediction_of(config, dataset)
    predicted = None if p is None else {"std Z": p.z_std, "std A": p.a_std, "std dZ": p.dz_std}
    symmetric = judged.finding("symmetry") is not None
    figs = cached_figures("init_figures", (run_key(config, dataset.fingerprint()), log_y, shared_x, p is None,
                                           symmetric),
                          lambda: init_figures(snap, predicted, log_y, shared_x, symmetric), shared=True)
    left, right = st.columns(2)
    with left:
        verdict_view.render(judged)
    with right:
        chart(figs["init_std"], "init_std", "A flat line is a healthy init; a straight slope on the log scale is "
              "geometric vanishing. Dashed: the mean-field prediction, the average over weight draws; one draw of a "
              "layer of few units can sit a factor 2 from it.", help=explain("Z, A", "dZ", "mean-field"))
    left, middle, right = st.columns(3)
    left.toggle("Log scale for standard deviations", key="init_log_y", **keep("init_log_y", True))
    middle.toggle("One x-axis for every layer's histogram", key="init_shared_x", **keep("init_shared_x", False),
                  help="Off: each layer spans its own values (read the scale on its axis). On: a layer whose values "
                       "collapse shows as a spike at 0.")
    theory_toggle(right)
    why(WHY_INIT + "ReLU zeroes half of its inputs, hence He's factor 2.")
    head, download = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**{network}** · {config.init} · one forward and backward pass on {dataset.x_train.shape[1]} "
                  f"training examples, no update. Cost {snap.loss:.6g}.")
    note = cost_note_of(config, dataset, limits)
    if note:
        st.caption(f"At step 0, {note}")
    tab_data().statistics = lambda: export.run_csv([snap])
    data_download(download, "init")
    if network.depth > figures.MAX_FACETS:
        st.caption(f"The histograms show {figures.MAX_FACETS} of the {network.depth} layers, evenly spaced, "
                   "first and last included.")
    left, right = st.columns(2)
    with left:
        chart(figs["init_a_hist"], "init_a_hist",
              "Look for layers that collapse to a spike at 0 or pile up at ±1: both stop learning.",
              help=explain("Z, A", "dead unit", "saturated unit"))
    with right:
        chart(figs["init_dz_hist"], "init_dz_hist",
              "Look at the spread: gradients that shrink towards layer 1 mean its weights barely move.",
              help=explain("dZ"))
    left, right = st.columns(2)
    with left:
        chart(figs["init_mean"], "init_mean",
              "ReLU activations have a positive mean; a drifting mean shifts every later layer.")
    with right:
        chart(figs["init_fractions"], "init_fractions",
              "Dead ReLUs (exactly 0) pass no gradient; saturated tanh/sigmoid units pass almost none.",
              help=explain("dead unit", "saturated unit"))


def init_figures(snap, predicted, log_y: bool, shared_x: bool, symmetric: bool) -> dict:
    """The tab's figures of one probe's snapshot, by chart key: every session on the config shares them."""
    s = snap.stats
    return {
        "init_std": figures.depth_profile({"std Z": s["z_std"], "std A": s["a_std"], "std dZ": s["dz_std"],
                                           **({"std Z before norm": s["z_pre_std"]} if "z_pre_std" in s else {})},
                                          "Standard deviation against depth", "std", log_y=log_y,
                                          predicted=predicted, zero_note=ZERO_STD_NOTES[symmetric]),
        "init_a_hist": figures.layer_histograms(snap.edges["a"], s["a_hist"], "Activations A per layer", "A",
                                                shared_x),
        "init_dz_hist": figures.layer_histograms(snap.edges["dz"], s["dz_hist"],
                                                 "Back-propagated gradients dZ per layer", "dZ", shared_x),
        "init_mean": figures.depth_profile({"mean Z": s["z_mean"], "mean A": s["a_mean"],
                                            **({"mean γ": s["gamma_mean"], "mean β": s["beta_mean"]}
                                               if "gamma_mean" in s else {})}, "Mean against depth", "mean"),
        "init_fractions": figures.layer_fractions(s["dead_fraction"], s["saturated_fraction"]),
    }
