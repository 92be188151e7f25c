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
    def table(self) -> Array:
        """(L, 4, 3): `kernel_ends` per layer and histogram (in HISTOGRAMS order), built once a run."""
        lo, hi = (np.stack([ends[h] for h in HISTOGRAMS], axis=1) for ends in (self.lo, self.hi))
        return kernel_ends(lo, hi, self.bins)


def kernel_ends(lo, hi, bins: int) -> Array:
    """What `_scan` takes for ``bins`` equal bins over [lo, hi): (lo, hi, bins / (hi - lo)) along a last axis."""
    return np.stack([lo, hi, bins / (hi - lo)], axis=-1)


SUMS_MATH = {"reassoc", "contract"}  # lets the compiler vectorise the sums (order only; NaN and inf still propagate)
# The same for the loop that also computes bin indices, without "contract": a fused multiply-add there would move
# values that sit exactly on an edge into the neighbouring bin.
INDEX_MATH = {"reassoc"}
COUNTERS = 8  # sets of histogram counters (see `_count`)
# `_scan` counts in pairs when its joint table, (bins + 2)^2 counters per set, is at most 128 wide (512 KiB in all)
# and the array has at least 48 values per joint count: below that, zeroing and summing the table cost more than
# pairing saves (measurements in tests/benchmarks/bench_train_step.py).
PAIRED_MAX_WIDTH = 128
PAIRED_MIN_VALUES_PER_COUNT = 48


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
def _bin(v, lo, hi, scale, top):  # pragma: no cover - compiled
    """A value's bin index as a float to truncate: floor((v - lo) * scale) + 1 for lo <= v < hi, 0 below lo,
    ``top`` at or above hi (and NaN). Compared with hi rather than computed there: (v - lo) * scale can round up
    to ``bins`` for a value just under hi, which belongs in the last bin."""
    t = max(min((v - lo) * scale + 1.0, top - 1.0), 0.0)
    return t if v < hi else top  # NaN is "over"


@numba.njit(cache=True, nogil=True, fastmath=INDEX_MATH)
def _sums_and_bins(flat, lo, hi, scale, top, index):  # pragma: no cover - compiled
    """Sum and sum of squares of the values, and each one's bin index into ``index``. One loop, so the values are
    read once."""
    s = 0.0
    q = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        s += v
        q += v * v
        index[i] = np.uint16(_bin(v, lo, hi, scale, top))
    return s, q


@numba.njit(cache=True, nogil=True, fastmath=INDEX_MATH)
def _sums_and_pair_bins(flat, lo, hi, scale, top, width, index):  # pragma: no cover - compiled
    """Sum and sum of squares of the first 2 * len(index) values, and the joint bin index of each pair (value i,
    value i + len(index)) into ``index``: bin(first) * width + bin(second). Pairs from the two halves, so that the
    loop reads two contiguous runs and compiles to SIMD as `_sums_and_bins` does."""
    s = 0.0
    q = 0.0
    half = index.size
    for i in range(half):
        v = np.float64(flat[i])
        u = np.float64(flat[i + half])
        s += v + u
        q += v * v + u * u
        first, second = np.uint16(_bin(v, lo, hi, scale, top)), np.uint16(_bin(u, lo, hi, scale, top))
        index[i] = np.uint16(first * width + second)
    return s, q


@numba.njit(cache=True, nogil=True)
def _count(index, size):  # pragma: no cover - compiled
    """How often each of 0 .. size - 1 occurs in ``index``. Eight sets of counters, taken in turn, so that
    consecutive values do not wait on each other's increment: neighbouring values of real data (the pixels of an
    image, in dW^1) often fall in the same bin. 32-bit counters, so the sets take half the cache (a set overflows
    only past 8 * 2^31 values, 64 GiB of float32)."""
    lanes = np.zeros((COUNTERS, size), dtype=np.int32)
    whole = index.size - index.size % COUNTERS
    for j in range(0, whole, COUNTERS):
        for k in range(COUNTERS):
            lanes[k, index[j + k]] += 1
    for j in range(whole, index.size):
        lanes[0, index[j]] += 1
    return lanes.sum(axis=0)


