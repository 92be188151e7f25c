"""The compiled one-pass kernels behind `core.stats`: sums, moments and histogram counts read off an array once.

Each kernel's docstring gives what it computes; `stats` turns their outputs into a Snapshot's statistics. The
measurements behind their design are in tests/benchmarks/bench_train_step.py.
"""

from __future__ import annotations

import math

import numba
import numpy as np

Array = np.ndarray


def kernel_ends(lo, hi, bins: int) -> Array:
    """What `scan` takes for ``bins`` equal bins over [lo, hi): (lo, hi, bins / (hi - lo)) along a last axis."""
    return np.stack([lo, hi, bins / (hi - lo)], axis=-1)


SUMS_MATH = {"reassoc", "contract"}  # lets the compiler vectorise the sums (order only; NaN and inf still propagate)
# The same for the loop that also computes bin indices, without "contract": a fused multiply-add there would move
# values that sit exactly on an edge into the neighbouring bin.
INDEX_MATH = {"reassoc"}
COUNTERS = 8  # sets of histogram counters (see `scan`)
CHUNK = 2048  # values `scan` bins before counting them: their indices stay in the CPU's first-level cache
# Compile time, not run time, shapes these kernels: a fresh install compiles a run's kernels before its first step
# (tests/benchmarks/bench_cold_start.py). numba compiles a function together with every function it calls, and the
# callees again on their own, so a call chain is compiled once per level: each kernel is one flat function, and
# buffers come from the caller (an allocation inside a kernel compiles NumPy's allocation code with it).
# Every kernel is compiled without the C-callable wrapper numba builds for passing a function as a value (Init Lab
# never does): part of a fresh install's compilation for nothing (README, Cold start).
COMPILED = {"cache": True, "nogil": True, "no_cfunc_wrapper": True}


def scan_buffers(bins: int) -> tuple[Array, Array, Array]:
    """What `scan` writes into for ``bins`` bins: bin indices of a chunk, counter sets, counts."""
    return (np.empty(CHUNK, dtype=np.uint16), np.empty((COUNTERS, bins + 2), dtype=np.int32),
            np.empty(bins + 2, dtype=np.int64))


@numba.njit(**COMPILED, fastmath=SUMS_MATH)
def sums(flat):  # pragma: no cover - compiled
    s = 0.0
    q = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        s += v
        q += v * v
    return s, q


@numba.njit(**COMPILED, fastmath=INDEX_MATH)
def scan(flat, ends, bins, index, lanes, counts):  # pragma: no cover - compiled
    """Sum and sum of squares of ``flat``, and into ``counts[:bins + 2]`` the counts of its values' bin indices over
    ``ends`` = (lo, hi, bins / (hi - lo)): floor((v - lo) * scale) + 1 for lo <= v < hi, 0 below lo, bins + 1 at or
    above hi (and NaN). ``index`` and ``lanes`` are scratch (`scan_buffers`).

    Two tight loops instead of NumPy's five passes and two temporaries, taken in turns over CHUNK values at a time:
    one reads the values once (sums and bin indices, compiled to SIMD), the other counts the indices in eight sets of
    counters taken in turn, so that consecutive values do not wait on each other's increment (neighbouring values of
    real data, the pixels of an image in dW^1, often fall in the same bin). In chunks, the indices are counted while
    still in the first-level cache (dW^1's 245,760 values: 0.155 -> 0.148 ms), and the buffers no longer grow with
    the array (they held 2 bytes for each value of the largest, half a float32 array's size, at a recorded step's
    peak). 32-bit counters, so the sets take half the cache (a set overflows only past 8 * 2^31 values, 64 GiB of
    float32)."""
    width = bins + 2
    top = float(bins + 1)
    lo, hi, scale = ends[0], ends[1], ends[2]
    s = 0.0
    q = 0.0
    for k in range(COUNTERS):  # loops, not slice assignments or lanes.sum(axis=0): their checks take seconds to compile
        for b in range(width):
            lanes[k, b] = 0
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]  # a slice, not flat[start + i]: an index the compiler cannot prove
        n = part.size                     # nonnegative keeps the loop below from being vectorised
        for i in range(n):
            v = np.float64(part[i])
            s += v
            q += v * v
            # Compared with hi rather than computed there: (v - lo) * scale can round up to bins for a value just
            # under hi, which belongs in the last bin. Conditionals, not min() and max(): those compile as functions
            # of their own.
            t = (v - lo) * scale + 1.0
            t = t if t < top - 1.0 else top - 1.0
            t = t if t > 0.0 else 0.0
            index[i] = np.uint16(t if v < hi else top)  # NaN is "over"
        whole = n - n % COUNTERS
        for j in range(0, whole, COUNTERS):
            for k in range(COUNTERS):
                lanes[k, index[j + k]] += 1
        for j in range(whole, n):
            lanes[0, index[j]] += 1
    for b in range(width):
        total = 0
        for k in range(COUNTERS):
            total += lanes[k, b]
        counts[b] = total
    return s, q


@numba.njit(**COMPILED, error_model="numpy")
def sum_moments(total, total_sq, flat):  # pragma: no cover - compiled
    """Mean, variance, std and root sum of squares of ``flat`` from its sum and sum of squares
    (`finite_moments_or_nan`), or by `_extreme_moments` where the sum of squares is not finite."""
    if math.isfinite(total_sq):
        return finite_moments_or_nan(total, total_sq, flat)
    return _extreme_moments(flat)  # a square overflowed (|x| past ~1.3e154), or a value is inf or NaN


