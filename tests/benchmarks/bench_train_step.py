"""Train step of the course's network [12288, 20, 7, 5, 1], relu, full batch of 209, plain gradient descent.

Init Lab without statistics, with every statistic every step, and the whole `Training` stream recording every
step (statistics plus the test-set accuracy on its own cadence, timed past step core.train.TEST_DENSE_UNTIL), against PyTorch (nn.Sequential of Linear/ReLU, BCEWithLogitsLoss,
SGD) and against the floor: the step's own matrix products alone, same shapes, layouts and dtype.

    python tests/benchmarks/bench_train_step.py [--data-dir ../shared/data] [--repeats 15]

Then the recording as a run meets it: two runs of the seed config, one recording every step and one every
RUN_CHUNK-th step, RUN_CHUNK steps at a time in turns (as each runs its steps back to back, not one step between
other contenders' turns), from step TEST_DENSE_UNTIL; the median over the turns of the per-turn ratio.

Uses the course's cat files when --data-dir has them, else the shipped stand-in shapes64 (same shapes).

Measurements behind the statistics kernel's design (core/stats.py), taken with this script on the course's network:
- Counting large arrays in pairs (one increment of a joint (bins + 2)^2 table per pair) took dW^1's histogram (245,760
  values) from 92 to 76 us, about 1% of the step; it was dropped for its compile time (a second loop and table in
  every compiled statistics kernel: about 1 of 7 CPU-s of a fresh install's first run, bench_cold_start.py).
- `scan` counts in eight sets of counters: with four, neighbouring pixels of dW^1 in the same bin still stalled.
- `layer_kernel` is one call per layer: a single call taking a tuple of arrays per network compiled a kernel per depth,
  4 s the first time (tests/test_kernels.py: test_a_new_depth_compiles_nothing).
"""

from __future__ import annotations

import time

import numpy as np

from _bench import (REPO, dtypes, interleaved, matmul_floor, parser, peak_rss_mib, print_header, print_table,
                    set_threads)
from core.config import Config
from core.data import load_dataset
from core.limits import Limits
from core.network import backward, cost, forward, targets
from core.stats import choose_binning, layer_stats
from core.train import TEST_DENSE_UNTIL, TEST_EVERY, Optimizer, Training

LAYERS = (20, 7, 5)
LR = 0.0075


# The recording runs below take as many steps as the turns need and hold none of their snapshots: the cap on what a
# run's snapshots take where they are all held (a server's pages, core/limits.py) does not apply.
UNHELD = Limits(max_record_mb=2**20)


def seed_config(dtype: str, **changes) -> Config:
    return Config(layers=LAYERS, init="course_sqrt", rng="legacy", seed=1, lr=LR, dtype=dtype, **changes)


def init_lab_steps(dataset, dtype: str):
    """The training loop's own calls (as in Training), without and with the per-layer statistics."""
    run = Training(seed_config(dtype), dataset)
    net, params, x, y = run.network, run.params, run.x, run.y
    y_target = targets(net, y, x.dtype)
    optimizer = Optimizer(run.config, params)
    cache = forward(net, params, x)
    binning = choose_binning(net, cache, backward(net, params, cache, y_target), 64)

    def step(with_stats: bool) -> None:
        cache = forward(net, params, x)
        cost(net, cache, y)
        grads = backward(net, params, cache, y_target)
        if with_stats:
            layer_stats(net, params, cache, grads, binning)
        optimizer.step(params, grads)

    recording = Training(seed_config(dtype, iterations=100_000, record_every=1), dataset, UNHELD)
    # The input the steps above multiply, not a second float32 copy of it (each Training casts its own): with its
    # own 10 MB copy the stream found its input out of cache after the other contenders' turns, which cost it
    # ~0.1 ms a step in float32 that a run, with one copy, never pays.
    recording.x, recording.x_test = x, run.x_test
    stream = iter(recording)
    for _ in range(TEST_DENSE_UNTIL + 1):  # timed from where test accuracy takes its own cadence (core/train.py)
        next(stream)
    return (lambda: step(False)), (lambda: step(True)), (lambda: next(stream))


RUN_CHUNK = 50  # steps a run takes in one turn of recording_runs (the other run records once in them)


