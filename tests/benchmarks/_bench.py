"""What the benchmarks share: interleaved timing, the thread count, and the printed table.

The machine is shared, so every figure is the median of repeats taken in turns (Init Lab, PyTorch, the floor,
Init Lab, ...) after a warm-up: a burst of load from someone else hits every contender alike, and the spread
(interquartile range over the median) is printed so that a noisy run shows itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: `python tests/benchmarks/bench_x.py`
    sys.path.insert(0, str(REPO))

from core.network import transposes_product  # noqa: E402

SETTLE = 0.05  # seconds between contenders: PyTorch's OpenMP and OpenBLAS threads spin after their work, and on
# two cores a spinning pool would otherwise be charged to whoever runs next


def _numpy_blas() -> dict:
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    ours = [p for p in pools if "numpy" in p.get("filepath", "")]  # torch may bring a BLAS of its own
    return (ours or pools or [{"num_threads": 1, "internal_api": "none", "version": "", "architecture": "?"}])[0]


def blas_threads() -> tuple[int, str]:
    """NumPy's BLAS thread count and a one-line description of the library (via threadpoolctl)."""
    pool = _numpy_blas()
    return pool["num_threads"], f"{pool['internal_api']} {pool['version']} ({pool.get('architecture', '?')})"


def set_threads(threads: int | None, pytorch: bool = True):
    """Limit NumPy's BLAS to ``threads`` (None: leave it), then give PyTorch the same count; returns torch (None
    with ``pytorch=False``: it is not even imported)."""
    from threadpoolctl import threadpool_limits

    if threads:
        threadpool_limits(limits=threads, user_api="blas")
    if not pytorch:
        return None
    import torch

    torch.set_num_threads(blas_threads()[0])
    return torch


def parser(description: str, burst: int = 1) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per contender (median reported)")
    p.add_argument("--burst", type=int, default=burst,
                   help="calls back to back in each timed round, timed together: a training loop runs its steps "
                        "back to back, so a short call is timed warm, not as a lone call that wakes the BLAS "
                        "threads and finds its arrays out of cache")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    p.add_argument("--threads", type=int, default=None, help="BLAS and PyTorch threads (default: BLAS's own)")
    p.add_argument("--without-pytorch", action="store_true",
                   help="leave PyTorch out (not imported): at 2 threads its OpenMP pool and NumPy's OpenBLAS pool, "
                        "each spinning between calls on the same two cores, slow whichever runs next")
    return p


def dtypes(choice: str) -> tuple[str, ...]:
    return ("float64", "float32") if choice == "both" else (choice,)


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int,
                burst: int = 1) -> dict[str, tuple[float, float]]:
    """Seconds per call of each case: (median, interquartile range / median), the cases run in turns, each round
    timing ``burst`` calls of a case back to back."""
    for _ in range(warmup):
        for run in cases.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            time.sleep(SETTLE)
            start = time.perf_counter()
            for _ in range(burst):
                run()
            times[name].append((time.perf_counter() - start) / burst)
    out = {}
    for name, ts in times.items():
        q1, median, q3 = np.percentile(ts, [25, 50, 75])
        out[name] = (float(median), float((q3 - q1) / median))
    return out


def matmul_floor(w: list[np.ndarray], x: np.ndarray, dz: list[np.ndarray]) -> Callable[[], None]:
    """The matrix products of one forward and backward pass through weights ``w`` on input ``x``, into preallocated
    outputs: forward W_l A_{l-1} for every layer (the first as core.network.layer_product computes it, without its
    copy); backward dZ_l A_{l-1}^T for every layer and W_l^T dZ_l for every layer but the first (the input's gradient
    is never needed). ``dz[l]`` stands for layer l's dZ. The floor a network engine cannot go below with the same
    shapes, dtype and memory layout."""
    m, dtype = x.shape[1], x.dtype
    a = [x] + [np.zeros((wi.shape[0], m), dtype) for wi in w]  # zeros: a[1] is never written when transposed
    dw = [np.empty_like(wi) for wi in w]
    da = [np.empty((wi.shape[1], m), dtype) for wi in w[1:]]
    transposed = transposes_product(x)
    z1_t = np.empty((m, w[0].shape[0]), dtype)

    def products() -> None:
        if transposed:
            np.matmul(x.T, w[0].T, out=z1_t)
        else:
            np.matmul(w[0], x, out=a[1])
        for i in range(1, len(w)):
            np.matmul(w[i], a[i], out=a[i + 1])
        for i in reversed(range(len(w))):
            np.matmul(dz[i], a[i].T, out=dw[i])
            if i > 0:
                np.matmul(w[i].T, dz[i], out=da[i - 1])

    return products


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_header(title: str) -> None:
    torch = sys.modules.get("torch")
    threads, library = blas_threads()
    print(f"\n== {title}")
    print(f"threads: NumPy BLAS {threads} ({library}), "
          + (f"PyTorch {torch.get_num_threads()}" if torch else "PyTorch not loaded")
          + f"; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # the machine is shared


def print_table(rows: list[tuple[str, float, float, str]], timing: dict[str, tuple[float, float]]) -> None:
    """rows: (figure, Init Lab seconds, reference seconds, reference name); times in ms, ratio = ours / ref. A row
    with a contender that was not run (None: --without-pytorch) is left out."""
    rows = [row for row in rows if row[1] is not None and row[2] is not None]
    print(f"{'figure':<44} {'Init Lab ms':>12} {'reference ms':>13} {'ratio':>7}  reference")
    for figure, ours, ref, ref_name in rows:
        print(f"{figure:<44} {ours * 1e3:12.3f} {ref * 1e3:13.3f} {ours / ref:7.3f}  {ref_name}")
    spread = ", ".join(f"{name} {iqr:.0%}" for name, (_, iqr) in timing.items())
    print(f"noise (IQR/median): {spread}")
