"""Generate ``data/shapes64.h5``: a synthetic stand-in for the course's cat / non-cat images.

The course files cannot be redistributed, so Init Lab ships this instead. It copies everything about them that
matters to an initialisation experiment and nothing else:

* the same shapes and balance: 209 train images (72 positive) and 50 test images (33 positive), each
  64 x 64 x 3 uint8, stored under the course's keys (``train_set_x``, ``train_set_y``, ``test_set_x``,
  ``test_set_y``, ``list_classes``), so ``x.reshape(m, -1).T / 255.`` gives the same (12288, m) inputs and a
  network that predicts "no shape" for everything scores 34% on the test split, as it does on the cats;
* a task of similar difficulty: a positive image has one large filled shape (disc, ellipse, polygon or blob) near
  the middle; a negative image has the same kinds of textured, noisy backgrounds with only thin lines, small dots
  and rings as clutter (positives get some clutter too). Colours are drawn so that the class means differ, but not
  so much that a linear model on raw pixels separates the classes.

The script is seeded and uses NumPy only (legacy ``RandomState``, whose streams NumPy keeps fixed), so running it
again gives the same pixels. Run from the repository root::

    python data/make_shapes64.py              # writes data/shapes64.h5
    python data/make_shapes64.py --out /tmp/s.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SIZE = 64
N_TRAIN, N_TRAIN_POS = 209, 72
N_TEST, N_TEST_POS = 50, 33
SEED_TRAIN, SEED_TEST = 20240064, 20240065
CLASSES = (b"no-shape", b"shape")

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5


def _smooth_field(rs: np.random.RandomState, cells: int) -> np.ndarray:
    """A (64, 64) field in [0, 1]: a random (cells+1)^2 grid upsampled bilinearly."""
    grid = rs.uniform(0.0, 1.0, size=(cells + 1, cells + 1))
    t = np.linspace(0.0, cells, SIZE)
    i0 = np.minimum(np.floor(t).astype(int), cells - 1)
    f = t - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]  # (64, cells+1)
    field = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]
    lo, hi = field.min(), field.max()
    return (field - lo) / (hi - lo + 1e-12)


def _random_colour(rs: np.random.RandomState, vivid: bool) -> np.ndarray:
    """An RGB colour in [0, 255]. Vivid colours are more saturated and a little brighter on average."""
    grey = rs.uniform(50, 170) if not vivid else rs.uniform(110, 235)
    spread = rs.uniform(10, 50) if not vivid else rs.uniform(40, 110)
    direction = rs.normal(size=3)
    direction /= np.linalg.norm(direction) + 1e-12
    return np.clip(grey + spread * direction, 0, 255)


def _background(rs: np.random.RandomState) -> np.ndarray:
    """A textured, noisy (64, 64, 3) float image: two muted colours mixed by a smooth field plus a texture."""
    c1, c2 = _random_colour(rs, vivid=False), _random_colour(rs, vivid=False)
    mix = _smooth_field(rs, rs.randint(1, 6))
    img = c1 * (1 - mix[..., None]) + c2 * mix[..., None]
    kind = rs.randint(4)
    if kind == 1:  # stripes at a random angle
        angle = rs.uniform(0, np.pi)
        period = rs.uniform(4, 14)
        wave = np.sin(2 * np.pi * (_XX * np.cos(angle) + _YY * np.sin(angle)) / period + rs.uniform(0, 2 * np.pi))
        img += rs.uniform(8, 30) * wave[..., None]
    elif kind == 2:  # grain: higher-frequency blotches
        img += rs.uniform(10, 35) * (_smooth_field(rs, rs.randint(10, 20)) - 0.5)[..., None] * rs.uniform(0.5, 1.5, 3)
    elif kind == 3:  # checks
        cell = rs.randint(5, 13)
        checks = ((_XX // cell + _YY // cell) % 2) * 2 - 1
        img += rs.uniform(6, 22) * checks[..., None]
    # light falling across the image
    angle = rs.uniform(0, 2 * np.pi)
    ramp = ((_XX - SIZE / 2) * np.cos(angle) + (_YY - SIZE / 2) * np.sin(angle)) / SIZE
    img += rs.uniform(0, 50) * ramp[..., None]
    return img


def _shape_distance(rs: np.random.RandomState, cx: float, cy: float, radius: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) to a random filled shape centred at (cx, cy)."""
    kind = rs.randint(5)
    dx, dy = _XX - cx, _YY - cy
    if kind == 0:  # disc
        return np.hypot(dx, dy) - radius
    if kind == 1:  # ellipse (approximate distance)
        angle = rs.uniform(0, np.pi)
        ratio = rs.uniform(0.5, 0.85)
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.hypot(u, v / ratio) - radius) * ratio
    if kind in (2, 3):  # regular polygon: triangle, square, pentagon or hexagon
        sides = rs.randint(3, 7)
        rotation = rs.uniform(0, 2 * np.pi)
        apothem = radius * np.cos(np.pi / sides) * (1.15 if sides == 3 else 1.0)
        dist = np.full(dx.shape, -np.inf)
        for k in range(sides):
            theta = rotation + 2 * np.pi * k / sides
            dist = np.maximum(dist, dx * np.cos(theta) + dy * np.sin(theta) - apothem)
        return dist
    # blob: a wobbly disc
    theta = np.arctan2(dy, dx)
    r_theta = np.full(dx.shape, radius)
    for harmonic in (2, 3, 5):
        r_theta += radius * rs.uniform(0.0, 0.18) * np.sin(harmonic * theta + rs.uniform(0, 2 * np.pi))
    return np.hypot(dx, dy) - r_theta


