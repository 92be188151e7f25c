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
from functools import cached_property

import numpy as np

from .activations import ACTIVATIONS
from .kernels import (DEAD, FIGURES, MOMENT_ROWS, NORM_DB, NORM_DW, NORM_W, OF_DW, OF_W, SATURATED, VARIANCE,
                      kernel_ends, layer_kernel, scan, scan_buffers, sum_moments, sums)
from .network import Cache, Grads, Network, Params

Array = np.ndarray

HISTOGRAMS = ("z", "a", "dz", "dw")  # Z, A, back-propagated gradient dZ, weight gradient dW
SCALARS = FIGURES[:FIGURES.index("update_ratio") + 1]  # z_mean .. update_ratio: what a snapshot stores per layer
# Normalised networks also carry, per hidden layer (NaN at the output layer, which is not normalised): the
# pre-normalisation Z = W A + b and its gradient, and the learnt gamma and beta with their gradients' norms.
# (z_std, a_std, dz_std... keep their meaning: Z is the activation's input, the normalised one in these layers.)
NORM_SCALARS = ("z_pre_mean", "z_pre_std", "dz_pre_std", "gamma_mean", "gamma_std", "beta_mean", "beta_std",
                "dgamma_norm", "dbeta_norm")
ROBUST_WIDTH = 5.0  # edges cover +-5 rms at step 0, so one outlier cannot squash the rest into one bin
SOFTMAX_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The state of a run at one step: the cost, accuracies and every per-layer statistic."""

    step: int
    loss: float
    train_accuracy: float
    test_accuracy: float  # nan when there is no test split, or not measured at this step (core/train.py: TEST_EVERY)
    stats: dict[str, Array]  # SCALARS -> (L,), "<h>_hist" -> (L, bins), "<h>_outside" -> (L, 2)
    edges: dict[str, Array]  # "<h>" -> (L, bins + 1), the same arrays for every snapshot of a run

    @property
    def n_layers(self) -> int:
        return len(self.stats["z_std"])


def tested(snapshots: list[Snapshot]) -> list[Snapshot]:
    """The snapshots that measured test accuracy (a run recording often measures it on its own cadence)."""
    return [s for s in snapshots if not math.isnan(s.test_accuracy)]


def latest_test_accuracy(snapshots: list[Snapshot]) -> float:
    """The test accuracy of the latest snapshot that measured it; NaN if none did (or there is no test split)."""
    return next((s.test_accuracy for s in reversed(snapshots) if not math.isnan(s.test_accuracy)), math.nan)


@dataclass(frozen=True)
class Binning:
    """What a run's statistics hold fixed from step 0: the histogram ranges per quantity and layer (lo, hi of shape
    (L,)), and what `layer_kernel` counts in each layer's A (`activation_checks`)."""

    lo: dict[str, Array]
    hi: dict[str, Array]
    bins: int
    checks: tuple[Array, Array, Array]

    def edges(self) -> dict[str, Array]:
        return {
            h: np.linspace(self.lo[h], self.hi[h], self.bins + 1, axis=1) for h in HISTOGRAMS
        }

    @cached_property
    def table(self) -> Array:
        """(L, 4, 3): `kernel_ends` per layer and histogram (in HISTOGRAMS order), built once a run."""
        lo, hi = (np.stack([ends[h] for h in HISTOGRAMS], axis=1) for ends in (self.lo, self.hi))
        return kernel_ends(lo, hi, self.bins)


@dataclass(frozen=True)
class Summary:
    """What one pass over an array gives: moments, counts, and its histogram over fixed edges."""

    mean: float
    var: float
    std: float
    norm: float  # sqrt of the sum of squares
    counts: Array  # (bins,)
    under: int
    over: int  # values at or above the last edge, and NaN


def moments(x: Array) -> tuple[float, float, float, float]:
    """Mean, variance, std and sqrt of the sum of squares, with float64 accumulators (see `sum_moments`)."""
    flat = x.reshape(-1)
    total, total_sq = sums(flat)
    return sum_moments(total, total_sq, flat)


def summarize(x: Array, lo: float, hi: float, bins: int) -> Summary:
    """Moments and the counts in ``bins`` equal bins over [lo, hi) and outside it, in one pass over ``x``."""
    flat = x.reshape(-1)
    index, lanes, counts = scan_buffers(bins)
    total, total_sq = scan(flat, kernel_ends(float(lo), float(hi), bins), bins, index, lanes, counts)
    return Summary(*sum_moments(total, total_sq, flat), counts[1:-1], int(counts[0]), int(counts[-1]))