@numba.njit(**COMPILED, error_model="numpy")
def finite_moments_or_nan(total, total_sq, flat):  # pragma: no cover - compiled
    """`sum_moments` where the sum of squares is finite, with two passes where E[x^2] and E[x]^2 cancel; else NaN
    for all four: `layer_kernel` leaves those to Python (`core.stats`), so that `_extreme_moments`, seldom needed,
    is compiled only when a run needs it (it was a sixth of a run's compile time)."""
    if not math.isfinite(total_sq):
        return math.nan, math.nan, math.nan, math.nan
    mean = total / flat.size
    mean_sq = total_sq / flat.size
    var = mean_sq - mean * mean
    if var < 1e-6 * mean_sq:  # most of E[x^2] is the mean: the difference lost its digits
        deviations = 0.0
        for i in range(flat.size):
            d = np.float64(flat[i]) - mean
            deviations += d * d
        var = deviations / flat.size
    var = var if var > 0.0 else 0.0
    return mean, var, math.sqrt(var), math.sqrt(total_sq)


@numba.njit(**COMPILED, error_model="numpy")
def _extreme_moments(flat):  # pragma: no cover - compiled
    """`sum_moments` of values whose squares overflow float64, or that hold inf or NaN. Finite values are scaled by
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
    total, total_sq = sums(scaled)
    mean, var, std, norm = finite_moments_or_nan(total, total_sq, scaled)
    return (math.ldexp(mean, exponent), math.ldexp(var, 2 * exponent), math.ldexp(std, exponent),
            math.ldexp(norm, exponent))


# Where `layer_kernel` writes, named once here (module-level ints and tuples: the compiler reads them as constants).
# Its figures go into one float64 array, a row per figure in FIGURES' order: core.stats' SCALARS (the run file's
# order, so that a snapshot's statistics are that array's rows, named in one pass; update_ratio is filled once the
# update is known), then the moments SCALARS leave out.
FIGURES = ("z_mean", "z_var", "z_std", "a_mean", "a_var", "a_std", "dead_fraction", "saturated_fraction",
           "dz_mean", "dz_std", "dw_mean", "dw_std", "dw_norm", "db_norm", "w_std", "w_norm", "update_ratio",
           "dz_var", "dw_var", "w_mean", "w_var")
_ROW = {name: row for row, name in enumerate(FIGURES)}
OF_Z, OF_A, OF_DZ, OF_DW, OF_W = range(5)  # index MOMENT_ROWS; the first four index `hist` and `outside` too
SCANNED = ("z", "a", "dz", "dw", "w")  # the same arrays by name, in that order
MEAN, VARIANCE, STD = range(3)  # index each of MOMENT_ROWS
MOMENT_ROWS = tuple(tuple(_ROW[f"{h}_{m}"] for m in ("mean", "var", "std")) for h in SCANNED)
NORM_DW, NORM_W, NORM_DB = _ROW["dw_norm"], _ROW["w_norm"], _ROW["db_norm"]
DEAD, SATURATED = _ROW["dead_fraction"], _ROW["saturated_fraction"]
UNDER, OVER = range(2)  # last axis of `outside`


@numba.njit(**COMPILED, error_model="numpy")
def layer_kernel(i, z, a, dz, dw, w, db, table, bins,  # pragma: no cover - compiled
                 counts_zeros, saturation, counts_saturated, figures, hist, outside, index, lanes, counts):
    """Layer i's statistics from its flattened Z, A, dZ, dW, W and db, written at column i of arrays for the whole
    network (indexed by the names above), with Z, A, dZ, dW binned over their ends in ``table[i]`` (`Binning.table`);
    ``index``, ``lanes`` and ``counts`` are `scan`'s buffers (`scan_buffers`).

    Where an array's squares overflow (or it holds inf or NaN) its moments and norm are left NaN, for
    `core.stats.layer_stats` to complete with `sum_moments`; the kernel returns whether it left any. NumPy
    equivalent: ``X.mean(), X.var(), X.std()`` for X in Z, A, dZ, dW, W; ``np.histogram(X, edges)`` with the counts
    below lo and at or above hi (NaN too) for X in Z, A, dZ, dW; ``np.linalg.norm`` of dW, W, db; ``(A == 0).mean()``
    and ``((A < low) | (A > high)).mean()`` where the activation can die or saturate (else 0).

    The same kernels as `summarize` and `moments`, so the same figures. One layer per call, with arrays for every
    layer rather than a tuple per network: a tuple's length is part of its type, so every depth would compile anew.
    """
    scanned = (z, a, dz, dw)
    left_nan = False
    for h in range(len(scanned)):  # OF_Z .. OF_DW
        s, q = scan(scanned[h], table[i, h], bins, index, lanes, counts)
        mean, var, std = MOMENT_ROWS[h]
        figures[mean, i], figures[var, i], figures[std, i], norm = finite_moments_or_nan(s, q, scanned[h])
        for b in range(bins):  # element by element: a slice assignment compiles numba's shape checks (seconds)
            hist[h, i, b] = counts[b + 1]
        outside[h, i, UNDER], outside[h, i, OVER] = counts[0], counts[bins + 1]
        if h == OF_DW:
            figures[NORM_DW, i] = norm
        left_nan = left_nan or math.isnan(norm)
    s, q = sums(w)
    mean, var, std = MOMENT_ROWS[OF_W]
    figures[mean, i], figures[var, i], figures[std, i], figures[NORM_W, i] = finite_moments_or_nan(s, q, w)
    s, q = sums(db)
    figures[NORM_DB, i] = finite_moments_or_nan(s, q, db)[3]
    left_nan = left_nan or math.isnan(figures[NORM_W, i]) or math.isnan(figures[NORM_DB, i])
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
    figures[DEAD, i] = zeros / a.size
    figures[SATURATED, i] = saturated / a.size
    return left_nan
