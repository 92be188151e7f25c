"""The seed run's training time as a user measures it: `python -m core train --json` (its `seconds` over 400 GD steps
of [12288, 20, 7, 5, 1] relu on the 209 cat images, full batch) against the same training in PyTorch, each in its
own process with the same thread count (OPENBLAS_NUM_THREADS and OMP_NUM_THREADS for both, torch.set_num_threads).

Both clocks start after their kernels are loaded: the CLI's after `core.warm.warm_for`, PyTorch's after one untimed
step. Processes run in turns (Init Lab, PyTorch, Init Lab recording every step, Init Lab, ...), so load from elsewhere
hits all alike; the table gives medians and their ratios for each dtype and thread count: Init Lab / PyTorch (target
<= 0.8), and the same run with `--record-every 1` (statistics, histograms and a snapshot at every step, test accuracy
on its own cadence) / the run at its default, a snapshot every 100 steps (target <= 1.10).

    python tests/benchmarks/bench_cli_vs_pytorch.py [--data-dir ../shared/data] [--repeats 5] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import REPO, blas_threads
from bench_cold_start import seed_run
from bench_train_step import torch_step

STEPS = 400


def pytorch_seconds(data_dir: str, dtype: str, threads: int) -> float:
    """The seed run in PyTorch (bench_train_step's: nn.Sequential of Linear/ReLU, BCEWithLogitsLoss, SGD): seconds
    of STEPS steps after one untimed step."""
    import torch

    from core.data import load_dataset

    torch.set_num_threads(threads)
    try:
        data = load_dataset("catvnoncat", data_dir)
    except Exception:  # noqa: BLE001 - any missing or unreadable file: the stand-in, as seed_run does
        data = load_dataset("shapes64")
    step = torch_step(torch, data, dtype)
    step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return time.perf_counter() - start


def environment(threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def init_lab(data_dir: str, dtype: str, threads: int, record_every: int = 100) -> float:
    argv = [*seed_run(data_dir, dtype), "--record-every", str(record_every)]
    argv[argv.index("--iterations") + 1] = str(STEPS)
    done = subprocess.run(argv, capture_output=True, text=True, env=environment(threads), cwd=REPO, check=True)
    return json.loads(done.stdout)["seconds"]


def pytorch(data_dir: str, dtype: str, threads: int) -> float:
    argv = [sys.executable, __file__, "--pytorch-run", dtype, str(threads), "--data-dir", data_dir]
    done = subprocess.run(argv, capture_output=True, text=True, env=environment(threads), cwd=REPO, check=True)
    return float(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    p.add_argument("--pytorch-run", nargs=2, metavar=("DTYPE", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pytorch_run:
        print(pytorch_seconds(args.data_dir, args.pytorch_run[0], int(args.pytorch_run[1])))
        return
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    print(f"seed run, {STEPS} GD steps, median of {args.repeats} in turns; NumPy's BLAS: {blas_threads()[1]}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'dtype':8s} {'threads':>7s} {'Init Lab s':>11s} {'PyTorch s':>10s} {'ratio':>6s} {'recording s':>12s} "
          f"{'ratio':>6s}  (targets <= 0.8, <= 1.10)")
    for dtype in dtypes:
        for threads in args.threads:
            ours, theirs, recording = [], [], []
            for _ in range(args.repeats):
                ours.append(init_lab(args.data_dir, dtype, threads))
                theirs.append(pytorch(args.data_dir, dtype, threads))
                recording.append(init_lab(args.data_dir, dtype, threads, record_every=1))
            a, b, r = statistics.median(ours), statistics.median(theirs), statistics.median(recording)
            print(f"{dtype:8s} {threads:7d} {a:11.3f} {b:10.3f} {a / b:6.3f} {r:12.3f} {r / a:6.3f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