LARGEST_EDGE = np.finfo(np.float64).max / 2  # so that a histogram's width, hi - lo, is finite too


def finite_extent(flat: Array) -> tuple[int, float, float]:
    """Count, root mean square and largest magnitude of the finite values of a 1-D array. NumPy, not a compiled
    kernel: it runs once a run (the histogram ranges), where compiling it cost more than it would ever save. Without
    temporaries when every value is finite and their squares sum within range (the memory cap's estimate counts on
    that); the masked copies of the other case are for runs already overflowing."""
    if flat.size == 0:
        return 0, 0.0, 0.0
    top = max(abs(float(flat.max())), abs(float(flat.min())))  # NaN if any value is
    if math.isfinite(top):
        with np.errstate(over="ignore"):
            q = float(np.dot(flat, flat))
        if math.isfinite(q):
            return flat.size, math.sqrt(q / flat.size), top
        finite = flat.astype(np.float64)
    else:
        finite = np.abs(flat[np.isfinite(flat)], dtype=np.float64)
        if finite.size == 0:
            return 0, 0.0, 0.0
        top = float(finite.max())
    if top == 0.0:
        return finite.size, 0.0, 0.0
    scaled = finite / top  # squares of the scaled values cannot overflow
    return finite.size, math.sqrt(float(np.dot(scaled, scaled)) / finite.size) * top, top


def _range(values: Array, bounds: tuple[float, float] | None, nonnegative: bool) -> tuple[float, float]:
    if bounds is not None:
        return bounds
    n, rms, largest = finite_extent(values.reshape(-1))
    if n == 0:
        return -1.0, 1.0
    top = min(min(largest, ROBUST_WIDTH * rms) * 1.05, LARGEST_EDGE)
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
    return Binning(lo, hi, bins, activation_checks(net, cache.A[1].dtype))


def activation_checks(net: Network, dtype: np.dtype) -> tuple[Array, Array, Array]:
    """What `layer_kernel` counts in each layer's A: whether zeros count (L,), the saturation bounds in the data's
    dtype (L, 2), whether saturation counts (L,)."""
    acts = [ACTIVATIONS.get(net.layer_activation(i)) for i in range(net.depth)]  # None only for the softmax output
    saturates = [act is not None and act.saturation is not None for act in acts]
    bounds = [act.saturation if s else (0.0, 0.0) for act, s in zip(acts, saturates)]
    return (np.array([act is not None and act.can_die for act in acts]), np.array(bounds, dtype=dtype),
            np.array(saturates))


HIST_KEYS = tuple(f"{h}_hist" for h in HISTOGRAMS)
OUTSIDE_KEYS = tuple(f"{h}_outside" for h in HISTOGRAMS)
STORED = SCALARS + tuple(key for pair in zip(HIST_KEYS, OUTSIDE_KEYS) for key in pair)  # a run file's order


def _norm_stats(net: Network, params: Params, cache: Cache, grads: Grads) -> dict[str, Array]:
    """`NORM_SCALARS` of one pass: one read of each pre-normalisation Z and its gradient per hidden layer."""
    out = {key: np.full(net.depth, np.nan) for key in NORM_SCALARS}
    for i, normalized in enumerate(cache.normalized):
        out["z_pre_mean"][i], _, out["z_pre_std"][i], _ = moments(normalized.z)
        out["dz_pre_std"][i] = moments(grads.dz_pre[i])[2]
        for name, values, gradient in (("gamma", params.gamma[i], grads.dgamma[i]),
                                       ("beta", params.beta[i], grads.dbeta[i])):
            out[f"{name}_mean"][i], _, out[f"{name}_std"][i], _ = moments(values)
            out[f"d{name}_norm"][i] = moments(gradient)[3]
    return out


