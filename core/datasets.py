"""Datasets for Init Lab: the course's cat images, shipped stand-ins, toy 2-D sets, and validated uploads.

Every dataset comes out in the course's layout: inputs X of shape (n_features, m) float64, one example per column,
and labels Y of shape (1, m) int64 holding class indices. Images are flattened exactly as the course does it,
``x.reshape(m, -1).T / 255.``; a file can say that its pixels go up to something other than 255 with an HDF5
attribute ``pixel_max`` (the shipped digits use 16).

Names that ``load_dataset`` understands:

* ``catvnoncat`` -- the course's 209 + 50 cat / non-cat photos, read from a folder the user names (never shipped).
* ``shapes64`` -- a synthetic stand-in with the same shapes and class balance (``data/make_shapes64.py``).
* ``digits``, ``digits:K`` -- UCI handwritten digits, 8 x 8, ten classes or "is it a K" (``data/make_digits.py``).
* ``circles``, ``moons``, ``spiral``, ``xor``, ``blobs`` -- seeded 2-D toy sets; ``circles`` is bit-for-bit the
  course's "Initialization" exercise data.
* ``gaussian:D`` -- standard-normal inputs of dimension D with meaningless labels, for forward-only probes.

Everything read from a file goes through one validating reader that checks shapes and dtypes on the HDF5 objects
before loading them and turns every problem into a ``DatasetError`` that names the file, the key and the fix. The
reader runs in a separate, limited process (core.untrusted), which first refuses links, data kept in other files,
non-numeric dtypes and declared sizes over INITLAB_MAX_PARSE_MB, and hands back plain arrays only.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np

from .untrusted import FileSource, ParseLimits, UntrustedFileError, check_tree, open_hdf5, parse, short, size_text

REPO_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
CAT_FILES = ("train_catvnoncat.h5", "test_catvnoncat.h5")
SHIPPED_FILES = {"shapes64": "shapes64.h5", "digits": "digits.h5"}
TWO_D_NAMES = ("circles", "moons", "spiral", "xor", "blobs")
GAUSSIAN_MAX_DIM = 4096
GAUSSIAN_TRAIN, GAUSSIAN_TEST = 1000, 200

DEFAULT_MAX_UPLOAD_MB = 200  # overridden by $INITLAB_MAX_UPLOAD_MB; MB here means 2**20 bytes
DEFAULT_MAX_SAMPLES = 100_000
MAX_CLASSES = 1000  # labels must be integers in 0..MAX_CLASSES-1

_COURSE_KEYS = "keys train_set_x, train_set_y, test_set_x, test_set_y and optionally list_classes"
_COURSE_FILE = f"the .h5 file in the course layout ({_COURSE_KEYS})"


class DatasetError(ValueError):
    """A dataset could not be loaded. The message names the file, the key and the fix in plain sentences.

    ``file`` and ``key`` repeat those names for a caller that wants to show them separately (either may be None).
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        super().__init__(message)
        self.file = file
        self.key = key


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: a Dataset can be cached and shared without anyone changing it under a fingerprint."""
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test splits in the course layout: X (n_features, m) float64, Y (1, m) int64 class indices.

    The arrays are read-only views. ``image_shape`` is the shape of one example before flattening (None for points
    and plain vectors); ``description`` says in one sentence where the data came from.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    image_shape: tuple[int, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        if len(classes) < 2:
            raise DatasetError(f"dataset {self.name!r}: classes must name at least two classes, got {classes!r}.")
        arrays = {}
        for split in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{split}"))
            y = np.asarray(getattr(self, f"y_{split}"))
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
                raise DatasetError(f"dataset {self.name!r}: x_{split} must be a 2-D float array (n_features, m), "
                                   f"got {x.dtype} {x.shape}.")
            if y.shape != (1, x.shape[1]) or not np.issubdtype(y.dtype, np.integer):
                raise DatasetError(f"dataset {self.name!r}: y_{split} must be an integer array of shape "
                                   f"(1, {x.shape[1]}), got {y.dtype} {y.shape}.")
            if y.size and (y.min() < 0 or y.max() >= len(classes)):
                raise DatasetError(f"dataset {self.name!r}: y_{split} holds labels outside 0..{len(classes) - 1}.")
            arrays[f"x_{split}"] = _readonly(x.astype(np.float64, copy=False))
            arrays[f"y_{split}"] = _readonly(y.astype(np.int64, copy=False))
        if arrays["x_train"].shape[0] != arrays["x_test"].shape[0]:
            raise DatasetError(f"dataset {self.name!r}: train has {arrays['x_train'].shape[0]} features but test has "
                               f"{arrays['x_test'].shape[0]}.")
        for key, value in arrays.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "classes", classes)
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def output_size(self) -> int:
        """Units in the output layer: one sigmoid for two classes, else one softmax unit per class."""
        return 1 if self.n_classes == 2 else self.n_classes

    def fingerprint(self) -> str:
        """sha256 over dtype, shape and bytes of the four arrays and the class names (not the name)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256()
            for a in (self.x_train, self.y_train, self.x_test, self.y_test):
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape};".encode())
                h.update(a.tobytes())
            h.update("\x1f".join(self.classes).encode())
            cached = h.hexdigest()
            self.__dict__["_fingerprint"] = cached
        return cached

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, x_train {self.x_train.shape}, x_test {self.x_test.shape}, "
                f"classes={self.classes!r})")