def recording_runs(dataset, dtype: str, turns: int) -> tuple[float, float, float, float]:
    """Seconds per step of a run recording every step and of one recording every RUN_CHUNK-th, each taking
    RUN_CHUNK steps in a turn (which goes first alternates: the second finds the CPU's caches warmer), and the median
    and interquartile range over the turns of their ratio."""
    every_step = iter(Training(seed_config(dtype, iterations=100_000, record_every=1), dataset, UNHELD))
    seldom = iter(Training(seed_config(dtype, iterations=100_000, record_every=RUN_CHUNK), dataset))
    for _ in range(TEST_DENSE_UNTIL + 1):  # timed from where test accuracy takes its own cadence
        next(every_step)
    next(seldom)
    next(seldom)
    times = {"every": [], "seldom": []}

    def every_chunk() -> None:
        for _ in range(RUN_CHUNK):
            next(every_step)

    for turn in range(turns):
        order = (("every", every_chunk), ("seldom", lambda: next(seldom)))
        for name, advance in order if turn % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            advance()
            times[name].append((time.perf_counter() - start) / RUN_CHUNK)
    ratios = np.array(times["every"]) / np.array(times["seldom"])
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    return float(np.median(times["every"])), float(np.median(times["seldom"])), float(median), float(q3 - q1)


def torch_step(torch, dataset, dtype: str):
    tdtype = getattr(torch, dtype)
    dims = (dataset.n_features, *LAYERS, 1)
    layers = []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(tdtype)
    x = torch.tensor(dataset.x_train.T, dtype=tdtype).contiguous()  # PyTorch's layout: one example per row
    y = torch.tensor(dataset.y_train.T, dtype=tdtype)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def floor_step(dataset, dtype: str):
    """The step's matrix products alone (see `matmul_floor`), on the input in the layout the engine multiplies."""
    rng = np.random.default_rng(0)
    x = dataset.x_train.astype(dtype, copy=False)  # the same memory layout the engine multiplies
    dims = (x.shape[0], *LAYERS, 1)
    w = [rng.standard_normal((n_out, n_in)).astype(dtype) for n_in, n_out in zip(dims[:-1], dims[1:])]
    dz = [rng.standard_normal((n, x.shape[1])).astype(dtype) for n in dims[1:]]
    return matmul_floor(w, x, dz)


def seed_dataset(data_dir: str):
    """The course's cat images from ``data_dir``, else the shipped stand-in shapes64 (same shapes)."""
    try:
        return load_dataset("catvnoncat", data_dir)
    except Exception:  # noqa: BLE001 - any missing or unreadable file: fall back to the stand-in
        return load_dataset("shapes64")


def main() -> None:
    p = parser(__doc__.splitlines()[0], burst=10)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args()
    dataset = seed_dataset(args.data_dir)
    torch = set_threads(args.threads, pytorch=not args.without_pytorch)
    for dtype in dtypes(args.dtype):
        plain, with_stats, stream = init_lab_steps(dataset, dtype)
        cases = {"Init Lab": plain, "Init Lab + stats": with_stats, "Init Lab stream": stream,
                 "floor": floor_step(dataset, dtype)}
        if torch:
            cases["PyTorch"] = torch_step(torch, dataset, dtype)
        t = interleaved(cases, args.repeats, args.warmup, args.burst)
        med = {k: v[0] for k, v in t.items()}
        med.setdefault("PyTorch", None)
        print_header(f"train step [{dataset.n_features}, 20, 7, 5, 1] relu, m={dataset.x_train.shape[1]} "
                     f"({dataset.name}), GD, {dtype}, median of {args.repeats}")
        print_table([
            ("step, no statistics / PyTorch", med["Init Lab"], med["PyTorch"], "PyTorch (target <= 0.8)"),
            ("step, no statistics / matmul floor", med["Init Lab"], med["floor"], "floor (target <= 1.15)"),
            ("step + all statistics / step", med["Init Lab + stats"], med["Init Lab"], "Init Lab (target <= 1.10)"),
            ("step + all statistics / PyTorch", med["Init Lab + stats"], med["PyTorch"], "PyTorch"),
            ("Training stream, snapshot every step / step", med["Init Lab stream"], med["Init Lab"],
             f"Init Lab (target <= 1.10; test accuracy every {TEST_EVERY} steps, from step {TEST_DENSE_UNTIL})"),
            ("Training stream / step + all statistics", med["Init Lab stream"], med["Init Lab + stats"],
             "Init Lab + stats (the recording's own cost)"),
        ], t)
        every, seldom, ratio, spread = recording_runs(dataset, dtype, args.repeats * 2)
        print(f"a run recording every step / one recording every {RUN_CHUNK}th, {RUN_CHUNK} steps each in turns: "
              f"{every * 1e3:.3f} / {seldom * 1e3:.3f} ms, median ratio {ratio:.3f} (IQR {spread:.3f}; target <= 1.10)")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (process, all contenders)")


if __name__ == "__main__":
    main()
