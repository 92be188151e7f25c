"""How many bytes a run needs at its peak, worked out before anything is allocated.

`estimate_bytes` replays the allocations of `core.train.Training` in the order it makes them (the float32 copies
of the data, initialisation, then each step's forward pass, cost, backward pass, statistics and evaluation) and
returns the most bytes alive at any moment, beyond the dataset itself (loaded before the run, and shared by every
run on it). tests/test_memory.py checks it against the peak that tracemalloc measures for real runs over shapes,
dtypes, optimisers, activations and batch sizes; change it with the engine.

Activations and initialisers are charged what they hold at their own peak, measured with tracemalloc on large
arrays (where NumPy reuses temporaries in place): the tables below, in arrays of the layer's size.
"""

from __future__ import annotations

import numpy as np

from .config import Config
from .initializers import INITIALIZERS
from .network import Network

# name: (floats, masks, float64s) held at the peak of its forward and of its derivative, the result included: a
# float in the run's dtype, a mask a bool (one byte), a float64 whatever the dtype. The sigmoid's peak depends on
# the signs of Z (it splits them): the figure is the worst case, all negative.
FORWARD_WORK = {
    "relu": (1, 0, 0), "leaky_relu": (2, 1, 0), "tanh": (1, 0, 0), "sigmoid": (4, 1, 0), "linear": (0, 0, 0),
    "elu": (2, 1, 0), "selu": (2, 1, 0), "gelu_tanh": (3, 0, 0), "gelu_erf": (3, 0, 0), "swish": (4, 1, 0),
    "softmax": (2, 0, 0),
}
DERIVATIVE_WORK = {
    "relu": (1, 1, 0), "leaky_relu": (1, 0, 1), "tanh": (2, 0, 0), "sigmoid": (1, 0, 0), "linear": (1, 0, 0),
    "elu": (2, 1, 0), "selu": (2, 1, 0), "gelu_tanh": (5, 0, 0), "gelu_erf": (3, 0, 0), "swish": (3, 0, 0),
}
# float64 arrays of the weight matrix's size an initialiser holds at its peak: the truncated normal its draw,
# |draw| and a mask; every other initialiser but the orthogonal ones (`_sample_bytes`) draws one array.
SAMPLE_WORK = {"truncated_normal": 2.25}
NORM_VECTORS = 12  # (n, 1) arrays a normalised layer keeps: an upper bound (see _layer_extras)
ORTHOGONAL = ("orthogonal", "lsuv")  # LSUV starts from an orthogonal draw
COST_WORK = 3  # floats of the output's size the cross-entropy holds at once (log-sum-exp, the targets, a product)
# As in core/kernels.py (not imported: that would load numba wherever the estimate is needed)
COUNTERS = 8
CHUNK = 2048
RUN_OVERHEAD = 256 * 2**10  # Python objects of a run (lists, snapshots, the statistics' small arrays): measured
# below 100 KiB for small networks in tests/test_memory.py
# A recorded snapshot's statistics, as core/stats.py stores them (copied: importing it loads numba): for each layer
# SCALARS (17, NORM_SCALARS' 9 more in a normalised network), HISTOGRAMS (4) of `bins` counts, and their 2 counts
# outside the range; each value 8 bytes. Read back from its run file, as a server holds every snapshot of the runs
# its pages show (app/serving/store.py), a snapshot also takes ~4.2 kB of Python objects (its dict, an array per
# statistic): measured with tracemalloc, 2 to 21 layers, in tests/test_memory.py.
SNAPSHOT_SCALARS, NORM_SNAPSHOT_SCALARS, SNAPSHOT_HISTOGRAMS = 17, 9, 4
SNAPSHOT_OBJECTS = 4_200