def _paint(img: np.ndarray, distance: np.ndarray, colour: np.ndarray, opacity: float) -> None:
    """Blend colour into img where distance < 0, with a one-pixel anti-aliased edge."""
    alpha = np.clip(0.5 - distance, 0.0, 1.0)[..., None] * opacity
    img *= 1 - alpha
    img += alpha * colour


def _clutter(rs: np.random.RandomState, img: np.ndarray, amount: int) -> None:
    """Thin lines, small dots and thin rings: things that are not 'a shape'."""
    for _ in range(amount):
        kind = rs.randint(3)
        colour = _random_colour(rs, vivid=rs.rand() < 0.5)
        if kind == 0:  # line segment, 1-2 px wide
            x0, y0, x1, y1 = rs.uniform(0, SIZE, 4)
            vx, vy = x1 - x0, y1 - y0
            t = np.clip(((_XX - x0) * vx + (_YY - y0) * vy) / (vx * vx + vy * vy + 1e-12), 0, 1)
            dist = np.hypot(_XX - x0 - t * vx, _YY - y0 - t * vy) - rs.uniform(0.4, 1.0)
        elif kind == 1:  # dot
            cx, cy = rs.uniform(0, SIZE, 2)
            dist = np.hypot(_XX - cx, _YY - cy) - rs.uniform(1.0, 3.5)
        else:  # ring: the outline of a circle, not a filled shape
            cx, cy = rs.uniform(8, SIZE - 8, 2)
            dist = np.abs(np.hypot(_XX - cx, _YY - cy) - rs.uniform(5, 16)) - rs.uniform(0.4, 1.0)
        _paint(img, dist, colour, rs.uniform(0.5, 1.0))


def render(rs: np.random.RandomState, positive: bool) -> np.ndarray:
    """One (64, 64, 3) uint8 image."""
    img = _background(rs)
    if positive:
        _clutter(rs, img, rs.randint(0, 3))
        cx, cy = rs.uniform(22, SIZE - 22, 2)
        radius = rs.uniform(12, 22)
        distance = _shape_distance(rs, cx, cy, radius)
        colour = _random_colour(rs, vivid=True)
        _paint(img, distance, colour, rs.uniform(0.55, 1.0))
        # shading and texture on the shape itself, so it is not a flat patch
        inside = np.clip(0.5 - distance, 0, 1)[..., None]
        img += inside * rs.uniform(5, 25) * (_smooth_field(rs, 3) - 0.5)[..., None]
        _clutter(rs, img, rs.randint(0, 2))
    else:
        _clutter(rs, img, rs.randint(1, 6))
    img += rs.normal(scale=rs.uniform(4, 14), size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_split(seed: int, n: int, n_positive: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 64, 64, 3) uint8 and labels (n,) int64 with n_positive ones, in shuffled order."""
    rs = np.random.RandomState(seed)
    y = np.zeros(n, dtype=np.int64)
    y[:n_positive] = 1
    rs.shuffle(y)
    x = np.stack([render(rs, bool(label)) for label in y])
    return x, y


def make_all() -> dict[str, np.ndarray]:
    """All arrays of the file, keyed as in the course files."""
    train_x, train_y = make_split(SEED_TRAIN, N_TRAIN, N_TRAIN_POS)
    test_x, test_y = make_split(SEED_TEST, N_TEST, N_TEST_POS)
    return {
        "train_set_x": train_x,
        "train_set_y": train_y,
        "test_set_x": test_x,
        "test_set_y": test_y,
        "list_classes": np.array(CLASSES),
    }


def write(path: Path) -> None:
    import h5py  # only needed to write; make_all() stays importable without it

    arrays = make_all()
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value.ndim == 4:
                f.create_dataset(key, data=value, compression="gzip", compression_opts=9, chunks=(1, SIZE, SIZE, 3))
            else:
                f.create_dataset(key, data=value)
        f.attrs["description"] = (
            "Synthetic stand-in for the course's cat/non-cat images: large filled shapes (positive) or clutter "
            "only (negative) over textured noisy backgrounds, generated by data/make_shapes64.py."
        )
        f.attrs["pixel_max"] = 255
        f.attrs["licence"] = "generated by Init Lab (data/make_shapes64.py); no third-party content"
        f.attrs["seeds"] = np.array([SEED_TRAIN, SEED_TEST])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "shapes64.h5")
    args = parser.parse_args()
    write(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
