"""Convert the UCI handwritten digits into ``data/digits.h5`` (run once; the result is committed).

Source: "Optical Recognition of Handwritten Digits" (E. Alpaydin & C. Kaynak, 1998), UCI Machine Learning
Repository, dataset 80 (https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits),
licensed CC BY 4.0. We use the 1797-image 8 x 8 version that scikit-learn carries as
``sklearn.datasets.load_digits`` (the UCI test part), pixel values 0..16.

scikit-learn is needed only to run this script, not by Init Lab::

    pip install scikit-learn
    python data/make_digits.py              # writes data/digits.h5

The split is a seeded, stratified 1437 / 360 train / test split (largest-remainder allocation of 360 test images
over the ten classes, each class shuffled with ``RandomState(SEED)``), and both splits are shuffled. The file uses
the course layout: ``train_set_x`` (1437, 8, 8) uint8 in 0..16, ``train_set_y`` (1437,) int64, ``test_set_x``,
``test_set_y``, ``list_classes`` [b'0', ..., b'9'], and the root attribute ``pixel_max`` = 16 that tells the
loader to divide by 16 instead of 255.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SEED = 1797
N_TEST = 360


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class gives its share of n_test (largest remainder), chosen at random."""
    rs = np.random.RandomState(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n_test / len(y)
    take = np.floor(exact).astype(int)
    short = n_test - take.sum()
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    train, test = [], []
    for cls, k in zip(classes, take):
        idx = np.flatnonzero(y == cls)
        rs.shuffle(idx)
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    rs.shuffle(train_idx)
    rs.shuffle(test_idx)
    return train_idx, test_idx


def main() -> None:
    from sklearn.datasets import load_digits  # conversion-time dependency only
    import h5py

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "digits.h5")
    args = parser.parse_args()

    digits = load_digits()
    images = digits.images
    if not (np.all(images == np.round(images)) and images.min() >= 0 and images.max() <= 16):
        raise SystemExit("unexpected pixel values: expected integers 0..16")
    x = images.astype(np.uint8)
    y = digits.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, N_TEST, SEED)

    with h5py.File(args.out, "w") as f:
        f.create_dataset("train_set_x", data=x[train_idx], compression="gzip", compression_opts=9)
        f.create_dataset("train_set_y", data=y[train_idx])
        f.create_dataset("test_set_x", data=x[test_idx], compression="gzip", compression_opts=9)
        f.create_dataset("test_set_y", data=y[test_idx])
        f.create_dataset("list_classes", data=np.array([str(d).encode() for d in range(10)]))
        f.attrs["pixel_max"] = 16
        f.attrs["description"] = (
            "UCI optical-recognition handwritten digits (Alpaydin & Kaynak 1998), 8x8, values 0..16, "
            "as carried by scikit-learn; seeded stratified 1437/360 split by data/make_digits.py."
        )
        f.attrs["licence"] = "CC BY 4.0; UCI Machine Learning Repository dataset 80 (Alpaydin & Kaynak)"
    print(f"wrote {args.out}: train {len(train_idx)}, test {len(test_idx)}, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
