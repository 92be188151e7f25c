"""Compile (or load from numba's cache) every kernel signature a run can use, before any run needs it.

A run compiles only what it uses, the first time it meets an empty cache (seconds: tests/benchmarks/
bench_cold_start.py); with a filled cache, a process still loads each kernel the first time it calls it (0.3-1
CPU-s for a run's kernels), which `warm_for` does before a run is timed. A server calls `warm_kernels` at start, in the background, so that its first student does not
wait; the Docker image calls it at build time, so that its containers start with the cache filled:

    python -c "from core.warm import warm_kernels; warm_kernels()"
"""

from __future__ import annotations

import time

import numpy as np

from .config import DTYPES, OPTIMIZERS, Config
from .data import Dataset
from .stats import moments
from .train import Training


def _tiny_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(name="warm-up", x_train=rng.standard_normal((3, 8)), y_train=rng.integers(0, 2, (1, 8)),
                   x_test=rng.standard_normal((3, 2)), y_test=rng.integers(0, 2, (1, 2)), classes=("0", "1"))


def warm_for(config: Config) -> None:
    """Compile or load the kernels a run of ``config`` uses (its dtype, optimiser and activations), by a two-step
    training of a tiny network with two units per hidden layer: the CLI calls it before it starts its clock, so that
    the seconds it reports are the training's, as a benchmark of the step measures them."""
    tiny = config.replace(layers=(2,) * len(config.layers), iterations=1, record_every=1, batch_size=0)
    list(Training(tiny, _tiny_dataset()))


def warm_kernels() -> float:
    """Run a two-step training of a tiny network for every dtype and optimiser (statistics, updates, histogram
    ranges, the exact GELU's error function), and take the moments of values whose squares overflow (the path
    `layer_kernel` leaves to Python); returns the seconds it took. Safe to call from any thread, at any time: numba
    compiles each signature once."""
    started = time.perf_counter()
    for dtype in DTYPES:
        for optimizer in OPTIMIZERS:
            warm_for(Config(layers=(2,), activation="gelu_erf", dtype=dtype, optimizer=optimizer))
        moments(np.array([np.inf, 1.0], dtype=dtype))
    return time.perf_counter() - started