# --------------------------------------------------------------------------------------------------- locations


def default_data_dir() -> Path:
    """$INITLAB_DATA_DIR if set, else the repository's data/ folder."""
    env = os.environ.get("INITLAB_DATA_DIR", "").strip()
    return _expand_user(env) if env else REPO_DATA_DIR


def _resolve_dir(data_dir: str | Path | None) -> Path:
    return _expand_user(data_dir) if data_dir is not None else default_data_dir()


def _expand_user(folder: str | Path) -> Path:
    """`folder` with a leading ~ or ~user expanded; as written if this machine knows no such user (expanduser raises
    RuntimeError then), so the message that the folder does not exist shows it as the user gave it."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:
        return Path(folder)


def _shipped_path(filename: str, data_dir: Path) -> Path:
    """A shipped file: from data_dir if it has one, else from the repository's data/ folder."""
    candidate = data_dir / filename
    return candidate if candidate.is_file() else REPO_DATA_DIR / filename


def _cat_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / CAT_FILES[0], data_dir / CAT_FILES[1]


def dataset_names(data_dir: str | Path | None = None) -> list[str]:
    """Names that load_dataset can load now: catvnoncat only when its two files are in data_dir.

    ``gaussian:D`` accepts any D in 1..4096; only gaussian:500 (CS231n's width) is listed.
    """
    folder = _resolve_dir(data_dir)
    names = []
    if all(p.is_file() for p in _cat_paths(folder)):
        names.append("catvnoncat")
    if _shipped_path(SHIPPED_FILES["shapes64"], folder).is_file():
        names.append("shapes64")
    if _shipped_path(SHIPPED_FILES["digits"], folder).is_file():
        names += ["digits"] + [f"digits:{k}" for k in range(10)]
    names += list(TWO_D_NAMES)
    names.append("gaussian:500")
    return names


# ------------------------------------------------------------------------------------------------ load_dataset


