"""A run's snapshots -> the Training and Compare tabs' figures: loss and accuracy curves, per-layer statistics over
steps, histograms over time and the decision boundary of 2-D data. Pure functions (the boundary runs one forward
pass of the network on a grid)."""

from __future__ import annotations

import math

import numpy as np

from app.charts import figures
from core.network import Network, Params, forward
from core.record import params_at
from core.stats import Snapshot, tested

Array = np.ndarray


def thin(snapshots: list[Snapshot], most: int) -> list[Snapshot]:
    """At most `most` snapshots, evenly spread, always keeping the first and the last: a long run stays cheap to
    redraw several times a second (a chart cannot show more points than it has pixels anyway)."""
    if len(snapshots) <= most:
        return snapshots
    picks = np.unique(np.linspace(0, len(snapshots) - 1, most).round().astype(int))
    return [snapshots[i] for i in picks]


def steps(snapshots: list[Snapshot]) -> Array:
    return np.array([s.step for s in snapshots])


def stack(snapshots: list[Snapshot], key: str) -> Array:
    """One statistic over time: (T, L) for scalars, (T, L, bins) for histograms."""
    return np.stack([s.stats[key] for s in snapshots])


def decision_grid(network: Network, params: Params, points: Array, n: int = 120) -> tuple[Array, Array, Array]:
    """P(last class) on an n x n grid spanning the 2-D points with a 10% margin: (xs, ys, probability (n, n))."""
    lo, hi = points.min(axis=1), points.max(axis=1)
    pad = 0.1 * (hi - lo) + 1e-9
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.vstack([gx.ravel(), gy.ravel()]).astype(params.W[0].dtype)
    probability = forward(network, params, grid).A[-1][-1]
    return xs, ys, probability.reshape(n, n)


ZERO_NOTES = {  # what a value of exactly 0 means on each log chart (drawn on its floor line)
    "a_std": "std = 0: every unit gives the same value",
    "dw_norm": "‖dW‖ = 0: no gradient reaches the layer",
    "update_ratio": "‖ΔW‖ / ‖W‖ = 0: the layer does not move",
}
UNDEFINED_RATIO = "every weight is 0 (‖W‖ = 0), so ‖ΔW‖ / ‖W‖ has no value"
HEATMAP_QUANTITIES = {"a": "activations A", "z": "pre-activations Z", "dz": "gradients dZ", "dw": "weight gradients dW"}


def progress_figures(snapshots: list[Snapshot], most: int = 240, chance: float | None = None,
                     log_y: bool = False) -> dict[str, object]:
    """The Training tab's loss and accuracy curves of a run so far (at most `most` snapshots each), keyed by name.
    `chance`: the cost of a guess (ln 2, ln K), drawn as a guide on the loss chart."""
    measured = thin(tested(snapshots), most)  # test accuracy has its own cadence (core/train.py: TEST_EVERY)
    snapshots = thin(snapshots, most)
    t = steps(snapshots)
    return {
        "loss": loss_curves({"loss": t}, {"loss": [s.loss for s in snapshots]}, "Loss", chance, log_y),
        "accuracy": figures.curves({"train": t, "test": steps(measured)},
                                   {"train": [s.train_accuracy for s in snapshots],
                                    "test": [s.test_accuracy for s in measured]},
                                   "Accuracy", "accuracy", y_range=(0, 1.02)),
    }


def loss_curves(steps_by_name, losses_by_name, title: str, chance: float | None, log_y: bool):
    """Loss curves with the guess's cost as a guide (ln 2 = 0.693 for one sigmoid output), clipped on a linear axis
    so a spike at the start (×10 starts at 1774) does not flatten the others."""
    label = "" if chance is None else f"ln {round(math.exp(chance))} = {chance:.3f}: a guess"
    return figures.curves(steps_by_name, losses_by_name, title, "cross-entropy", log_y=log_y, reference=chance,
                          reference_label=label, clip=True)


def layer_figures(snapshots: list[Snapshot], network: Network, step_params, dataset, quantity: str = "a",
                  most: int = 240, predicted_a_std: Array | None = None) -> dict[str, object]:
    """The Training tab's per-layer figures of a run so far (at most `most` snapshots per curve), keyed by name.

    "boundary" is there only for 2-D data with the run's dataset given: drawn from the weights in `step_params`
    ((step, Params) by step) at the last snapshot's step, or the latest step before it that kept them;
    `predicted_a_std` (per layer, at initialisation) is drawn dashed on the activation-std chart.
    """
    last = snapshots[-1]
    snapshots = thin(snapshots, most)
    t = steps(snapshots)
    out = {
        "a_std": figures.per_layer_over_steps(t, stack(snapshots, "a_std"), "Activation std per layer", "std A",
                                              predicted=predicted_a_std, zero_note=ZERO_NOTES["a_std"]),
        "dw_norm": figures.per_layer_over_steps(t, stack(snapshots, "dw_norm"), "Gradient norm ‖dW‖ per layer",
                                                "‖dW‖", zero_note=ZERO_NOTES["dw_norm"]),
        "update_ratio": figures.per_layer_over_steps(t, stack(snapshots, "update_ratio"),
                                                     "Update-to-weight ratio per layer", "‖ΔW‖ / ‖W‖",
                                                     reference=figures.UPDATE_RATIO_GUIDE,
                                                     zero_note=ZERO_NOTES["update_ratio"],
                                                     undefined_note=UNDEFINED_RATIO),
        "heatmap": figures.histogram_heatmaps(t, stack(snapshots, f"{quantity}_hist"), last.edges[quantity],
                                              f"Histograms of {quantity.upper()} over steps (log 1 + count)",
                                              HEATMAP_QUANTITIES[quantity].split()[-1]),
    }
    if "gamma_mean" in last.stats:  # a normalised network: its learnt scale per hidden layer (the output has none)
        out["gamma"] = figures.per_layer_over_steps(t, stack(snapshots, "gamma_mean")[:, :-1],
                                                    "Mean γ per hidden layer (the norm's learnt scale)", "mean γ",
                                                    log_y=False)
    kept = params_at(step_params, last.step) if dataset is not None and network.dims[0] == 2 else None
    if kept is not None:
        step, params = kept
        xs, ys, prob = decision_grid(network, params, dataset.x_train)
        out["boundary"] = figures.decision_boundary(xs, ys, prob, dataset.x_train, dataset.y_train[0],
                                                    boundary_title(step, last.step))
    return out


def boundary_title(kept_step: int, shown_step: int) -> str:
    """The boundary's step, and when it is not the step the other charts show, that it is the latest one whose
    weights the run kept (a run file from before they were kept has only the initial and the final ones)."""
    title = f"Decision boundary at step {kept_step:,}"
    if kept_step != shown_step:
        which = "the initial weights" if kept_step == 0 else "the latest weights kept"
        title += f"<br><sub>{which}: the run has none for step {shown_step:,}, which the other charts show</sub>"
    return title