def layer_stats(net: Network, params: Params, cache: Cache, grads: Grads, binning: Binning) -> dict[str, Array]:
    """Every per-layer statistic of one pass, keyed in the order a run file stores them (`STORED`, then a
    normalised network's NORM_SCALARS); ``update_ratio`` is NaN until `fill_update_ratio` gives it once the update is
    known (the update changes W, whose norm is taken here, before it).

    Each of Z, A, dZ and dW is read once (moments, counts and histogram together), W once; norms come from the sums
    of squares. One compiled call per layer (`layer_kernel`), into arrays for all layers; the figures are their rows.
    """
    L, bins = net.depth, binning.bins
    figures = np.full((len(FIGURES), L), np.nan)  # [row of FIGURES, layer]
    hist = np.empty((len(HISTOGRAMS), L, bins), dtype=np.int64)
    outside = np.empty((len(HISTOGRAMS), L, 2), dtype=np.int64)  # [OF_Z .. OF_DW, layer, UNDER/OVER]
    buffers = scan_buffers(bins)
    left_nan = False
    for i, layer in enumerate(zip(cache.Z, cache.A[1:], grads.dZ, grads.dW, params.W, grads.db)):
        left_nan |= layer_kernel(i, *[x.reshape(-1) for x in layer], binning.table, bins, *binning.checks, figures,
                                 hist, outside, *buffers)
    if left_nan:  # looked for only then: NumPy's calls cost a recorded step tens of us, with its caches cold
        _complete_overflowed(params, cache, grads, figures)
    for i, branch in enumerate(cache.branch):
        if branch is not None:  # a block's A is A^{l-1} + alpha phi(Z): its activation dies or saturates in phi(Z)
            figures[(DEAD, SATURATED), i] = _branch_fractions(branch, i, binning.checks)
    # Named by zipping rows, not a view per key: every Python call costs a recorded step about 1 us (caches cold)
    out = dict(zip(SCALARS, figures))
    for hist_key, counts, outside_key, beyond in zip(HIST_KEYS, hist, OUTSIDE_KEYS, outside):
        out[hist_key], out[outside_key] = counts, beyond
    if net.norm != "none":
        out.update(_norm_stats(net, params, cache, grads))
    return out


def _branch_fractions(branch: Array, i: int, checks: tuple[Array, Array, Array]) -> tuple[float, float]:
    """The dead and saturated fractions `layer_kernel` counts in A, counted in a residual block's phi(Z)."""
    counts_zeros, bounds, counts_saturated = checks
    dead = float(np.mean(branch == 0)) if counts_zeros[i] else 0.0
    low, high = bounds[i]
    saturated = float(np.mean((branch < low) | (branch > high))) if counts_saturated[i] else 0.0
    return dead, saturated


def _complete_overflowed(params: Params, cache: Cache, grads: Grads, figures: Array) -> None:
    """The moments and norms `layer_kernel` left NaN, of arrays whose squares overflow float64 or that hold inf or
    NaN, taken again by `sum_moments` (finite where the values are; see `_extreme_moments`)."""
    for h, i in zip(*np.nonzero(np.isnan(figures[[rows[VARIANCE] for rows in MOMENT_ROWS]]))):
        values = (cache.Z, cache.A[1:], grads.dZ, grads.dW, params.W)[h][i].reshape(-1)
        mean, var, std, norm = sum_moments(*sums(values), values)
        figures[MOMENT_ROWS[h], i] = mean, var, std
        if h in (OF_DW, OF_W):
            figures[NORM_DW if h == OF_DW else NORM_W, i] = norm
    for i in np.flatnonzero(np.isnan(figures[NORM_DB])):
        values = grads.db[i].reshape(-1)
        figures[NORM_DB, i] = sum_moments(*sums(values), values)[3]


def fill_update_ratio(stats: dict[str, Array], update_norms) -> None:
    """Give ``stats`` (of `layer_stats`) its update_ratio = ||update of W^l|| / ||W^l|| (inf or NaN where ||W^l||
    is 0). Python's floats, not an array division under np.errstate: this runs at every recorded step, whose passes
    over the data leave NumPy's Python layers out of the CPU's caches (tens of us)."""
    stats["update_ratio"][:] = [norm / w if w != 0 else (math.inf if norm > 0 else math.nan)
                                for norm, w in zip(update_norms, stats["w_norm"].tolist())]


NOTED = (("z_std", "Z"), ("a_std", "A"), ("dz_std", "dZ"), ("dw_std", "dW"), ("w_std", "W"))


def overflow_note(stats: dict[str, Array]) -> str | None:
    """Why some statistics are NaN or infinite, or None when all are finite. Finite values always give finite
    spreads (see `_extreme_moments`), so a NaN or infinite std means the values themselves are: an overflow."""
    found = []
    for key, label in NOTED:
        std = np.asarray(stats[key])
        nan, inf = np.flatnonzero(np.isnan(std)), np.flatnonzero(np.isinf(std))
        if nan.size:
            found.append(f"{label} is NaN in {_layers(nan)}")
        if inf.size:
            found.append(f"{label} holds infinite values in {_layers(inf)}")
    if not found:
        return None
    return (f"{'; '.join(found)}. Values past float64's range (±1.8e308) become infinite, and inf − inf or 0 × inf "
            "is NaN: those statistics describe values that overflowed. Use a smaller initial scale or fewer layers.")


def _layers(indices: Array) -> str:
    first = int(indices[0]) + 1
    return f"layer {first}" if indices.size == 1 else f"{indices.size} layers from layer {first}"