class _Tally:
    """Bytes alive as the replay allocates and frees them, and the most at any moment."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def hold(self, n: float) -> None:
        self.live += n
        self.peak = max(self.peak, self.live)

    def free(self, n: float) -> None:
        self.live -= n

    def passing(self, n: float) -> None:
        """A temporary, freed before anything else is allocated."""
        self.hold(n)
        self.free(n)


def _work(table: dict, name: str, size: int, item: int) -> int:
    floats, masks, doubles = table[name]
    return size * (floats * item + masks + doubles * 8)


def snapshot_count(config: Config) -> int:
    """Snapshots a run of ``config`` records: step 0, every ``record_every`` steps, and the last step."""
    return config.iterations // config.record_every + 1 + (config.iterations % config.record_every != 0)


def recorded_bytes(net: Network, config: Config) -> int:
    """Bytes the snapshots of a run of ``config`` take once read back from its run file (a server's pages hold them
    all while they show the run)."""
    return snapshots_bytes(snapshot_count(config), net.depth, config.bins, config.norm)


def snapshots_bytes(count: int, depth: int, bins: int, norm: str) -> int:
    """Bytes ``count`` snapshots of a network of ``depth`` layers take once read back from a run file: each
    SNAPSHOT_OBJECTS, and 8 bytes a value."""
    per_layer = SNAPSHOT_SCALARS + (NORM_SNAPSHOT_SCALARS if norm != "none" else 0) + SNAPSHOT_HISTOGRAMS * (bins + 2)
    return count * (SNAPSHOT_OBJECTS + 8 * per_layer * depth)


def estimate_bytes(net: Network, config: Config, m_train: int, m_test: int) -> int:
    """The most bytes a run of ``config`` on ``net`` holds at once, beyond the dataset (see the module docstring)."""
    item = np.dtype(config.dtype).itemsize
    dims, depth = net.dims, net.depth
    names = [net.layer_activation(i) for i in range(depth)]
    weights = [n_out * n_in for n_in, n_out in zip(dims[:-1], dims[1:])]
    full_batch = config.batch_size == 0 or config.batch_size >= m_train
    batch = m_train if full_batch else config.batch_size
    tally = _Tally()
    if config.dtype != "float64":
        tally.hold(dims[0] * (m_train + m_test) * item)  # the data cast once to the run's dtype
    _initialisation(tally, net, config, weights, m_train, item)
    # the steps: targets, optimiser state, the mini-batch order and the batch's copy of the data
    tally.hold(dims[-1] * m_train * item)
    tally.hold({"gd": 0, "momentum": 1, "adam": 2}[config.optimizer] * net.n_params * item)
    if not full_batch:
        tally.hold(8 * m_train + (dims[0] + dims[-1]) * batch * item + 8 * batch)
    passes = _passes(tally, net, names, weights, config, batch, item)
    _statistics(tally, len(weights), config.bins)
    if full_batch:
        if net.norm == "batch":  # training accuracy from the running statistics: a pass of its own
            tally.passing(_evaluation(tally, net, names, m_train, item))
        _evaluation(tally, net, names, m_test, item)
        tally.passing(10 * m_train)  # the training accuracy's predictions
    else:
        tally.hold(_evaluation(tally, net, names, m_train, item, _cost_work(net, weights, config, m_train, item)))
        tally.passing(_evaluation(tally, net, names, m_test, item))
        tally.free(dims[-1] * m_train * item)
    tally.free(passes)
    return int(tally.peak) + RUN_OVERHEAD


def _initialisation(tally: _Tally, net: Network, config: Config, weights: list[int], m_train: int, item: int) -> None:
    """Each W drawn in float64, scaled by the gain and cast; then LSUV's passes over the training data."""
    for size, n_in, n_out in zip(weights, net.dims[:-1], net.dims[1:]):
        drawn = max(_sample_bytes(config.init, n_out, n_in), 16 * size if config.init_gain != 1.0 else 0)
        kept = size * item
        tally.passing(max(drawn, 8 * size + (kept if item != 8 else 0)))
        tally.hold(kept + n_out * item)
    if INITIALIZERS[config.init].data_dependent:
        previous = 0  # the layer's input: the data itself first
        for i, n_out in enumerate(net.dims[1:]):
            z = n_out * m_train * item
            # Z held while W @ A + b is computed again (two arrays), or while its variance takes a copy
            tally.passing(previous + z + max(2 * z, _work(FORWARD_WORK, net.layer_activation(i), n_out * m_train,
                                                              item) if i < net.depth - 1 else 0))
            previous = z


def _sample_bytes(init: str, rows: int, cols: int) -> float:
    """What drawing a (rows, cols) weight matrix holds at its peak, in bytes."""
    if init in ORTHOGONAL:  # the draw, QR's copy of it, Q, R, and LAPACK's workspace (measured: under k^2 / 4)
        k = min(rows, cols)
        return 8 * (2 * rows * cols + max(rows, cols) * k + 1.25 * k * k)
    return 8 * SAMPLE_WORK.get(init, 1.0) * rows * cols


