"""What a sandboxed parse (core.sandbox) costs, before and after a change, side by side in one run.

Each version of the code runs in a worker process of its own (the baseline exported from git into a temporary
folder), and the workers take turns: each times one parse of a case, then the other, and so on, so load from
elsewhere hits both alike. Cases: the course's two cat files (/work/shared/data, 2.5 MB and 0.6 MB, read together
as the course ships them) by path and as uploaded bytes, and a small run file (a recorded 200-step run of a small
network) by path and replayed from a run cache (which the baseline also opened in-process to verify it). "cold" is
a worker's first parse (whatever that starts: an interpreter, or a zygote and a child); CPU is the worker's and its
descendants', per warm parse (counted in the kernel's clock ticks of 10 ms).

    python tests/benchmarks/bench_parse.py [--baseline f6e7684] [--repeats 15] [--cold 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
BASELINE = "f6e7684"  # issue 14a's sandbox: a fresh interpreter per parse
SMALL_RUN_FIELDS = dict(dataset="circles", layers=(8, 4), iterations=200, record_every=10)


def _descendants_cpu() -> float:
    """CPU seconds of this process, its reaped children and every live descendant with what it reaped."""
    own = os.times()
    total = own.user + own.system + own.children_user + own.children_system
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, list[int]] = {}
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(name))
            stats[int(name)] = fields
    todo = list(parents.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        f = stats[pid]
        total += sum(int(v) for v in f[11:15]) / tick  # utime, stime, cutime, cstime
        todo += parents.get(pid, [])
    return total


def worker(root: str) -> None:
    """Time parses on request: one case name a line on stdin, milliseconds (and CPU seconds) a line on stdout."""
    sys.path.insert(0, root)
    try:
        from app.serving.cache import RunCache
        from core.data import load_course_h5, load_dataset, load_uploaded_h5
    except ImportError:  # the baseline version, from before the cache and the datasets moved
        from core.cache import RunCache
        from core.datasets import load_course_h5, load_dataset, load_uploaded_h5
    from core.config import Config
    from core.run_reader import read_run

    small_run, circles = Config(**SMALL_RUN_FIELDS), load_dataset("circles")
    cache_folder = tempfile.TemporaryDirectory()
    cache = RunCache(cache_folder.name)

    def cache_hit():
        for _ in cache.compute(small_run, circles):  # the first time (warm-up) trained and stored, by this
            pass  # version's own code; then replayed: verified and read back

    train, test = (str(SHARED_DATA / f"{split}_catvnoncat.h5") for split in ("train", "test"))
    uploads = {"data": Path(train).read_bytes(), "test_data": Path(test).read_bytes()}
    cases = {  # the two cat files are read in one parse, as the course ships them
        "cat files": lambda: load_course_h5(train, test, name="catvnoncat"),
        "cat uploads": lambda: load_uploaded_h5(name="cat.h5", **uploads),
        "small run file": lambda: read_run(os.environ["BENCH_RUN_FILE"]),
        "cache hit": cache_hit,
    }
    for line in sys.stdin:
        case = line.strip()
        cpu = _descendants_cpu()
        start = time.perf_counter()
        cases[case]()
        wall = time.perf_counter() - start
        time.sleep(0.05)  # the child exits and is reaped: its CPU is then counted
        print(json.dumps([wall, _descendants_cpu() - cpu]), flush=True)
    cache_folder.cleanup()


class Worker:
    def __init__(self, root: str, env: dict):
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", root], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)

    def time(self, case: str) -> tuple[float, float]:
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        return tuple(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def _small_run_file(folder: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from core.config import Config
    from core.data import load_dataset
    from core.record import record
    from core.train import Training

    path = folder / "run.h5"
    for _ in record(Training(Config(**SMALL_RUN_FIELDS), load_dataset("circles")), path):
        pass
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare with (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=15, help="timed warm parses per case and version")
    p.add_argument("--cold", type=int, default=3, help="fresh workers per version, for the cold first parse")
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)
    if not (SHARED_DATA / "train_catvnoncat.h5").exists():
        sys.exit(f"the course's cat files are not in {SHARED_DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        baseline = tmp / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "core"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        env = dict(os.environ, BENCH_RUN_FILE=str(_small_run_file(tmp)), OPENBLAS_NUM_THREADS="1")
        versions = {f"before ({args.baseline})": str(baseline), "after (this tree)": str(REPO)}
        cases = ["cat files", "cat uploads", "small run file", "cache hit"]

        cold: dict[str, list[float]] = {v: [] for v in versions}
        for _ in range(args.cold):
            for version, root in versions.items():
                w = Worker(root, env)
                cold[version].append(w.time("small run file")[0])
                w.close()

        workers = {version: Worker(root, env) for version, root in versions.items()}
        for w in workers.values():  # warm-up: a zygote started, modules imported, files in the page cache
            for case in cases:
                w.time(case)
        warm = {(v, c): [] for v in versions for c in cases}
        for _ in range(args.repeats):
            for case in cases:
                for version, w in workers.items():
                    warm[version, case].append(w.time(case))
        for w in workers.values():
            w.close()

    before, after = versions
    print(f"{'case':<16} {'before ms':>10} {'after ms':>10} {'ratio':>7}   {'CPU before':>10} {'CPU after':>10}")
    med = lambda xs: float(np.median(xs)) * 1000  # noqa: E731
    print(f"{'cold, run file':<16} {med(cold[before]):10.1f} {med(cold[after]):10.1f} "
          f"{med(cold[before]) / med(cold[after]):6.1f}x")
    for case in cases:
        b, a = np.array(warm[before, case]), np.array(warm[after, case])
        print(f"{case:<16} {med(b[:, 0]):10.1f} {med(a[:, 0]):10.1f} {med(b[:, 0]) / med(a[:, 0]):6.1f}x   "
              f"{med(b[:, 1]):10.1f} {med(a[:, 1]):10.1f}")
    print(f"(medians of {args.repeats} warm parses and {args.cold} cold ones; wall and CPU in ms; load average "
          f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