def load_dataset(name: str, data_dir: str | Path | None = None, *, standardize: bool = False) -> Dataset:
    """Load a dataset by name (see the module docstring), optionally standardised with train statistics.

    Image datasets are only divided by their pixel maximum (255, or 16 for digits) unless standardize is True.
    Results are cached (the arrays are read-only), so loading the same name twice is cheap.
    """
    if not isinstance(name, str):
        raise DatasetError(f"a dataset name must be a string, got {type(name).__name__}.")
    name = name.strip()
    folder = _resolve_dir(data_dir)
    base, _, param = name.partition(":")

    if name == "catvnoncat":
        train, test = _cat_paths(folder)
        missing = [p.name for p in (train, test) if not p.is_file()]
        if missing:
            where = f"folder {folder}" + ("" if folder.is_dir() else " (which does not exist)")
            raise DatasetError(
                f"catvnoncat needs {' and '.join(CAT_FILES)}, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not in the {where}. Init Lab does not ship the course files: "
                "pass --data-dir DIR, or set INITLAB_DATA_DIR=DIR, to the folder that holds them, or upload them "
                "in the dashboard (or use shapes64, the shipped stand-in).",
                file=str(folder),
            )
        key = ("catvnoncat", _stat_key(train), _stat_key(test))
    elif name in SHIPPED_FILES:
        path = _shipped_path(SHIPPED_FILES[name], folder)
        if not path.is_file():
            raise DatasetError(f"{name} is shipped as data/{SHIPPED_FILES[name]}, but {path} is missing: restore it "
                               f"with git, or regenerate it with python data/make_{name}.py.", file=str(path))
        key = (name, _stat_key(path))
    elif base == "digits" and param:
        if param not in {str(k) for k in range(10)}:
            raise DatasetError(f"dataset {name!r}: K in digits:K must be one digit 0..9, e.g. digits:3.")
        path = _shipped_path(SHIPPED_FILES["digits"], folder)
        if not path.is_file():
            raise DatasetError(f"{name} needs data/digits.h5, but {path} is missing: restore it with git, or "
                               "regenerate it with python data/make_digits.py.", file=str(path))
        key = (name, _stat_key(path))
    elif name in TWO_D_NAMES:
        key = (name,)
    elif base == "gaussian" and param:
        try:
            dim = int(param)
        except ValueError:
            dim = 0
        if not 1 <= dim <= GAUSSIAN_MAX_DIM or param != str(dim):
            raise DatasetError(f"dataset {name!r}: D in gaussian:D must be an integer 1..{GAUSSIAN_MAX_DIM}, "
                               "e.g. gaussian:500.")
        key = (f"gaussian:{dim}",)
    else:
        raise DatasetError(
            f"unknown dataset {name!r}. Choose one of catvnoncat, shapes64, digits, digits:K (K = 0..9), "
            f"{', '.join(TWO_D_NAMES)}, gaussian:D (D = 1..{GAUSSIAN_MAX_DIM})."
        )
    with _LOADING:
        return _load_cached(key, str(folder), standardize)


def _stat_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content for the cache: path, size and modification time."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


# One load at a time: a class that picks a preset at once on a fresh server would otherwise all miss lru_cache
# together, each reading, scaling and fingerprinting its own copy of the data (30 copies of the cat files took
# ~30 CPU-seconds of the server's GIL). A hit takes microseconds under the lock.
_LOADING = threading.Lock()


@lru_cache(maxsize=8)
def _load_cached(key: tuple, folder: str, standardize: bool = False) -> Dataset:
    if standardize:  # cached too: every page run of a standardised config asks for it
        return standardized(_load_cached(key, folder, False))
    name = key[0]
    if name == "catvnoncat":
        train, test = _cat_paths(Path(folder))
        ds = load_course_h5(train, test, name="catvnoncat")
        return _replace(ds, description=(
            f"The course's cat / non-cat photos (64x64 RGB, 209 train, 50 test), read from {Path(folder)}; "
            "not shipped with Init Lab."))
    if name == "shapes64":
        return load_course_h5(Path(key[1][0]), name="shapes64")
    if name.startswith("digits"):
        ds = load_course_h5(Path(key[1][0]), name="digits")
        if name == "digits":
            return ds
        k = int(name.split(":")[1])
        return _replace(
            ds, name=name,
            y_train=(ds.y_train == k).astype(np.int64), y_test=(ds.y_test == k).astype(np.int64),
            classes=(f"not {k}", str(k)),
            description=ds.description.rstrip(".") + f"; relabelled as 'is it a {k}' (about 10% positives).",
        )
    if name in TWO_D_NAMES:
        return _GENERATORS[name]()
    if name.startswith("gaussian:"):
        return _gaussian(int(name.split(":")[1]))
    raise AssertionError(f"no loader for {key!r}")  # load_dataset validated the name


def _replace(ds: Dataset, **changes) -> Dataset:
    fields = dict(name=ds.name, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
                  classes=ds.classes, image_shape=ds.image_shape, description=ds.description)
    fields.update(changes)
    return Dataset(**fields)


def standardized(ds: Dataset) -> Dataset:
    """Per-feature zero mean and unit variance using the train split's statistics, applied to both splits.

    Features that are constant on the train split carry no information and become 0 in both splits.
    """
    mean = ds.x_train.mean(axis=1, keepdims=True)
    std = ds.x_train.std(axis=1, keepdims=True)
    constant = np.ptp(ds.x_train, axis=1, keepdims=True) == 0
    scale = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, std))
    return _replace(
        ds,
        x_train=(ds.x_train - mean) * scale,
        x_test=(ds.x_test - mean) * scale,
        description=(ds.description.rstrip(".") + ". " if ds.description else "")
        + "Standardised per feature with the train split's mean and std.",
    )


