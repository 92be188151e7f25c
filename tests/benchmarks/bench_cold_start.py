"""The CLI's 10-step seed run with an empty compiled-kernel cache (a fresh install) and with a filled one.

Runs `python -m core train ... --iterations 10 --json` in turns, cold (NUMBA_CACHE_DIR a new empty folder) and warm
(the same folder again), and prints the run's own `seconds`, the command's wall time and its CPU seconds, side by
side, medians over the repeats. The CLI compiles or loads its kernels before it starts the clock of its `seconds`, so
that figure differs little. Then the time `core.warm.warm_kernels` takes with an empty cache: what a server's start
or the image's build pays. The figure to compare is the last: numba's compile events in a cold run
(`numba:compile`, timed by the compiling thread's CPU clock, outermost events only: a kernel's callees compile inside
it; target: at most 2 CPU-s), which leave out the interpreter's start, the data's loading and the training, and so
vary least with the machine's load: at load 10 the cold and warm commands' CPU difference moved by 0.5 CPU-s from one
median of 3 to the next. BLAS runs one thread unless --threads says otherwise: OpenBLAS's idle workers spin and bill
the command several CPU-s more on a busy machine.
With --baseline, another checkout of the repository (an older commit: `git archive <commit> | tar -x -C DIR`) is
measured in the same turns, so that a change's before and after meet the same load.

    python tests/benchmarks/bench_cold_start.py [--data-dir ../shared/data] [--repeats 3] [--dtype float64]
                                                [--threads 1] [--baseline DIR]
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


def environment(tree: Path, cache: str, threads: int) -> dict[str, str]:
    return {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def timed(argv: list[str], env: dict[str, str], tree: Path) -> tuple[float, float, float]:
    """(the run's own seconds, the command's wall seconds, its CPU seconds) of the code in ``tree``."""
    started, cpu = time.perf_counter(), cpu_of_children()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tree, check=True)
    return json.loads(done.stdout)["seconds"], time.perf_counter() - started, cpu_of_children() - cpu


# Runs the CLI in this interpreter and prints the CPU seconds of numba's outermost compile events, by kernel.
COMPILE_EVENTS = """
import io, json, sys, time
from numba.core import event

class Compiles(event.Listener):
    def __init__(self):
        self.started, self.by_kernel = [], {}

    def on_start(self, ev):
        self.started.append(time.thread_time())

    def on_end(self, ev):
        spent = time.thread_time() - self.started.pop()
        if not self.started:
            name = ev.data["dispatcher"].py_func.__name__
            self.by_kernel[name] = self.by_kernel.get(name, 0.0) + spent

compiles = Compiles()
event.register("numba:compile", compiles)
from core.cli import main
main(sys.argv[1:], out=io.StringIO())
print(json.dumps(compiles.by_kernel))
"""


def compile_events(argv: list[str], env: dict[str, str], tree: Path) -> dict[str, float]:
    """CPU seconds of each kernel's compilation in the run of ``argv`` (the CLI's arguments after `-m core`)."""
    done = subprocess.run([sys.executable, "-c", COMPILE_EVENTS, *argv], capture_output=True, text=True, env=env,
                          cwd=tree, check=True)
    return json.loads(done.stdout)


def warm_kernels_seconds(tree: Path, env: dict[str, str]) -> float:
    warm_up = [sys.executable, "-c", "from core.warm import warm_kernels; print(warm_kernels())"]
    return float(subprocess.run(warm_up, capture_output=True, text=True, env=env, cwd=tree, check=True).stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads of the runs (default 1, see above)")
    p.add_argument("--baseline", type=Path, help="another checkout to measure in the same turns (before a change)")
    args = p.parse_args()
    argv = seed_run(str(Path(args.data_dir).resolve()), args.dtype)  # each tree runs in its own folder
    trees = {"this tree": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    cold = {name: [] for name in trees}
    warm = {name: [] for name in trees}
    events = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="initlab-numba-") as root:
        for i in range(args.repeats):  # in turns, so that load from elsewhere hits every case alike
            for name, tree in trees.items():
                env = environment(tree, str(Path(root) / f"{name}{i}"), args.threads)
                cold[name].append(timed(argv, env, tree))
                warm[name].append(timed(argv, env, tree))
                events[name].append(compile_events(argv[3:], environment(tree, str(Path(root) / f"{name}-events{i}"),
                                                                         args.threads), tree))
        every_signature = {
            name: warm_kernels_seconds(tree, environment(tree, str(Path(root) / f"{name}-kernels"), args.threads))
            for name, tree in trees.items()}
    print(f"CLI seed run, 10 steps, {args.dtype}, {args.threads} BLAS thread(s), median of {args.repeats} "
          f"(load average {os.getloadavg()[0]:.1f})")
    compiling = {}
    for name in trees:
        median = [statistics.median(x) for x in zip(*cold[name])], [statistics.median(x) for x in zip(*warm[name])]
        print(f"{name + ':':24s} {'cold cache':>11s} {'warm cache':>11s} {'difference':>11s}")
        for k, what in enumerate(("run's own seconds", "command's wall seconds", "command's CPU seconds")):
            print(f"  {what:22s} {median[0][k]:10.2f}s {median[1][k]:10.2f}s {median[0][k] - median[1][k]:10.2f}s")
        print(f"  warm_kernels() with an empty cache, every signature: {every_signature[name]:.2f} s")
        kernels = {kernel: statistics.median(run.get(kernel, 0.0) for run in events[name])
                   for kernel in {kernel for run in events[name] for kernel in run}}
        compiling[name] = statistics.median(sum(run.values()) for run in events[name])
        print(f"  compiling the first run (numba's compile events): {compiling[name]:.2f} CPU-s (target <= 2 s): "
              + ", ".join(f"{kernel} {seconds:.2f}" for kernel, seconds in sorted(kernels.items())))
    if args.baseline:
        print(f"compiling the first run, baseline -> this tree: {compiling['baseline']:.2f} -> "
              f"{compiling['this tree']:.2f} CPU-s ({compiling['this tree'] / compiling['baseline']:.2f}x)")


if __name__ == "__main__":
    main()
