"""A run streamed to the dashboard against the same run from the CLI (the issue's target: at most 1.3x).

"CLI": iterate `Training` to its end, as `python -m core train` does. "dashboard": the page's path without the
browser — the shared RunStore's worker thread trains and records the run while this thread redraws every
Training-tab figure from the snapshots so far when new ones arrived, checking 4 times a second
(`runs.training_figures`, what a page tick builds), until the run ends. Taken in turns; the ratio is dashboard / CLI.

    python tests/benchmarks/bench_streaming.py [--data-dir ../shared/data] [--repeats 3] [--iterations 500]
"""

from __future__ import annotations

import tempfile
import time

from _bench import blas_threads, interleaved, parser, print_header, print_table
from app.presets import presets
from app.runs import RunStore, training_figures
from core.datasets import load_dataset
from core.limits import Limits
from core.train import Training

REDRAW_SECONDS = 0.25  # app.main.LIVE_SECONDS


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with the course's cat files (else shapes64)")
    p.add_argument("--iterations", type=int, default=500)
    p.set_defaults(repeats=3, warmup=1)
    args = p.parse_args()
    preset = presets(args.data_dir)["seed question"]
    config = preset.config.replace(iterations=args.iterations)
    dataset = load_dataset(config.dataset, args.data_dir)
    limits = Limits.from_env()
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
                training_figures(run.snapshots[:drawn], run.network, run.params, dataset)
            ticks += 1
            time.sleep(max(0.0, REDRAW_SECONDS - (time.perf_counter() - tick)))
        redraws.append(ticks)

    print_header(f"seed question on {config.dataset}, {args.iterations} iterations, record every "
                 f"{config.record_every}; BLAS threads {blas_threads()[0]}")
    timing = interleaved({"dashboard": dashboard, "cli": cli}, args.repeats, args.warmup)
    print_table([("streamed run with 4 redraws/s (s x 1000)", timing["dashboard"][0], timing["cli"][0], "CLI run")],
                timing)
    print(f"redraws per run: {redraws[-1]} (target ratio <= 1.3)")


if __name__ == "__main__":
    main()