# -------------------------------------------------------------------------------------------- 2-D generators


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


def _make_two_d(name: str) -> Dataset:
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


_GENERATORS = {name: (lambda name=name: _make_two_d(name)) for name in TWO_D_NAMES}


def _gaussian(dim: int) -> Dataset:
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


# ------------------------------------------------------------------------------------ validated HDF5 reading


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    raw = os.environ.get("INITLAB_MAX_UPLOAD_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_UPLOAD_MB * 2**20
    try:
        mb = float(raw)
        if not math.isfinite(mb) or mb <= 0:
            raise ValueError(raw)
    except ValueError as e:
        raise DatasetError(f"INITLAB_MAX_UPLOAD_MB is {raw!r}, which is not a positive number of megabytes: "
                           f"set it to e.g. 200, or unset it for the default of {DEFAULT_MAX_UPLOAD_MB}.") from e
    return int(mb * 2**20)


def load_course_h5(train_path: str | Path, test_path: str | Path | None = None, *, name: str | None = None,
                   max_bytes: int | None = None, max_samples: int = DEFAULT_MAX_SAMPLES) -> Dataset:
    """Read course-layout HDF5: one file with both splits, or a train file (train_set_*) and a test file (test_set_*).

    max_bytes (default $INITLAB_MAX_UPLOAD_MB MB, else 200 MB) bounds each file's size and is checked before
    opening; max_samples bounds each split. Any problem raises DatasetError naming the file, the key and the fix.
    """
    train_path = Path(train_path)
    sources = []
    for path in (train_path, None if test_path is None else Path(test_path)):
        if path is None:
            continue
        if not path.is_file():
            raise DatasetError(f"{path} does not exist or is not a file: check the path (a folder needs the file "
                               "name too, e.g. train_catvnoncat.h5).", file=str(path))
        sources.append(FileSource(str(path), path=str(path)))
    if name is None:
        stem = train_path.stem
        name = stem[len("train_"):] if stem.startswith("train_") and len(stem) > 6 else stem
    return _read_sources(sources, name, _max_bytes(max_bytes), max_samples)


def load_uploaded_h5(data: bytes, *, name: str = "upload", test_data: bytes | None = None,
                     max_bytes: int | None = None, max_samples: int = DEFAULT_MAX_SAMPLES) -> Dataset:
    """Read an uploaded course-layout file from its bytes; same checks as load_course_h5.

    One upload holds both splits, or pass the test file's bytes as test_data (train_set_* in data, test_set_* in
    test_data), as the course ships them.
    """
    sources = []
    for label, blob in ((f"uploaded file {name!r}", data),
                        (f"uploaded test file for {name!r}", test_data)):
        if blob is None and label.startswith("uploaded test"):
            continue
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"load_uploaded_h5 needs bytes, got {type(blob).__name__} (use uploaded.getvalue())")
        sources.append(FileSource(label, data=bytes(blob)))
    return _read_sources(sources, name, _max_bytes(max_bytes), max_samples)


def _read_sources(sources: list[FileSource], name: str, max_bytes: int, max_samples: int) -> Dataset:
    for src in sources:
        size = src.size()
        if size > max_bytes:
            raise DatasetError(
                f"{src.label} is {size_text(size)}, more than the limit of {size_text(max_bytes)}, so it was not read. "
                "Use a smaller file, or raise the limit with INITLAB_MAX_UPLOAD_MB.", file=src.label)
        if size == 0:
            raise DatasetError(f"{src.label} is empty (0 bytes): give the .h5 file itself.", file=src.label)
    label = sources[0].label
    try:
        limits = ParseLimits.from_env()
        plain, arrays = parse(_parse_sources, sources, name, max_samples, limits.max_bytes, label=label,
                              limits=limits)
    except UntrustedFileError as e:
        raise DatasetError(str(e), file=label, key=e.key) from None
    try:
        scale = float(plain.pop("scale"))
        for split in ("train", "test"):  # exactly the course's preprocessing: x.reshape(m, -1).T / 255.
            rows = arrays[f"x_{split}"]  # (m, n_features), as stored: an eighth of the float64 result to send
            if rows.dtype.kind == "f":
                rows = rows.astype(np.float64, copy=False)
            arrays[f"x_{split}"] = rows.T / scale
        return Dataset(**plain, **arrays)  # which checks every array again
    except (KeyError, TypeError, AttributeError):  # only a reader that a crafted file took over answers like this
        raise DatasetError(f"{label} was refused: its reader's answer was malformed; the file is crafted or "
                           "damaged.", file=label) from None