@numba.njit(cache=True, nogil=True)
def _scan(flat, ends, bins):  # pragma: no cover - compiled
    """Sum, sum of squares, and the counts of the bin indices (see `_bin`) over ``ends`` = (lo, hi, bins / (hi -
    lo)), with 0 for values below lo and bins + 1 for those at or above hi (and NaN). Two tight loops, one compiled
    to SIMD and one to independent increments, instead of NumPy's five passes and two temporaries. A large array is
    counted in pairs: one increment per pair in a (bins + 2)^2 table of joint counts, whose row and column sums are
    the counts (`PAIRED_MAX_WIDTH`)."""
    width = bins + 2
    top = float(bins + 1)
    lo, hi, scale = ends[0], ends[1], ends[2]
    if width > PAIRED_MAX_WIDTH or flat.size < PAIRED_MIN_VALUES_PER_COUNT * width * width:
        index = np.empty(flat.size, dtype=np.uint16)  # bins <= 1024
        s, q = _sums_and_bins(flat, lo, hi, scale, top, index)
        return s, q, _count(index, width)
    index = np.empty(flat.size // 2, dtype=np.uint16)  # width^2 <= 128^2
    s, q = _sums_and_pair_bins(flat, lo, hi, scale, top, width, index)
    joint = _count(index, width * width).reshape(width, width)  # [bin of first, bin of second]
    counts = joint.sum(axis=1) + joint.sum(axis=0)
    if flat.size % 2:
        v = np.float64(flat[-1])
        s += v
        q += v * v
        counts[int(_bin(v, lo, hi, scale, top))] += 1
    return s, q, counts


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _moments(total, total_sq, flat):  # pragma: no cover - compiled
    """Mean, variance, std and root sum of squares of ``flat`` from its sum and sum of squares (`_finite_moments`),
    or by `_extreme_moments` where the sum of squares is not finite."""
    if math.isfinite(total_sq):
        return _finite_moments(total, total_sq, flat)
    return _extreme_moments(flat)  # a square overflowed (|x| past ~1.3e154), or a value is inf or NaN


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finite_moments(total, total_sq, flat):  # pragma: no cover - compiled
    """`_moments` for a finite sum of squares; two passes where E[x^2] and E[x]^2 cancel."""
    mean = total / flat.size
    mean_sq = total_sq / flat.size
    var = mean_sq - mean * mean
    if var < 1e-6 * mean_sq:  # most of E[x^2] is the mean: the difference lost its digits
        deviations = 0.0
        for i in range(flat.size):
            d = np.float64(flat[i]) - mean
            deviations += d * d
        var = deviations / flat.size
    var = max(var, 0.0)
    return mean, var, math.sqrt(var), math.sqrt(total_sq)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _extreme_moments(flat):  # pragma: no cover - compiled
    """`_moments` of values whose squares overflow float64, or that hold inf or NaN. Finite values are scaled by
    the power of two that brings the largest below 1 (exactly: only exponents change), summarised as any others
    and scaled back, so that every statistic is finite unless it exceeds float64's range itself (a variance past
    1.8e308: inf, as it is). Infinite values give an infinite spread and the mean IEEE arithmetic gives (NaN for
    both signs); a NaN value makes every statistic NaN. Scales a copy: this path is taken only past 1.3e154."""
    largest = 0.0
    for i in range(flat.size):
        v = abs(np.float64(flat[i]))
        if math.isnan(v):
            return math.nan, math.nan, math.nan, math.nan
        largest = max(largest, v)
    if math.isinf(largest):
        total = 0.0
        for i in range(flat.size):
            total += np.float64(flat[i])
        return total / flat.size, math.inf, math.inf, math.inf
    exponent = math.frexp(largest)[1]  # largest < 2^exponent
    scaled = flat.astype(np.float64) * math.ldexp(1.0, -exponent)
    total, total_sq = _sums(scaled)
    mean, var, std, norm = _finite_moments(total, total_sq, scaled)
    return (math.ldexp(mean, exponent), math.ldexp(var, 2 * exponent), math.ldexp(std, exponent),
            math.ldexp(norm, exponent))


# Where `_layer` writes, named once here (module-level ints: the compiler reads them as constants).
OF_Z, OF_A, OF_DZ, OF_DW, OF_W = range(5)  # first axis of `moments`; the first four index `hist` and `outside` too
SCANNED = ("z", "a", "dz", "dw", "w")  # the same arrays by name, in that order
MEAN, VARIANCE, STD = range(3)  # second axis of `moments`
NORM_DW, NORM_W, NORM_DB = range(3)  # first axis of `norms`
DEAD, SATURATED = range(2)  # first axis of `fractions`
UNDER, OVER = range(2)  # last axis of `outside`


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _layer(i, z, a, dz, dw, w, db, table, bins,  # pragma: no cover - compiled
           counts_zeros, saturation, counts_saturated, moments, norms, fractions, hist, outside):
    """Layer i's statistics from its flattened Z, A, dZ, dW, W and db, written at column i of arrays for the whole
    network (indexed by the names above), with Z, A, dZ, dW binned over their ends in ``table[i]`` (`Binning.table`).

    NumPy equivalent: ``X.mean(), X.var(), X.std()`` for X in Z, A, dZ, dW, W; ``np.histogram(X, edges)`` with the
    counts below lo and at or above hi (NaN too) for X in Z, A, dZ, dW; ``np.linalg.norm`` of dW, W, db; ``(A ==
    0).mean()`` and ``((A < low) | (A > high)).mean()`` where the activation can die or saturate (else 0).

    The same kernels as `summarize` and `moments`, so the same figures. One layer per call, with arrays for every
    layer rather than a tuple per network: a tuple's length is part of its type, so every depth would compile anew.
    """
    scanned = (z, a, dz, dw)
    for h in range(len(scanned)):  # OF_Z .. OF_DW
        s, q, c = _scan(scanned[h], table[i, h], bins)
        moments[h, MEAN, i], moments[h, VARIANCE, i], moments[h, STD, i], norm = _moments(s, q, scanned[h])
        hist[h, i] = c[1:-1]
        outside[h, i, UNDER], outside[h, i, OVER] = c[0], c[-1]
        if h == OF_DW:
            norms[NORM_DW, i] = norm
    s, q = _sums(w)
    moments[OF_W, MEAN, i], moments[OF_W, VARIANCE, i], moments[OF_W, STD, i], norms[NORM_W, i] = _moments(s, q, w)
    s, q = _sums(db)
    norms[NORM_DB, i] = _moments(s, q, db)[3]
    low, high = saturation[i, 0], saturation[i, 1]
    zeros = 0
    saturated = 0
    if counts_zeros[i]:
        for j in range(a.size):
            if a[j] == 0:
                zeros += 1
    if counts_saturated[i]:
        for j in range(a.size):
            if a[j] < low or a[j] > high:
                saturated += 1
    fractions[DEAD, i] = zeros / a.size
    fractions[SATURATED, i] = saturated / a.size


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
    """Mean, variance, std and sqrt of the sum of squares, with float64 accumulators (see `_moments`)."""
    flat = x.reshape(-1)
    total, total_sq = _sums(flat)
    return _moments(total, total_sq, flat)


def summarize(x: Array, lo: float, hi: float, bins: int) -> Summary:
    """Moments and the counts in ``bins`` equal bins over [lo, hi) and outside it, in one pass over ``x``."""
    flat = x.reshape(-1)
    total, total_sq, counts = _scan(flat, kernel_ends(float(lo), float(hi), bins), bins)
    return Summary(*_moments(total, total_sq, flat), counts[1:-1], int(counts[0]), int(counts[-1]))


@numba.njit(cache=True, nogil=True)
def _finite_extent(flat):  # pragma: no cover - compiled
    """Count, root mean square and largest magnitude of the finite values, in one pass (two where their squares
    overflow: then summed scaled by the largest)."""
    n = 0
    q = 0.0
    top = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        if math.isfinite(v):
            n += 1
            q += v * v
            top = max(top, abs(v))
    if n == 0:
        return 0, 0.0, 0.0
    if math.isfinite(q):
        return n, math.sqrt(q / n), top
    q = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        if math.isfinite(v):
            q += (v / top) * (v / top)
    return n, math.sqrt(q / n) * top, top


LARGEST_EDGE = np.finfo(np.float64).max / 2  # so that a histogram's width, hi - lo, is finite too


def _range(values: Array, bounds: tuple[float, float] | None, nonnegative: bool) -> tuple[float, float]:
    if bounds is not None:
        return bounds
    n, rms, largest = _finite_extent(values.reshape(-1))
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
    return Binning(lo, hi, bins)


@lru_cache(maxsize=256)
def _activation_checks(net: Network, dtype: str) -> tuple[Array, Array, Array]:
    """What `_layer` counts in each layer's A: whether zeros count (L,), the saturation bounds in the data's
    dtype (L, 2), whether saturation counts (L,). Fixed for a network, so worked out once rather than at every
    recorded step (the arrays are shared: never written to)."""
    acts = [ACTIVATIONS.get(net.layer_activation(i)) for i in range(net.depth)]  # None only for the softmax output
    saturates = [act is not None and act.saturation is not None for act in acts]
    bounds = [act.saturation if s else (0.0, 0.0) for act, s in zip(acts, saturates)]
    return (np.array([act is not None and act.can_die for act in acts]), np.array(bounds, dtype=dtype),
            np.array(saturates))


HISTOGRAM_KEYS = tuple((f"{h}_hist", f"{h}_outside") for h in HISTOGRAMS)


def layer_stats(net: Network, params: Params, cache: Cache, grads: Grads, binning: Binning) -> dict[str, Array]:
    """Every per-layer statistic of one pass but ``update_ratio``, which `with_update_ratio` adds once the update
    is known (the update changes W, whose norm is taken here, before it).

    Each of Z, A, dZ and dW is read once (moments, counts and histogram together), W once; norms come from the sums
    of squares. One compiled call per layer (`_layer`), into arrays for all layers; the figures are views of them.
    """
    L, bins = net.depth, binning.bins
    moments = np.empty((len(SCANNED), 3, L))  # [OF_Z .. OF_W, MEAN .. STD, layer]
    norms = np.empty((3, L))  # [NORM_DW .. NORM_DB, layer]
    fractions = np.empty((2, L))  # [DEAD, SATURATED, layer]
    hist = np.empty((len(HISTOGRAMS), L, bins), dtype=np.int64)
    outside = np.empty((len(HISTOGRAMS), L, 2), dtype=np.int64)  # [OF_Z .. OF_DW, layer, UNDER/OVER]
    checks = _activation_checks(net, cache.A[1].dtype.str)
    for i in range(L):
        layer = (cache.Z[i], cache.A[i + 1], grads.dZ[i], grads.dW[i], params.W[i], grads.db[i])
        _layer(i, *(x.reshape(-1) for x in layer), binning.table, bins, *checks, moments, norms, fractions, hist,
               outside)
    z, a, dz, dw, w = (moments[OF_Z], moments[OF_A], moments[OF_DZ], moments[OF_DW], moments[OF_W])
    out = {"z_mean": z[MEAN], "z_var": z[VARIANCE], "z_std": z[STD], "a_mean": a[MEAN], "a_var": a[VARIANCE],
           "a_std": a[STD], "dead_fraction": fractions[DEAD], "saturated_fraction": fractions[SATURATED],
           "dz_mean": dz[MEAN], "dz_std": dz[STD], "dw_mean": dw[MEAN], "dw_std": dw[STD], "dw_norm": norms[NORM_DW],
           "db_norm": norms[NORM_DB], "w_std": w[STD], "w_norm": norms[NORM_W]}
    for h, (hist_key, outside_key) in zip((OF_Z, OF_A, OF_DZ, OF_DW), HISTOGRAM_KEYS):
        out[hist_key] = hist[h]
        out[outside_key] = outside[h]
    return out


def with_update_ratio(stats: dict[str, Array], update_norms) -> dict[str, Array]:
    """``stats`` with update_ratio = ||update of W^l|| / ||W^l|| (inf or NaN where ||W^l|| is 0), every key in the
    order the run file stores them: SCALARS, then each histogram and its outside counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(update_norms, dtype=np.float64) / stats["w_norm"]
    order = SCALARS + tuple(key for pair in HISTOGRAM_KEYS for key in pair)
    return {key: ratio if key == "update_ratio" else stats[key] for key in order}


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
