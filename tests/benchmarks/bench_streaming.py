"""A run streamed to the dashboard against the same run from the CLI (the issue's target: at most 1.3x).

"CLI": iterate `Training` to its end, as `python -m core train` does. "dashboard": the page's path without the
browser — the shared RunStore's worker thread trains and records the run while this thread redraws the
Training tab's figures from the snapshots so far when new ones arrived, as the page's two timers do: the loss and
accuracy curves checked 5 times a second (`runs.progress_figures`), the per-layer figures once a second
(`runs.layer_figures`, with the at-init prediction the page overlays), until the run ends. Taken in turns; the
ratio is dashboard / CLI. Also printed: what one call of each costs on the whole run (the target is at most 15 ms
together, so the redraws leave the cores to the training).

    python tests/benchmarks/bench_streaming.py [--data-dir ../shared/data] [--repeats 3] [--iterations 500]
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from _bench import blas_threads, interleaved, parser, print_header, print_table, set_threads
from app.presets import presets
from app.charts.training import layer_figures, progress_figures
from app.serving.store import RunStore
from core.data import load_dataset
from core.limits import Limits
from core.theory import predict_for
from core.train import Training

REDRAW_SECONDS = 0.2  # app.tabs.training.LIVE_SECONDS
LAYER_EVERY = 5  # app.tabs.training.LAYER_SECONDS / LIVE_SECONDS


def figure_seconds(training: Training, predicted, calls: int = 30) -> tuple[float, float]:
    """Median seconds of one progress_figures and one layer_figures call on the snapshots of a whole run."""
    snapshots = list(training)
    times = {False: [], True: []}
    for _ in range(calls + 1):  # the first call is a warm-up
        for layers in times:
            start = time.perf_counter()
            (layer_figures(snapshots, training.network, (), training.dataset, predicted_a_std=predicted) if layers
             else progress_figures(snapshots))
            times[layers].append(time.perf_counter() - start)
    return float(np.median(times[False][1:])), float(np.median(times[True][1:]))


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
        ticks, drawn = 0, [0, 0]
        while not run.done:
            tick = time.perf_counter()
            for layers, seen in enumerate(drawn):  # a timer rebuilds its figures only when a snapshot arrived
                now = len(run.snapshots)
                if now > seen and (not layers or ticks % LAYER_EVERY == 0):
                    drawn[layers] = now
                    (layer_figures(run.snapshots[:now], run.network, run.step_params, dataset,
                                   predicted_a_std=predicted) if layers else progress_figures(run.snapshots[:now]))
            ticks += 1
            time.sleep(max(0.0, REDRAW_SECONDS - (time.perf_counter() - tick)))
        redraws.append(ticks)

    print_header(f"seed question on {config.dataset}, {args.iterations} iterations, record every "
                 f"{config.record_every}; BLAS threads {blas_threads()[0]}")
    progress_s, layers_s = figure_seconds(Training(config, dataset, limits), predicted)
    print(f"figures of the whole run: progress {progress_s * 1e3:.1f} ms, per layer {layers_s * 1e3:.1f} ms per call "
          "(target <= 15 ms together)")
    timing = interleaved({"dashboard": dashboard, "cli": cli}, args.repeats, args.warmup, args.burst)
    print_table([("streamed run with the page's redraws (s x 1000)", timing["dashboard"][0], timing["cli"][0],
                  "CLI run")],
                timing)
    print(f"redraws per run: {redraws[-1]} (target ratio <= 1.3)")


if __name__ == "__main__":
    main()
