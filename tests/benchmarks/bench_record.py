"""Size and cost of recording: the course network [12288, 20, 7, 5, 1] for 2,500 steps, recorded every step with
64-bin histograms. Trains once without and once with recording, side by side, and prints the file size and the
time ratio (targets: under 30 MB, under 10% extra time).

    python tests/benchmarks/bench_record.py [--iterations N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.config import Config  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.record import RunRecorder  # noqa: E402
from core.run_reader import read_run  # noqa: E402
from core.train import Training  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
MAX_MB, MAX_OVERHEAD = 30.0, 0.10


def lockstep(plain, recorded) -> tuple[float, float]:
    """Seconds spent in each stream, advancing them one snapshot each in turn: load from other processes on a
    shared machine then slows both alike, so their ratio stays meaningful. Which goes first alternates (the
    second of a pair finds warmer caches). Both streams yield the same steps."""
    spent = [0.0, 0.0]
    streams = [iter(plain), iter(recorded)]
    done = False
    for turn in itertools.count():
        for i in (0, 1) if turn % 2 == 0 else (1, 0):
            start = time.perf_counter()
            done = next(streams[i], None) is None  # the recorded stream finishes its file on its last call
            spent[i] += time.perf_counter() - start
        if done:
            break
    return spent[0], spent[1]


def recorded_stream(training: Training, path: Path, own: list[float]):
    """What core.record.record does, with the recorder's own time (create, add + flushes, finish) summed in own[0]."""
    start = time.perf_counter()
    with RunRecorder(path, training) as recorder:
        own[0] += time.perf_counter() - start
        for snapshot in training:
            start = time.perf_counter()
            recorder.add(snapshot)
            own[0] += time.perf_counter() - start
            yield snapshot
        start = time.perf_counter()
        recorder.finish()
        own[0] += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2500)
    iterations = parser.parse_args().iterations
    threadpool_limits(limits=1, user_api="blas")  # the machine is shared: BLAS threads spinning against other load only add noise
    name = "catvnoncat" if (SHARED_DATA / "train_catvnoncat.h5").exists() else "shapes64"
    dataset = load_dataset(name, SHARED_DATA if name == "catvnoncat" else None)
    config = Config(dataset=name, layers=(20, 7, 5), init="he_normal", rng="legacy", lr=0.0075,
                    iterations=iterations, record_every=1, bins=64)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.h5"
        own = [0.0]
        plain, recorded = lockstep(Training(config, dataset), recorded_stream(Training(config, dataset), path, own))
        size_mb = path.stat().st_size / 2**20
        rows = len(read_run(path).snapshots)
    overhead = recorded / plain - 1.0
    print(f"{name} [12288, 20, 7, 5, 1], {iterations} steps recorded every step ({rows} rows), 64 bins")
    print(f"training alone    {plain:8.2f} s")
    print(f"with recording    {recorded:8.2f} s   ratio {recorded / plain:.3f} "
          f"(overhead {overhead:+.1%}, target < {MAX_OVERHEAD:.0%})")
    print(f"recorder's own    {own[0]:8.2f} s   {own[0] / (recorded - own[0]):.1%} of the recorded run's training")
    print(f"file size         {size_mb:8.2f} MB  (target < {MAX_MB:.0f} MB)")
    print("PASS" if size_mb < MAX_MB and overhead < MAX_OVERHEAD else "FAIL")


if __name__ == "__main__":
    main()
