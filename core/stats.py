"""Per-layer statistics of one forward/backward pass, and the `Snapshot` that carries them.

The network does not know it is measured (as with fastai's hooks): these functions read what the passes already
produced. Every statistic is taken over all values of a layer's matrix (units x examples, or the whole W).
Statistics are stored column-wise: ``snapshot.stats["z_std"]`` is an array with one value per layer, and
``snapshot.stats["a_hist"]`` an array (layers, bins). Histogram edges are fixed per layer for a whole run (chosen
at step 0), with the values below and above them counted in ``*_outside`` as (under, over), so a chart can draw a
layer's histograms over time as a heatmap without re-binning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS, Activation
from .network import Cache, Grads, Network, Params

Array = np.ndarray

HISTOGRAMS = ("z", "a", "dz", "dw")  # Z, A, back-propagated gradient dZ, weight gradient dW
SCALARS = (
    "z_mean", "z_var", "z_std", "a_mean", "a_var", "a_std", "dead_fraction", "saturated_fraction",
    "dz_mean", "dz_std", "dw_mean", "dw_std", "dw_norm", "db_norm", "w_std", "w_norm", "update_ratio",
)
ROBUST_WIDTH = 5.0  # edges cover +-5 rms at step 0, so one outlier cannot squash the rest into one bin
SOFTMAX_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The state of a run at one step: the cost, accuracies and every per-layer statistic."""

    step: int
    loss: float
    train_accuracy: float
    test_accuracy: float  # nan when there is no test split
    stats: dict[str, Array]  # SCALARS -> (L,), "<h>_hist" -> (L, bins), "<h>_outside" -> (L, 2)
    edges: dict[str, Array]  # "<h>" -> (L, bins + 1), the same arrays for every snapshot of a run

    @property
    def n_layers(self) -> int:
        return len(self.stats["z_std"])


@dataclass(frozen=True)
class Binning:
    """Fixed histogram ranges per quantity and layer: lo, hi of shape (L,)."""

    lo: dict[str, Array]
    hi: dict[str, Array]
    bins: int

    def edges(self) -> dict[str, Array]:
        return {
            h: np.linspace(self.lo[h], self.hi[h], self.bins + 1, axis=1) for h in HISTOGRAMS
        }


def moments(x: Array) -> tuple[float, float]:
    """Mean and variance in two fast passes (sum and dot), falling back to np.var where they would cancel."""
    flat = x.reshape(-1)
    n = flat.size
    mean = float(flat.sum(dtype=np.float64)) / n
    mean_sq = float(np.dot(flat, flat)) / n
    var = mean_sq - mean * mean
    if var < 1e-6 * mean_sq:  # most of E[x^2] is the mean: the difference lost its digits
        var = float(flat.var(dtype=np.float64))
    return mean, max(var, 0.0)


def histogram(x: Array, lo: float, hi: float, bins: int) -> tuple[Array, int, int]:
    """Counts in ``bins`` equal bins over [lo, hi), plus the counts below lo and at or above hi. One pass."""
    t = x.reshape(-1) - lo
    t *= bins / (hi - lo)
    np.clip(t, -1.0, bins, out=t)
    t += 1.0
    counts = np.bincount(t.astype(np.intp), minlength=bins + 2)
    return counts[1:-1], int(counts[0]), int(counts[-1])


def _range(values: Array, bounds: tuple[float, float] | None, nonnegative: bool) -> tuple[float, float]:
    if bounds is not None:
        return bounds
    flat = values.reshape(-1).astype(np.float64)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return -1.0, 1.0
    rms = math.sqrt(float(np.dot(finite, finite)) / finite.size)
    top = min(float(np.abs(finite).max()), ROBUST_WIDTH * rms) * 1.05
    if top == 0.0:
        top = 1.0  # all zeros (the zeros initialiser): any range shows them in one bin
    return (0.0, top) if nonnegative else (-top, top)


def choose_binning(net: Network, cache: Cache, grads: Grads, bins: int) -> Binning:
    """Histogram ranges from the step-0 values: an activation's own bounds where it has them, else +-5 rms."""
    lo = {h: np.empty(net.depth) for h in HISTOGRAMS}
    hi = {h: np.empty(net.depth) for h in HISTOGRAMS}
    for i in range(net.depth):
        name = net.layer_activation(i)
        act = ACTIVATIONS.get(name)  # None only for the softmax output
        a_bounds = act.bounds if act is not None else SOFTMAX_BOUNDS
        ranges = {
            "z": _range(cache.Z[i], None, False),
            "a": _range(cache.A[i + 1], a_bounds, name == "relu"),
            "dz": _range(grads.dZ[i], None, False),
            "dw": _range(grads.dW[i], None, False),
        }
        for h, (low, high) in ranges.items():
            lo[h][i], hi[h][i] = low, high
    return Binning(lo, hi, bins)


def _saturated_fraction(act: Activation | None, a: Array) -> float:
    if act is None or act.saturation is None:
        return 0.0
    low, high = act.saturation
    return float(np.count_nonzero((a < low) | (a > high))) / a.size


def layer_stats(net: Network, params: Params, cache: Cache, grads: Grads, binning: Binning) -> dict[str, Array]:
    """Every per-layer statistic of one pass. ``update_ratio`` is left for the caller, who knows the update."""
    L, bins = net.depth, binning.bins
    out = {name: np.empty(L) for name in SCALARS}
    for h in HISTOGRAMS:
        out[f"{h}_hist"] = np.empty((L, bins), dtype=np.int64)
        out[f"{h}_outside"] = np.empty((L, 2), dtype=np.int64)
    for i in range(L):
        act = ACTIVATIONS.get(net.layer_activation(i))  # None only for the softmax output
        z, a, dz, dw = cache.Z[i], cache.A[i + 1], grads.dZ[i], grads.dW[i]
        out["z_mean"][i], out["z_var"][i] = moments(z)
        out["a_mean"][i], out["a_var"][i] = moments(a)
        out["dz_mean"][i], dz_var = moments(dz)
        out["dz_std"][i] = math.sqrt(dz_var)
        out["dw_mean"][i], dw_var = moments(dw)
        out["dw_std"][i] = math.sqrt(dw_var)
        out["dw_norm"][i] = math.sqrt(float(np.dot(dw.reshape(-1), dw.reshape(-1))))
        out["db_norm"][i] = float(np.linalg.norm(grads.db[i]))
        w_mean, w_var = moments(params.W[i])
        out["w_std"][i] = math.sqrt(w_var)
        out["w_norm"][i] = math.sqrt((w_var + w_mean * w_mean) * params.W[i].size)
        out["dead_fraction"][i] = float(np.count_nonzero(a == 0)) / a.size if act and act.can_die else 0.0
        out["saturated_fraction"][i] = _saturated_fraction(act, a)
        for h, values in (("z", z), ("a", a), ("dz", dz), ("dw", dw)):
            counts, under, over = histogram(values, float(binning.lo[h][i]), float(binning.hi[h][i]), bins)
            out[f"{h}_hist"][i] = counts
            out[f"{h}_outside"][i] = (under, over)
    out["z_std"] = np.sqrt(out["z_var"])
    out["a_std"] = np.sqrt(out["a_var"])
    out["update_ratio"][:] = np.nan
    return out
