"""``python -m core sweep``: a trainability sweep (core/sweep.py) from the shell, on a Dask cluster.

Without ``--scheduler`` (or $INITLAB_DASK_SCHEDULER) the sweep starts its own `LocalCluster` of ``--workers``
processes, one thread each, stopped when it ends: from a plain script a process-based LocalCluster starts in under a
second and goes away with its `with` block (the dashboard, where it cannot start, runs `dask` subprocesses instead:
app/serving/cluster.py). Its workers get glibc's allocator thresholds back (see MALLOC_SETTINGS). Progress goes to
stderr, one line per cell; the grid (a table, or ``--json``) to stdout; the sweep file to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

from .config import OPTIMIZERS, Config, ConfigError
from .data import default_data_dir, load_dataset
from .limits import Limits
from .sweep import SweepLimits, SweepRun, SweepSpec, boundary_depths, critical_sigma_w2, parse_axis, \
    trainable_depths
from .sweep_file import SweepResults, write_sweep

SCHEDULER_ENV = "INITLAB_DASK_SCHEDULER"
CONNECT_SECONDS = 10.0
# Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which also turns off glibc's adaptive mmap threshold: every array of a
# step over 128 KB would be mapped and zero-filled anew (15-30% more CPU per step; app/serving/worker_setup.py
# measured it). Setting both thresholds in the environment it spawns workers with gives them back.
MALLOC_SETTINGS = {"MALLOC_TRIM_THRESHOLD_": str(128 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "initlab" / "sweep-cells"


def add_sweep_parser(sub) -> None:
    d = Config()
    p = sub.add_parser("sweep", help="train a grid of (sigma_w^2, depth) networks on Dask: where does depth train?")
    p.add_argument("--dataset", default="digits", help="a dataset name, as for train (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder of the course's files (default: $INITLAB_DATA_DIR)")
    p.add_argument("--activation", default="tanh", help="one activation for every hidden layer")
    p.add_argument("--sigma-w2", default="1:4:16", help="START:STOP:COUNT, a list a,b,c, or one value: n_in Var(W), "
                   "as LeCun normal times a gain of sqrt(sigma_w^2) (default %(default)s)")
    p.add_argument("--depth", default="5:60:12", help="hidden layers: START:STOP:COUNT or a list (default %(default)s)")
    p.add_argument("--width", type=int, default=128, help="units per hidden layer (default %(default)s)")
    p.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance: biases N(0, sigma_b^2)")
    p.add_argument("--steps", type=int, default=300, help="training steps per cell (default %(default)s)")
    p.add_argument("--optimizer", default="sgd", help="sgd (plain gradient descent, stochastic with --batch-size), "
                   "momentum or adam")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128, help="0: full batch (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--dtype", default=d.dtype, help="float64 or float32")
    p.add_argument("--out", default="sweep.h5", metavar="PATH", help="the sweep file (default %(default)s)")
    p.add_argument("--cache", default=None, metavar="DIR", help="cells trained before are read from here, not "
                   "trained again (default ~/.cache/initlab/sweep-cells); with --scheduler, a folder the workers "
                   "share")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="an existing Dask scheduler "
                   f"(default ${SCHEDULER_ENV}; unset: a local cluster)")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the local cluster (default: cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    optimizer = "gd" if args.optimizer == "sgd" else args.optimizer
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {args.optimizer[:40]!r} is not known; choose sgd, momentum or adam")
    if args.width < 1:
        raise ConfigError(f"--width must be at least 1, got {args.width}")
    base = Config(dataset=args.dataset, activation=args.activation, optimizer=optimizer, lr=args.lr,
                  iterations=args.steps, batch_size=args.batch_size, seed=args.seed, dtype=args.dtype)
    return SweepSpec(base, parse_axis(args.sigma_w2, "--sigma-w2"), parse_axis(args.depth, "--depth", whole=True),
                     args.width, args.sigma_b2)


def connect(args: argparse.Namespace):
    """A Dask client and what to close after (the local cluster, if this command started one)."""
    from distributed import Client

    address = args.scheduler or os.environ.get(SCHEDULER_ENV, "").strip()
    if address:
        try:
            return Client(address, timeout=CONNECT_SECONDS), None
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {address[:100]} ({type(e).__name__}); check "
                              "--scheduler and that the scheduler runs") from None
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    cluster = local_cluster(workers)
    return Client(cluster), cluster


def local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes, one thread each, on loopback, allocator thresholds restored."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {
            **dask.config.get("distributed.nanny.pre-spawn-environ"), **MALLOC_SETTINGS}}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1", silence_logs=logging.ERROR)
    return cluster


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}" if minutes >= 60 else f"{minutes:02d}:{s:02d}"


def progress_line(sweep: SweepRun, done: int, row: int, column: int, figures: dict) -> str:
    spec = sweep.spec
    what = "diverged" if figures["diverged"] else (f"train {figures['train_accuracy']:.3f}  "
                                                  f"test {figures['test_accuracy']:.3f}  loss {figures['loss']:.3g}")
    return (f"[{done}/{sweep.total}] sigma_w2={spec.sigma_w2[column]:.3g} depth={spec.depths[row]}: "
            f"{what}  elapsed {clock(time.monotonic() - sweep.started)}  ETA {clock(sweep.eta())}")


def run_sweep(args: argparse.Namespace, out=sys.stdout, err=sys.stderr) -> None:
    from .cli import check_out

    spec = spec_from_args(args)
    check_out(args.out)
    dataset = load_dataset(args.dataset, args.data_dir if args.data_dir is not None else default_data_dir())
    limits = Limits.from_env()
    spec.check(dataset, limits, SweepLimits.from_env())
    sweep = SweepRun(spec, dataset, None, Path(args.cache) if args.cache else default_cache(), limits)
    missing = sweep.find_cached()
    client, cluster = connect(args) if missing else (None, None)
    try:
        sweep.client = client
        sweep.submit(missing)
        try:
            for done, (row, column, figures) in enumerate(sweep.completed(), start=1):
                print(progress_line(sweep, done, row, column, figures), file=err, flush=True)
        except KeyboardInterrupt:
            sweep.cancel()
            print(f"stopped: the {len(sweep.results)} cells done of {sweep.total} go to {args.out}", file=err)
        results = SweepResults(spec, dataset.name, dataset.fingerprint(), dataset.output_size
                               if dataset.output_size > 1 else 2, sweep.results)
        write_sweep(args.out, results)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    report(results, args, out)


def report(sweep: SweepResults, args, out) -> None:
    spec = sweep.spec
    boundary = boundary_depths(spec, sweep.results, sweep.classes)
    theory = trainable_depths(spec.base.activation, spec.sigma_w2, spec.sigma_b2)
    critical = critical_sigma_w2(spec.base.activation, spec.sigma_b2)
    if args.json:
        cells = [{"sigma_w2": spec.sigma_w2[c], "depth": spec.depths[r], **{k: _finite(v) if isinstance(v, float) else v
                  for k, v in f.items() if k not in ("steps", "losses", "message")}} for (r, c), f in sorted(sweep.results.items())]
        print(json.dumps({"sigma_w2": list(spec.sigma_w2), "depths": list(spec.depths), "cells": cells,
                          "boundary_depth": [_finite(b) for b in boundary],
                          "six_xi_c": [_finite(t) for t in theory], "critical_sigma_w2": critical,
                          "out": args.out}, allow_nan=False, default=str), file=out)
        return
    print("train accuracy (x: diverged), depth down, sigma_w^2 across", file=out)
    print(f"{'depth':>6} " + " ".join(f"{s:>5.2f}" for s in spec.sigma_w2), file=out)
    for row, depth in enumerate(spec.depths):
        cells = [sweep.results.get((row, column)) for column in range(len(spec.sigma_w2))]
        print(f"{depth:>6} " + " ".join("    ." if c is None else "    x" if c["diverged"] else
                                         f"{c['train_accuracy']:>5.2f}" for c in cells), file=out)
    print(f"{'trained':>6} " + " ".join(f"{b:>5.0f}" if math.isfinite(b) else "    -" for b in boundary), file=out)
    print(f"{'6 xi_c':>6} " + " ".join(f"{t:>5.0f}" if math.isfinite(t) else "  inf" for t in theory), file=out)
    where = f"{critical:.3g}" if critical is not None else "none in range"
    print(f"chi_1 = 1 at sigma_w^2 = {where}; sweep file: {args.out}", file=out)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
