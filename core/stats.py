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
from functools import cached_property, lru_cache

import numba
import numpy as np

from .activations import ACTIVATIONS
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

    @cached_property
    def tables(self) -> tuple[Array, Array]:
        """lo and bins / (hi - lo) as (L, 4) tables in HISTOGRAMS order: what the kernels take, built once a run."""
        lo = np.stack([self.lo[h] for h in HISTOGRAMS], axis=1)
        return lo, self.bins / (np.stack([self.hi[h] for h in HISTOGRAMS], axis=1) - lo)


SUMS_MATH = {"reassoc", "contract"}  # lets the compiler vectorise the sums (order only; NaN and inf still propagate)
# The same for the loop that also computes bin indices, without "contract": a fused multiply-add there would move
# values that sit exactly on an edge into the neighbouring bin.
INDEX_MATH = {"reassoc"}
COUNTERS = 8  # histogram counters per array (see `_scan`)


@numba.njit(cache=True, nogil=True, fastmath=SUMS_MATH)
def _sums(flat):  # pragma: no cover - compiled
    s = 0.0
    q = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        s += v
        q += v * v
    return s, q


@numba.njit(cache=True, nogil=True, fastmath=INDEX_MATH)
def _sums_and_bins(flat, lo, scale, top, index):  # pragma: no cover - compiled
    """Sum and sum of squares of the values, and each one's bin index into ``index``: floor((v - lo) * scale) + 1,
    0 below lo, ``top`` at or above hi (and NaN). One loop, so the values are read once."""
    s = 0.0
    q = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        s += v
        q += v * v
        t = (v - lo) * scale + 1.0
        t = t if t < top else top  # NaN goes to "over" here
        t = t if t > 0.0 else 0.0
        index[i] = np.uint16(t)
    return s, q


@numba.njit(cache=True, nogil=True)
def _scan(flat, lo, scale, bins):  # pragma: no cover - compiled
    """Sum, sum of squares, and the counts of the bin indices, with 0 for values below lo and bins + 1 for those at
    or above hi (and NaN). Two tight loops, one compiled to SIMD and one to independent increments, instead of
    NumPy's five passes and two temporaries."""
    index = np.empty(flat.size, dtype=np.uint16)  # bins <= 1024
    s, q = _sums_and_bins(flat, lo, scale, float(bins + 1), index)
    # Eight counters, so that consecutive values do not wait on each other's increment. Neighbouring values of real
    # data (the pixels of an image, in dW^1) often fall in the same bin; with four counters that still stalled.
    lanes = np.zeros((COUNTERS, bins + 2), dtype=np.int64)
    whole = index.size - index.size % COUNTERS
    for j in range(0, whole, COUNTERS):
        for k in range(COUNTERS):
            lanes[k, index[j + k]] += 1
    for j in range(whole, index.size):
        lanes[0, index[j]] += 1
    return s, q, lanes.sum(axis=0)


@numba.njit(cache=True, nogil=True)
def _layer_pass(z, a, dz, dw, w, db, lo, scale, bins,  # pragma: no cover - compiled
                count_zeros, sat_low, sat_high, count_saturated, sums, counts):
    """One layer's statistics in one call: `_scan` over each of Z, A, dZ, dW (flattened), `_sums` over W and db,
    into ``sums`` (6, 2) and ``counts`` (4, bins + 2); returns the counts of A's zeros and of its values outside
    [sat_low, sat_high] (compared in A's dtype, as NumPy compares with a Python float). The same kernels as
    `summarize` and `moments`, so the same figures; one call instead of a dozen per layer, which for a small layer
    cost more than the arithmetic."""
    for h, values in enumerate((z, a, dz, dw)):
        s, q, c = _scan(values, lo[h], scale[h], bins)
        sums[h, 0], sums[h, 1] = s, q
        counts[h] = c
    sums[4, 0], sums[4, 1] = _sums(w)
    sums[5, 0], sums[5, 1] = _sums(db)
    zeros = 0
    if count_zeros:
        for i in range(a.size):
            if a[i] == 0:
                zeros += 1
    saturated = 0
    if count_saturated:
        for i in range(a.size):
            if a[i] < sat_low or a[i] > sat_high:
                saturated += 1
    return zeros, saturated


@dataclass(frozen=True)
class Summary:
    """What one pass over an array gives: moments, counts, and its histogram over fixed edges."""

    mean: float
    var: float
    sum_sq: float
    counts: Array  # (bins,)
    under: int
    over: int  # values at or above the last edge, and NaN


def _mean_var(sums: Array, flats: list[Array]) -> tuple[Array, Array]:
    """Means and variances from (sum, sum of squares) pairs ``sums`` (k, 2) of the arrays ``flats`` (k of them)."""
    sizes = np.array([flat.size for flat in flats], dtype=np.float64)
    mean, mean_sq = sums[:, 0] / sizes, sums[:, 1] / sizes
    var = mean_sq - mean * mean
    for k in np.flatnonzero(var < 1e-6 * mean_sq):  # most of E[x^2] is the mean: the difference lost its digits
        var[k] = flats[k].var(dtype=np.float64)
    return mean, np.maximum(var, 0.0)


