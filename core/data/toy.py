"""Seeded toy data sets: the 2-D sets (``circles`` is bit-for-bit the course's "Initialization" exercise data) and
``gaussian:D``, standard-normal inputs with meaningless labels for forward-only probes."""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

GAUSSIAN_MAX_DIM = 4096
GAUSSIAN_TRAIN, GAUSSIAN_TEST = 1000, 200


def _shuffle(rs: np.random.RandomState, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.utils.shuffle's order: permute an index array with the same RandomState."""
    indices = np.arange(X.shape[0])
    rs.shuffle(indices)
    return X[indices], y[indices]


def make_circles(n_samples: int, noise: float, rs: np.random.RandomState,
                 factor: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """sklearn.datasets.make_circles(n_samples, shuffle=True, noise, factor) re-implemented draw for draw.

    With ``rs = RandomState(1)`` it returns what ``np.random.seed(1); make_circles(...)`` returns: X (m, 2), y (m,).
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    lin_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    lin_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.append(np.cos(lin_out), np.cos(lin_in) * factor),
                   np.append(np.sin(lin_out), np.sin(lin_in) * factor)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    X, y = _shuffle(rs, X, y)
    X += rs.normal(scale=noise, size=X.shape)
    return X, y


def _moons(n: int, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (the construction of sklearn's make_moons), noise 0.2."""
    n_out = n // 2
    n_in = n - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)),
                   np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    X, y = _shuffle(rs, X, y)
    X += rs.normal(scale=0.2, size=X.shape)
    return X, y


def _spiral(n: int, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spiral arms, 1.5 turns each (after CS231n's spiral), angular noise 0.2 rad."""
    X, y = [], []
    for k, count in enumerate((n // 2, n - n // 2)):
        r = np.linspace(0.05, 1.0, count)
        theta = k * np.pi + 3 * np.pi * r + rs.normal(scale=0.2, size=count)
        X.append(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))
        y.append(np.full(count, k, dtype=np.intp))
    return _shuffle(rs, np.vstack(X), np.concatenate(y))


def _xor(n: int, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points in [-1, 1]^2, class 1 where x1 * x2 > 0, then Gaussian jitter 0.1 (blurs the axes)."""
    X = rs.uniform(-1, 1, size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.intp)
    X += rs.normal(scale=0.1, size=X.shape)
    return X, y


def _blobs(n: int, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs, centres (-1, -1) and (1, 1), std 0.8: nearly linearly separable, some overlap."""
    y = np.hstack([np.zeros(n // 2, dtype=np.intp), np.ones(n - n // 2, dtype=np.intp)])
    centres = np.where(y[:, None] == 1, 1.0, -1.0)
    X = centres + rs.normal(scale=0.8, size=(n, 2))
    return _shuffle(rs, X, y)


_TWO_D = {  # name: (generator(n, rs), train seed, test seed, description)
    "circles": (lambda n, rs: make_circles(n, 0.05, rs), 1, 2,
                "Synthetic concentric circles (noise 0.05), exactly the course's 'Initialization' exercise data."),
    "moons": (_moons, 3, 4, "Synthetic two interleaved half moons (noise 0.2)."),
    "spiral": (_spiral, 5, 6, "Synthetic two-arm spiral (1.5 turns, angular noise 0.2)."),
    "xor": (_xor, 7, 8, "Synthetic XOR quadrants: class 1 where x1*x2 > 0, points jittered by 0.1."),
    "blobs": (_blobs, 9, 10, "Synthetic two Gaussian blobs (std 0.8) at (-1,-1) and (1,1)."),
}
_TWO_D_SIZES = (300, 100)
TWO_D_NAMES = tuple(_TWO_D)


def make_two_d(name: str) -> Dataset:
    gen, seed_train, seed_test, description = _TWO_D[name]
    train_X, train_Y = gen(_TWO_D_SIZES[0], np.random.RandomState(seed_train))
    test_X, test_Y = gen(_TWO_D_SIZES[1], np.random.RandomState(seed_test))
    return Dataset(
        name=name,
        x_train=train_X.T, y_train=train_Y.reshape((1, train_Y.shape[0])).astype(np.int64),
        x_test=test_X.T, y_test=test_Y.reshape((1, test_Y.shape[0])).astype(np.int64),
        classes=("0", "1"), image_shape=None,
        description=description + f" {_TWO_D_SIZES[0]} train / {_TWO_D_SIZES[1]} test points, "
                                  f"seeds {seed_train}/{seed_test}.",
    )


def make_gaussian(dim: int) -> Dataset:
    """Standard-normal inputs (like CS231n's randn(1000, D)), labels drawn at random."""
    parts = []
    for seed, m in ((1000, GAUSSIAN_TRAIN), (1001, GAUSSIAN_TEST)):
        rs = np.random.RandomState(seed)
        X = rs.standard_normal((m, dim))
        y = rs.randint(0, 2, size=m).astype(np.int64)
        parts += [X.T, y.reshape(1, m)]
    return Dataset(
        name=f"gaussian:{dim}", x_train=parts[0], y_train=parts[1], x_test=parts[2], y_test=parts[3],
        classes=("0", "1"), image_shape=None,
        description=f"Synthetic standard-normal inputs of dimension {dim} ({GAUSSIAN_TRAIN} train, {GAUSSIAN_TEST} "
                    "test) with random labels that mean nothing: for watching forward statistics, not for training.",
    )