def _passes(tally: _Tally, net: Network, names: list[str], weights: list[int], config: Config, batch: int,
            item: int) -> int:
    """Forward pass, cost and backward pass on a batch; returns the bytes they leave held (Z, A, dZ, dW, db)."""
    start = tally.live
    _forward(tally, net, names, batch, item)
    tally.passing(_cost_work(net, weights, config, batch, item))
    tally.hold(net.dims[-1] * batch * item)  # dZ of the output layer
    for i in reversed(range(net.depth)):
        n_out, n_in = net.dims[i + 1], net.dims[i]
        tally.hold(n_out * batch * item)  # dZ / m, the left factor of dW: alive while dW is allocated
        tally.hold((weights[i] + n_out) * item)  # dW, db
        tally.free(n_out * batch * item)
        if config.l2:
            tally.passing(weights[i] * item)
        if i < net.depth - 1 and net.norm != "none":
            tally.hold(n_out * batch * item)  # the gradient at the pre-normalisation Z, kept for the statistics
            tally.passing(3 * n_out * batch * item)  # the normalisation's backward: g, its product with X_hat, dZ
        if i > 0:
            tally.hold(n_in * batch * item)  # dZ of the layer below, scaled in place by phi'
            tally.passing(_work(DERIVATIVE_WORK, names[i - 1], n_in * batch, item))
            if net.is_block(i - 1):
                tally.passing(2 * n_in * batch * item)  # the skip's gradient and the scaled branch's, beside it
    return tally.live - start


def _cost_work(net: Network, weights: list[int], config: Config, columns: int, item: int) -> int:
    """The cross-entropy's temporaries, or the L2 term's square of the largest W where that is more."""
    return max(COST_WORK * net.dims[-1] * columns * item, max(weights) * item if config.l2 else 0)


def _forward(tally: _Tally, net: Network, names: list[str], columns: int, item: int) -> int:
    """A forward pass over ``columns`` examples, left held; returns its bytes."""
    start = tally.live
    for i, name in enumerate(names):
        size = net.dims[i + 1] * columns
        tally.hold(size * item)  # Z
        # float32: `layer_product`'s Z^T (the data is column-major), alive while it is copied into Z
        if i == 0 and item == 4:
            tally.passing(size * item)
        if i < net.depth - 1:
            _layer_extras(tally, net, i, size * item)
        name = name if i < net.depth - 1 else net.output
        forward_work = _work(FORWARD_WORK, name, size, item)
        tally.passing(forward_work)
        if name != "linear":  # a linear layer's A is its Z
            tally.hold(size * item)
    return tally.live - start


def _layer_extras(tally: _Tally, net: Network, i: int, array: int) -> None:
    """What a normalisation (the pre-normalisation Z and X_hat held, three temporaries) and a residual block (its
    branch phi(Z) held, the sum's temporary) add to hidden layer i's forward pass, in arrays of its size. An upper
    bound, not a replay as for plain layers: tests/test_memory.py checks that it is never below the measured peak."""
    if net.norm != "none":
        tally.hold(2 * array)
        tally.passing(3 * array)
        # and the per-unit vectors (batch mean, variance, 1/std, the running statistics' updates, gamma's and
        # beta's gradients and optimiser state): negligible but for deep narrow networks, counted as float64
        tally.hold(NORM_VECTORS * net.dims[i + 1] * 8)
    if net.is_block(i):
        tally.hold(array * (2 if net.norm != "none" else 1))  # with a norm one more, found by measuring
        tally.passing(array)


def _evaluation(tally: _Tally, net: Network, names: list[str], columns: int, item: int, cost_work: int = 0) -> int:
    """A forward pass for accuracy (and the cost, whose temporaries are ``cost_work``) over ``columns`` examples,
    all freed but the probabilities; returns their bytes."""
    held = _forward(tally, net, names, columns, item)
    tally.passing(max(cost_work, 10 * columns))  # or the predictions, int64 and compared
    tally.free(held)
    return net.dims[-1] * columns * item


def _statistics(tally: _Tally, depth: int, bins: int) -> None:
    """`layer_stats`: the histograms and edges of every layer, and `scan`'s buffers."""
    tally.hold(depth * 4 * (2 * bins + 3) * 8)
    width = bins + 2
    tally.passing(2 * CHUNK + COUNTERS * width * 4 + 8 * width)  # `scan_buffers`