def moments(x: Array) -> tuple[float, float, float]:
    """Mean, variance and sum of squares in one pass with float64 accumulators (two passes where they cancel)."""
    flat = x.reshape(-1)
    sums = np.array([_sums(flat)])
    mean, var = _mean_var(sums, [flat])
    return float(mean[0]), float(var[0]), float(sums[0, 1])


def summarize(x: Array, lo: float, hi: float, bins: int) -> Summary:
    """Moments and the counts in ``bins`` equal bins over [lo, hi) and outside it, in one pass over ``x``."""
    flat = x.reshape(-1)
    total, total_sq, counts = _scan(flat, lo, bins / (hi - lo), bins)
    mean, var = _mean_var(np.array([[total, total_sq]]), [flat])
    return Summary(float(mean[0]), float(var[0]), total_sq, counts[1:-1], int(counts[0]), int(counts[-1]))


@numba.njit(cache=True, nogil=True)
def _finite_extent(flat):  # pragma: no cover - compiled
    """Count, sum of squares and largest magnitude of the finite values, in one pass."""
    n = 0
    q = 0.0
    top = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        if math.isfinite(v):
            n += 1
            q += v * v
            top = max(top, abs(v))
    return n, q, top


def _range(values: Array, bounds: tuple[float, float] | None, nonnegative: bool) -> tuple[float, float]:
    if bounds is not None:
        return bounds
    n, sum_sq, largest = _finite_extent(values.reshape(-1))
    if n == 0:
        return -1.0, 1.0
    top = min(largest, ROBUST_WIDTH * math.sqrt(sum_sq / n)) * 1.05
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


@lru_cache(maxsize=256)
def _activation_checks(net: Network, dtype: str) -> tuple[tuple, ...]:
    """Per layer, what `_layer_pass` counts in A: (zeros?, saturation bounds in the data's dtype, saturated?). Fixed
    for a network, so worked out once rather than at every recorded step."""
    cast = np.dtype(dtype).type
    checks = []
    for i in range(net.depth):
        act = ACTIVATIONS.get(net.layer_activation(i))  # None only for the softmax output
        bounds = act.saturation if act is not None and act.saturation is not None else (0.0, 0.0)
        checks.append((act is not None and act.can_die, cast(bounds[0]), cast(bounds[1]),
                       act is not None and act.saturation is not None))
    return tuple(checks)


def layer_stats(net: Network, params: Params, cache: Cache, grads: Grads, binning: Binning) -> dict[str, Array]:
    """Every per-layer statistic of one pass. ``update_ratio`` is left for the caller, who knows the update.

    Each of Z, A, dZ and dW is read once (moments, counts and histogram together), W once; norms come from the sums
    of squares. One compiled call per layer (`_layer_pass`), then the figures of all layers at once.
    """
    L, bins = net.depth, binning.bins
    lo, scale = binning.tables
    sums = np.empty((L, 6, 2))  # per layer: (sum, sum of squares) of Z, A, dZ, dW, W, db
    counts = np.empty((L, 4, bins + 2), dtype=np.int64)  # per layer: Z, A, dZ, dW's under, bins, over
    flagged = np.empty((L, 2))  # per layer: A's zeros, A's saturated values
    flats = []  # per layer: Z, A, dZ, dW, W flattened
    for i, checks in enumerate(_activation_checks(net, cache.A[1].dtype.str)):
        layer = [cache.Z[i].reshape(-1), cache.A[i + 1].reshape(-1), grads.dZ[i].reshape(-1),
                 grads.dW[i].reshape(-1), params.W[i].reshape(-1)]
        flagged[i] = _layer_pass(*layer, grads.db[i].reshape(-1), lo[i], scale[i], bins, *checks, sums[i], counts[i])
        flats += layer
    mean, var = (m.reshape(L, 5) for m in _mean_var(sums[:, :5].reshape(-1, 2), flats))
    std = np.sqrt(var)
    dead, saturated = (flagged / np.array([a.size for a in cache.A[1:]], dtype=np.float64)[:, None]).T
    scalars = {"z_mean": mean[:, 0], "z_var": var[:, 0], "z_std": std[:, 0],
               "a_mean": mean[:, 1], "a_var": var[:, 1], "a_std": std[:, 1],
               "dead_fraction": dead, "saturated_fraction": saturated,
               "dz_mean": mean[:, 2], "dz_std": std[:, 2],
               "dw_mean": mean[:, 3], "dw_std": std[:, 3], "dw_norm": np.sqrt(sums[:, 3, 1]),
               "db_norm": np.sqrt(sums[:, 5, 1]), "w_std": std[:, 4], "w_norm": np.sqrt(sums[:, 4, 1]),
               "update_ratio": np.full(L, np.nan)}
    out = {name: scalars[name] for name in SCALARS}  # in SCALARS order, as the run file stores them
    for k, h in enumerate(HISTOGRAMS):
        out[f"{h}_hist"] = counts[:, k, 1:-1]
        out[f"{h}_outside"] = counts[:, k, [0, -1]]
    return out
