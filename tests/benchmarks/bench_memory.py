"""Peak memory of runs against `estimate_bytes`: the seed run's shape and a wide and a deep network, both dtypes.

Each run is measured in its own fresh interpreter (tests/memory_probe.py): tracemalloc's peak (every array, NumPy's
and numba's) and the growth of the peak resident set size over the run, next to the estimate. The resident set
adds what the allocator and BLAS's buffers take once per process; the ratio estimate / traced is what
tests/test_memory.py holds between 1 and 1.10.

    python tests/benchmarks/bench_memory.py [--iterations 100]
"""

from __future__ import annotations

import argparse

from _bench import REPO  # noqa: F401 - puts the repository on sys.path
from tests.memory_probe import measure

MIB = 2**20
SHAPES = {  # (features, hidden layers, train examples, test examples)
    "seed [12288, 20, 7, 5, 1]": (12288, (20, 7, 5), 209, 50),
    "wide [256, 2048, 1]": (256, (2048,), 2000, 500),
    "deep [64, 128x20, 1]": (64, (128,) * 20, 2000, 500),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=20)
    args = p.parse_args()
    print(f"{'run':28s} {'dtype':8s} {'optimizer':9s} {'batch':>5s} {'estimate':>9s} {'traced':>9s} {'RSS':>9s}"
          f" {'est/traced':>10s} {'RSS-traced':>10s}")
    for label, (features, layers, m_train, m_test) in SHAPES.items():
        for dtype in ("float64", "float32"):
            for optimizer, batch in (("gd", 0), ("adam", 0), ("adam", 64)):
                case = dict(features=features, m_train=m_train, m_test=m_test,
                            config=dict(layers=layers, dtype=dtype, optimizer=optimizer, batch_size=batch,
                                        iterations=args.iterations, record_every=10))
                r = measure([case])[0]  # a process of its own: the resident set's peak is this run's alone
                print(f"{label:28s} {dtype:8s} {optimizer:9s} {batch:5d} {r['estimate'] / MIB:8.1f}M "
                      f"{r['traced'] / MIB:8.1f}M {r['rss'] / MIB:8.1f}M {r['estimate'] / r['traced']:10.3f} "
                      f"{(r['rss'] - r['traced']) / MIB:9.1f}M")


if __name__ == "__main__":
    main()
