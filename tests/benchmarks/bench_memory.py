"""Peak memory of the seed run: the course's network trained on the cat data, float64 and float32.

Prints the peak resident set size above a baseline taken after the compiled kernels were loaded (numba's LLVM
alone is ~60 MiB), next to the size of the input, so "no more than two copies of the input" can be read off.

    python tests/benchmarks/bench_memory.py [--data-dir ../shared/data] [--dtype float64]
"""

from __future__ import annotations

import argparse
import resource

import numpy as np

from _bench import REPO
from core.config import Config
from core.data import Dataset, load_dataset
from core.train import Training


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")  # one per process: peaks only grow
    args = p.parse_args()
    rng = np.random.default_rng(0)
    toy = Dataset(name="toy", x_train=rng.normal(size=(4, 9)), y_train=rng.integers(0, 2, (1, 9)),
                  x_test=rng.normal(size=(4, 3)), y_test=rng.integers(0, 2, (1, 3)), classes=("0", "1"))
    list(Training(Config(layers=(3,), iterations=2, record_every=1, dtype=args.dtype), toy))  # load the kernels
    base = peak_mib()
    try:
        dataset = load_dataset("catvnoncat", args.data_dir)
    except Exception:  # noqa: BLE001 - no course files: the shipped stand-in of the same shape
        dataset = load_dataset("shapes64")
    loaded = peak_mib() - base
    config = Config(layers=(20, 7, 5), init="course_sqrt", rng="legacy", seed=1, lr=0.0075, iterations=100,
                    record_every=10, dtype=args.dtype)
    list(Training(config, dataset))
    inputs = (dataset.x_train.nbytes + dataset.x_test.nbytes) / 2**20
    total = peak_mib() - base
    print(f"seed run ({dataset.name}, {args.dtype}): inputs {inputs:.1f} MiB as float64; peak RSS above the "
          f"kernels {total:.1f} MiB (loading {loaded:.1f}) = {total / inputs:.2f} x the inputs; "
          f"process peak {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