def _parse_sources(sources: list[FileSource], name: str, max_samples: int, max_bytes: int):
    """In the parser process (see core.untrusted.parse): the checked files read into a Dataset, as plain data."""
    files = []
    try:
        for src in sources:
            files.append(open_hdf5(src, _COURSE_FILE))
            check_tree(files[-1], src.label, max_bytes)
        return _read_open(sources, files, name, max_samples, max_bytes)
    except UntrustedFileError:
        raise
    except DatasetError as e:
        raise UntrustedFileError(str(e), key=e.key) from None
    except MemoryError:
        raise UntrustedFileError(f"{sources[0].label} does not fit in memory: use fewer or smaller images.") from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
        raise UntrustedFileError(f"{sources[0].label} could not be read ({type(e).__name__}: {short(e)}). Check that "
                                 f"it is an intact course-layout HDF5 file ({_COURSE_KEYS}).") from None
    finally:
        for f in files:
            f.close()


def _read_open(sources: list[FileSource], files: list[h5py.File], name: str, max_samples: int,
               max_bytes: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The checked values as plain data: each split's x one example per row as stored (the caller scales and
    transposes it), its labels (1, m) int64, the scale, the class names, the image shape and a description."""
    if len(files) == 1:
        where = {"train": (sources[0], files[0]), "test": (sources[0], files[0])}
    else:
        where = {"train": (sources[0], files[0]), "test": (sources[1], files[1])}

    # 1. look at every dataset's shape and dtype before reading any of them
    plans = {split: _plan_split(src, f, split, max_samples) for split, (src, f) in where.items()}
    train_src, test_src = where["train"][0], where["test"][0]
    if plans["train"]["x"].shape[1:] != plans["test"]["x"].shape[1:]:
        raise DatasetError(
            f"{train_src.label}: train_set_x holds examples of shape {plans['train']['x'].shape[1:]} but test_set_x "
            f"({test_src.label}) holds {plans['test']['x'].shape[1:]}; both splits need the same features. "
            "Export both from the same source.", file=train_src.label, key="test_set_x")
    total = sum(int(np.prod(p["x"].shape, dtype=np.int64)) for p in plans.values())
    if total * 8 > max_bytes:  # they become float64
        raise DatasetError(
            f"{train_src.label}: train_set_x and test_set_x hold {total:,} values together, {size_text(total * 8)} "
            f"as float64, more than this server's limit of {size_text(max_bytes)} for one file. Use fewer or smaller "
            "images (the operator sets the limit with INITLAB_MAX_PARSE_MB).", file=train_src.label, key="train_set_x")
    classes_raw = None
    for src, f in dict.fromkeys(where.values()):
        if "list_classes" in f:
            names = _read_classes(src, f)
            if classes_raw is not None and names != classes_raw:
                raise DatasetError(
                    f"{src.label}: list_classes is {list(names)} but the train file says {list(classes_raw)}. "
                    "Make the two files agree, or drop list_classes from one.", file=src.label, key="list_classes")
            classes_raw = classes_raw or names

    # 2. read and check the values
    parts = {split: _read_split(where[split][0], plan, split) for split, plan in plans.items()}
    if parts["train"]["scale"] != parts["test"]["scale"]:
        raise DatasetError(
            f"{test_src.label}: test_set_x would be divided by {parts['test']['scale']:g} but train_set_x by "
            f"{parts['train']['scale']:g} (from the pixel_max attribute or, without it, the dtype: 255 for integers, "
            "1 for floats). Store both splits the same way.", file=test_src.label, key="test_set_x")
    top = max(int(p["y"].max()) for p in parts.values())
    if classes_raw is None:
        classes = tuple(str(i) for i in range(max(2, top + 1)))
    else:
        classes = classes_raw
        if top >= len(classes):
            raise DatasetError(
                f"{train_src.label}: the labels go up to {top} but list_classes names only {len(classes)} classes "
                f"({', '.join(classes)}). Fix list_classes, or drop it to number the classes 0..{top}.",
                file=train_src.label, key="list_classes")
    description = _read_description(files[0]) or f"Read from {sources[0].label}" + (
        f" and {sources[1].label}." if len(sources) > 1 else ".")
    image_shape = plans["train"]["x"].shape[1:]
    plain = {"name": name, "classes": list(classes), "description": description, "scale": parts["train"]["scale"],
             "image_shape": [int(s) for s in image_shape] if len(image_shape) >= 2 else None}
    return plain, {f"{a}_{split}": parts[split][a] for split in ("train", "test") for a in ("x", "y")}


def _get(src: FileSource, f: h5py.File, key: str, split: str) -> h5py.Dataset:
    if key not in f:
        need = "train_set_x and train_set_y" if split == "train" else "test_set_x and test_set_y"
        raise DatasetError(
            f"{src.label} has no key {key!r} (it has: {', '.join(sorted(f.keys())) or 'nothing'}). Course-layout data "
            f"needs {need}: put both splits in one file, or give the train file (train_set_*) and the test file "
            "(test_set_*) together.", file=src.label, key=key)
    obj = f.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{src.label}: {key!r} is a group, not an array. Store the {split} data itself under "
                           f"{key}.", file=src.label, key=key)
    if obj.shape is None or obj.dtype.kind not in "uifb":
        what = "no data (an empty dataspace)" if obj.shape is None else f"dtype {obj.dtype}"
        store = "uint8 pixels or floats" if key.endswith("_x") else "integer class indices 0, 1, 2, ..."
        raise DatasetError(f"{src.label}: {key!r} has {what}, not numbers. Store {key} as {store}.",
                           file=src.label, key=key)
    return obj


def _plan_split(src: FileSource, f: h5py.File, split: str, max_samples: int) -> dict:
    xkey, ykey = f"{split}_set_x", f"{split}_set_y"
    x, y = _get(src, f, xkey, split), _get(src, f, ykey, split)
    if not 2 <= x.ndim <= 4:
        raise DatasetError(
            f"{src.label}: {xkey} has shape {x.shape}; it needs one example per row: (m, n_features), (m, h, w) or "
            f"(m, h, w, channels). Reshape it before saving.", file=src.label, key=xkey)
    m = x.shape[0]
    if m == 0 or 0 in x.shape:
        raise DatasetError(f"{src.label}: {xkey} is empty (shape {x.shape}). Each split needs at least one "
                           "example with at least one feature.", file=src.label, key=xkey)
    if m > max_samples:
        raise DatasetError(f"{src.label}: {xkey} has {m:,} examples, more than the limit of {max_samples:,}. Use a "
                           "subset.", file=src.label, key=xkey)
    if y.ndim > 2 or y.size != m or (y.ndim == 2 and 1 not in y.shape):
        raise DatasetError(
            f"{src.label}: {ykey} has shape {y.shape} but {xkey} has {m} examples; {ykey} needs exactly one label per "
            f"example, shape ({m},) or (1, {m}). Make the counts match.", file=src.label, key=ykey)
    return {"x": x, "y": y, "xkey": xkey, "ykey": ykey, "file": f}


def _pixel_max(src: FileSource, f: h5py.File, x: h5py.Dataset, xkey: str) -> float | None:
    for attrs in (x.attrs, f.attrs):
        if "pixel_max" in attrs:
            value = np.asarray(attrs["pixel_max"])
            ok = value.size == 1 and value.dtype.kind in "uif" and math.isfinite(float(value.ravel()[0]))
            if not ok or float(value.ravel()[0]) <= 0:
                raise DatasetError(f"{src.label}: the attribute pixel_max of {xkey} is {value!r}; it must be one "
                                   "positive number (the largest possible pixel value).", file=src.label,
                                   key="pixel_max")
            return float(value.ravel()[0])
    return None


def _read_split(src: FileSource, plan: dict, split: str) -> dict:
    xds, yds, xkey, ykey = plan["x"], plan["y"], plan["xkey"], plan["ykey"]
    pixel_max = _pixel_max(src, plan["file"], xds, xkey)
    for key, ds in ((xkey, xds), (ykey, yds)):
        try:
            plan[key] = ds[()]
        except (OSError, ValueError, RuntimeError) as e:  # corrupt chunks, a missing compression filter, ...
            raise DatasetError(f"{src.label}: {key} could not be read ({short(e)}). The file looks damaged or uses "
                               "a compression filter h5py lacks: save it again with gzip or no compression.",
                               file=src.label, key=key) from e
    x, y_raw = plan[xkey], plan[ykey]
    m = x.shape[0]

    if x.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise DatasetError(f"{src.label}: {xkey} holds {bad} NaN or infinite values. Replace or drop those "
                               "examples before saving.", file=src.label, key=xkey)
        scale = pixel_max if pixel_max is not None else 1.0
    else:
        if pixel_max is None:
            lo, hi = (int(x.min()), int(x.max())) if x.dtype.kind != "b" else (0, 1)
            if lo < 0 or hi > 255:
                raise DatasetError(
                    f"{src.label}: {xkey} has integer values from {lo} to {hi}, outside 0..255. Add an HDF5 attribute "
                    f"pixel_max (e.g. {hi}) to the file or to {xkey}, or rescale to 0..255.", file=src.label, key=xkey)
            scale = 255.0
        else:
            scale = pixel_max
        if x.dtype.kind == "b":
            x = x.astype(np.uint8)
    if pixel_max is not None:  # a tiny pixel_max would turn ordinary pixels into overflowing inputs, even inf
        largest = max(abs(float(x.min())), abs(float(x.max())))
        if largest > pixel_max:
            raise DatasetError(
                f"{src.label}: {xkey} holds values up to {largest:g} in size, above its pixel_max of {pixel_max:g}, "
                "which must be the largest possible pixel value. Set pixel_max to that largest value (e.g. 255), "
                "or drop it.", file=src.label, key="pixel_max")
    x = x.reshape(m, -1)

    y_flat = np.asarray(y_raw).reshape(-1)
    if y_flat.dtype.kind == "f":
        if not np.all(np.isfinite(y_flat)) or not np.all(y_flat == np.round(y_flat)):
            raise DatasetError(f"{src.label}: {ykey} holds labels that are not whole numbers (NaN, infinite or "
                               "fractional). Labels must be class indices 0, 1, 2, ...", file=src.label, key=ykey)
    lo, hi = (y_flat.min(), y_flat.max()) if y_flat.dtype.kind != "b" else (0, 1)
    if lo < 0:
        raise DatasetError(f"{src.label}: {ykey} holds negative labels (smallest {lo}). Labels must be class "
                           "indices 0, 1, 2, ...; map e.g. -1/+1 to 0/1.", file=src.label, key=ykey)
    if hi >= MAX_CLASSES:
        distinct = len(np.unique(y_flat))
        raise DatasetError(
            f"{src.label}: {ykey} holds labels up to {hi:g} ({distinct} distinct values); Init Lab takes class "
            f"indices 0..{MAX_CLASSES - 1}. Store classes, not regression targets or ids, and number them from 0.",
            file=src.label, key=ykey)
    y = y_flat.astype(np.int64).reshape((1, m))
    return {"x": x, "y": y, "scale": float(scale)}


def _read_classes(src: FileSource, f: h5py.File) -> tuple[str, ...]:
    obj = f.get("list_classes")
    if not isinstance(obj, h5py.Dataset) or obj.shape is None or len(obj.shape) != 1 \
            or not 2 <= obj.shape[0] <= MAX_CLASSES or obj.dtype.kind not in "SUOiu":
        shape = getattr(obj, "shape", None)
        raise DatasetError(
            f"{src.label}: list_classes must be a 1-D array of 2..{MAX_CLASSES} class names (e.g. [b'non-cat', "
            f"b'cat']), got {type(obj).__name__} {shape}. Fix it or remove it.", file=src.label, key="list_classes")
    names = []
    for item in obj[()]:
        if isinstance(item, bytes):
            names.append(item.decode("utf-8", errors="replace"))
        elif isinstance(item, (str, int, np.integer)):
            names.append(str(item))
        else:
            raise DatasetError(f"{src.label}: list_classes holds {type(item).__name__} entries; store class names "
                               "as strings.", file=src.label, key="list_classes")
    return tuple(names)


def _read_description(f: h5py.File) -> str:
    value = f.attrs.get("description")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value.strip()[:500] if isinstance(value, str) else ""
