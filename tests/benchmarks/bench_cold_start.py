"""The CLI's 10-step seed run with an empty compiled-kernel cache (a fresh install) and with a filled one.

Runs `python -m core train ... --iterations 10 --json` in turns, cold (NUMBA_CACHE_DIR a new empty folder) and warm
(the same folder again), and prints the run's own `seconds` and the command's wall time, side by side, medians over
the repeats, and its CPU seconds (what a busy machine's load changes least); the difference of the CPU seconds is
what compiling costs the first run (target: at most 2 s on a quiet machine). The CLI compiles or loads its kernels
before it starts the clock of its `seconds`, so that figure differs little. Then the
time `core.warm.warm_kernels` takes with an empty cache: what a server's start or the image's build pays.

    python tests/benchmarks/bench_cold_start.py [--data-dir ../shared/data] [--repeats 3] [--dtype float64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import REPO


def seed_run(data_dir: str, dtype: str) -> list[str]:
    dataset = "catvnoncat" if (Path(data_dir) / "train_catvnoncat.h5").exists() else "shapes64"
    return [sys.executable, "-m", "core", "train", "--dataset", dataset, "--data-dir", data_dir, "--layers", "20,7,5",
            "--init", "normal", "--scale", "0.01", "--rng", "legacy", "--seed", "1", "--lr", "0.0075",
            "--iterations", "10", "--dtype", dtype, "--json"]


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cache: str) -> tuple[float, float, float]:
    """(the run's own seconds, the command's wall seconds, its CPU seconds) with numba's cache in ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
    started, cpu = time.perf_counter(), cpu_of_children()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(done.stdout)["seconds"], time.perf_counter() - started, cpu_of_children() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = p.parse_args()
    argv = seed_run(args.data_dir, args.dtype)
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="initlab-numba-") as root:
        for i in range(args.repeats):  # in turns, so that load from elsewhere hits both alike
            cache = str(Path(root) / f"cache{i}")
            cold.append(timed(argv, cache))
            warm.append(timed(argv, cache))
        warm_up = [sys.executable, "-c", "from core.warm import warm_kernels; print(warm_kernels())"]
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(root) / "warm_kernels"), "PYTHONPATH": str(REPO)}
        warm_kernels_seconds = float(subprocess.run(warm_up, capture_output=True, text=True, env=env, cwd=REPO,
                                                    check=True).stdout)
    median = [statistics.median(x) for x in zip(*cold)], [statistics.median(x) for x in zip(*warm)]
    print(f"CLI seed run, 10 steps, {args.dtype}, median of {args.repeats} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'':24s} {'cold cache':>11s} {'warm cache':>11s} {'difference':>11s}")
    for k, what in enumerate(("run's own seconds", "command's wall seconds", "command's CPU seconds")):
        print(f"{what:24s} {median[0][k]:10.2f}s {median[1][k]:10.2f}s {median[0][k] - median[1][k]:10.2f}s")
    print(f"compiling the first run: {median[0][2] - median[1][2]:.2f} CPU-s (target <= 2 s); "
          f"warm_kernels() with an empty cache, every signature: {warm_kernels_seconds:.2f} s")


if __name__ == "__main__":
    main()
