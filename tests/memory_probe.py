"""Peak memory of real runs, measured in a fresh interpreter: what tests/test_memory.py and
tests/benchmarks/bench_memory.py hold `core.memory.estimate_bytes` against.

`measure(cases)` runs every case in one child process (`python -I`, so nothing of the caller's is loaded). For each
case the dataset is built first; then tracemalloc's peak over the run (every NumPy array and numba's own arrays:
both allocate through Python's allocator, which tracemalloc traces) and the growth of the peak resident set size
(reset before each run through /proc/self/clear_refs) are read, next to the estimate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(cases: list[dict], timeout: float = 300.0) -> list[dict]:
    """Each case: {"features", "m_train", "m_test", "classes", "config": Config fields}. Returns the cases, each with
    "estimate", "traced" (tracemalloc's peak over the run, bytes) and "rss" (growth of the peak resident set)."""
    # One BLAS thread: memory does not depend on it, and on a busy machine spinning BLAS threads slow runs tenfold.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-I", __file__, json.dumps(cases)], capture_output=True, text=True,
                          timeout=timeout, check=True, env=env)
    return json.loads(done.stdout)


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status: VmRSS (the resident set now), VmHWM (its peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _run_cases(cases: list[dict]) -> list[dict]:
    import gc
    import tracemalloc

    import numpy as np

    from core.config import Config
    from core.data import Dataset
    from core.limits import Limits
    from core.memory import estimate_bytes
    from core.network import Network
    from core.train import Training

    unlimited = Limits(max_params=10**12, max_layers=10**4, max_width=10**6, max_memory_mb=10**9)

    def dataset(case: dict) -> Dataset:
        rng = np.random.default_rng(0)
        n, classes = case["features"], case.get("classes", 2)
        return Dataset(name="probe", x_train=rng.standard_normal((n, case["m_train"])),
                       y_train=rng.integers(0, classes, (1, case["m_train"])),
                       x_test=rng.standard_normal((n, case["m_test"])),
                       y_test=rng.integers(0, classes, (1, case["m_test"])),
                       classes=tuple(str(c) for c in range(classes)))

    warmed = set()
    out = []
    for case in cases:
        config = Config(**case["config"])
        kernels = (config.dtype, config.optimizer, config.activation)  # the exact GELU compiles its erf on first use
        if kernels not in warmed:  # compile or load the kernels first: their memory is the process's, not the run's
            tiny = dict(case, features=3, m_train=7, m_test=3)
            list(Training(config.replace(layers=(2, 2), iterations=1, record_every=1, batch_size=0), dataset(tiny),
                          unlimited))
            warmed.add(kernels)
        data = dataset(case)
        net = Network.from_config(config, data.n_features, data.output_size)
        estimate = estimate_bytes(net, config, case["m_train"], case["m_test"])
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # the peak resident set starts again from here
        rss_before = _status_bytes("VmRSS")
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in Training(config, data, unlimited):
            pass
        traced = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        out.append(dict(case, estimate=estimate, traced=traced, rss=_status_bytes("VmHWM") - rss_before))
        del data
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(json.dumps(_run_cases(json.loads(sys.argv[1]))))
