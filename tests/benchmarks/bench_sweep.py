"""Sweep throughput on this machine: cells per second on a LocalCluster of 1 and of 2 worker processes (target: 2
workers at least 1.8x one), and the time per cell on 1 worker against the same trainings in a plain loop in this
process (target: at most 1.1x). Every contender trains the same fresh cells (an empty cache each time), after a
warm-up cell that loads numba's compiled kernels. The machine may be shared: the load average is printed with the
figures, and the repeats are interleaved so that a burst of load hits every contender alike.

    python tests/benchmarks/bench_sweep.py [--repeats N] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in a worker: one BLAS thread per process
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from core.config import Config  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.limits import Limits  # noqa: E402
from core.sweep import SweepRun, SweepSpec, train_cell  # noqa: E402
from core.sweep_cli import local_cluster  # noqa: E402
from core.warm import warm_kernels  # noqa: E402

TARGET_SPEEDUP, TARGET_OVERHEAD = 1.8, 1.1


def spec(steps: int, seed: int) -> SweepSpec:
    base = Config(dataset="digits", activation="tanh", iterations=steps, optimizer="gd", lr=0.05, batch_size=128,
                  seed=seed)
    return SweepSpec(base, tuple(np.linspace(1.0, 3.0, 6)), (6, 12), 32, 0.05)


def plain_loop(grid: SweepSpec, dataset) -> float:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        for row, column in grid.cells():
            train_cell(grid.cell_config(row, column), dataset, Limits(), cache)
        return time.perf_counter() - started


def on_cluster(client, grid: SweepSpec, dataset) -> float:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        sweep = SweepRun(grid, dataset, client, Path(cache))
        sweep.submit(sweep.find_cached())
        for _ in sweep.completed():
            pass
        return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    from distributed import Client

    dataset = load_dataset("digits")
    clusters = {n: local_cluster(n) for n in (1, 2)}
    clients = {n: Client(c) for n, c in clusters.items()}
    try:
        warm = SweepSpec(spec(2, 0).base, (1.0,), (2,), 8, 0.05)
        for client in clients.values():
            client.run(warm_kernels)
            on_cluster(client, warm, dataset)
        plain_loop(warm, dataset)
        times: dict[str, list[float]] = {"plain loop": [], "1 worker": [], "2 workers": []}
        for repeat in range(args.repeats):
            grid = spec(args.steps, seed=100 + repeat)  # new configs: nothing cached anywhere
            times["plain loop"].append(plain_loop(grid, dataset))
            times["1 worker"].append(on_cluster(clients[1], grid, dataset))
            times["2 workers"].append(on_cluster(clients[2], grid, dataset))
    finally:
        for client in clients.values():
            client.close()
        for cluster in clusters.values():
            cluster.close()
    cells = len(list(spec(1, 0).cells()))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{cells} cells of digits, width 32, depths 6 and 12, {args.steps} steps; {args.repeats} repeats; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, seconds in median.items():
        print(f"  {name:>10}: {cells / seconds:6.2f} cells/s  ({seconds:.1f} s; all: "
              + ", ".join(f"{t:.1f}" for t in times[name]) + ")")
    speedup, overhead = median["1 worker"] / median["2 workers"], median["1 worker"] / median["plain loop"]
    print(f"  2 workers vs 1: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    print(f"  1 worker vs plain loop, time per cell: {overhead:.2f}x (target <= {TARGET_OVERHEAD}x)")


if __name__ == "__main__":
    main()
