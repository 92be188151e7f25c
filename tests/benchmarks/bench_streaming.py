"""A run streamed to the dashboard against the same run from the CLI (the issue's target: at most 1.3x).

"CLI": iterate `Training` to its end, as `python -m core train` does. "dashboard": the page's path without the
browser — the shared RunStore's worker thread trains and records the run while this thread redraws every
Training-tab figure from the snapshots so far when new ones arrived, checking 4 times a second
(`runs.training_figures` with the at-init prediction the page overlays, what a page tick builds), until the run
ends. Taken in turns; the ratio is dashboard / CLI. Also printed: what one training_figures call costs on the whole
run (the target is at most 15 ms, so four redraws a second leave the cores to the training).

    python tests/benchmarks/bench_streaming.py [--data-dir ../shared/data] [--repeats 3] [--iterations 500]
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from _bench import blas_threads, interleaved, parser, print_header, print_table, set_threads
from app.presets import presets
from app.runs import RunStore, training_figures
from core.datasets import load_dataset
from core.limits import Limits
from core.theory import predict_for
from core.train import Training

REDRAW_SECONDS = 0.25  # app.main.LIVE_SECONDS


def figure_seconds(training: Training, predicted, calls: int = 30) -> float:
    """Median seconds of one training_figures call on the snapshots of a whole run."""
    snapshots = list(training)
    times = []
    for _ in range(calls + 1):  # the first call is a warm-up
        start = time.perf_counter()
        training_figures(snapshots, training.network, None, training.dataset, predicted_a_std=predicted)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with the course's cat files (else shapes64)")
    p.add_argument("--iterations", type=int, default=500)
    p.set_defaults(repeats=3, warmup=1)
    args = p.parse_args()
    set_threads(args.threads)
    preset = presets(args.data_dir)["seed question"]
    config = preset.config.replace(iterations=args.iterations)
    dataset = load_dataset(config.dataset, args.data_dir)
    limits = Limits.from_env()
    predicted = predict_for(config, dataset).a_std  # the page's theory toggle is on by default
    redraws = []

    def cli() -> None:
        list(Training(config, dataset, limits))

    def dashboard() -> None:
        store = RunStore(folder=tempfile.mkdtemp(prefix="bench-stream-"), cache=None)
        run = store.start(config, dataset, "bench", limits)
        ticks, drawn = 0, 0
        while not run.done:
            tick = time.perf_counter()
            if len(run.snapshots) > drawn:  # the page rebuilds its figures only when a snapshot arrived
                drawn = len(run.snapshots)
                training_figures(run.snapshots[:drawn], run.network, run.params, dataset, predicted_a_std=predicted)
            ticks += 1
            time.sleep(max(0.0, REDRAW_SECONDS - (time.perf_counter() - tick)))
        redraws.append(ticks)

    print_header(f"seed question on {config.dataset}, {args.iterations} iterations, record every "
                 f"{config.record_every}; BLAS threads {blas_threads()[0]}")
    print(f"training_figures on the whole run: {figure_seconds(Training(config, dataset, limits), predicted) * 1e3:.1f}"
          " ms per call (target <= 15 ms)")
    timing = interleaved({"dashboard": dashboard, "cli": cli}, args.repeats, args.warmup)
    print_table([("streamed run with 4 redraws/s (s x 1000)", timing["dashboard"][0], timing["cli"][0], "CLI run")],
                timing)
    print(f"redraws per run: {redraws[-1]} (target ratio <= 1.3)")


if __name__ == "__main__":
    main()
