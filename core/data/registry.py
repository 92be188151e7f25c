"""Names → loaders: the one place that turns a dataset name into a Dataset, with where the files live and a cache.

A name is ``family`` or ``family:param``; ``LOADERS`` maps each family to a ``Loader`` that checks the name, names the
files it depends on (the cache key, so an edited file is read again) and builds the Dataset.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .course_h5 import load_course_h5
from .dataset import Dataset, DatasetError, standardized
from .toy import GAUSSIAN_MAX_DIM, TWO_D_NAMES, make_gaussian, make_two_d

REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CAT_FILES = ("train_catvnoncat.h5", "test_catvnoncat.h5")
SHIPPED_FILES = {"shapes64": "shapes64.h5", "digits": "digits.h5"}


def default_data_dir(environ=os.environ) -> Path:
    """$INITLAB_DATA_DIR if set, else the repository's data/ folder: read by the entry points (the CLI, the
    dashboard), which pass it on; the loaders below never read the environment."""
    env = environ.get("INITLAB_DATA_DIR", "").strip()
    return _expand_user(env) if env else REPO_DATA_DIR


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


def _stat_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content for the cache: path, size and modification time."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


# --- the loaders ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loader:
    """One family of names. ``key(name, param, folder)`` checks the name and returns the cache key, whose first item
    is the canonical name (raises DatasetError with the fix); ``load(key, folder)`` builds the Dataset."""

    key: Callable[[str, str, Path], tuple]
    load: Callable[[tuple, Path], Dataset]
    param: str = "none"  # "none": family only; "optional": family or family:param; "required": family:param only


def _cat_key(name: str, param: str, folder: Path) -> tuple:
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
    return ("catvnoncat", _stat_key(train), _stat_key(test))


def _load_cat(key: tuple, folder: Path) -> Dataset:
    train, test = _cat_paths(folder)
    return dataclasses.replace(load_course_h5(train, test, name="catvnoncat"), description=(
        "The course's cat / non-cat photos (64x64 RGB, 209 train, 50 test), read from the data folder given to this "
        "Init Lab; not shipped with it."))  # the folder itself is the server's business: never shown on the page


def _shipped_key(name: str, param: str, folder: Path) -> tuple:
    family = name.partition(":")[0]
    if param and param not in {str(k) for k in range(10)}:
        raise DatasetError(f"dataset {name!r}: K in digits:K must be one digit 0..9, e.g. digits:3.")
    path = _shipped_path(SHIPPED_FILES[family], folder)
    if not path.is_file():
        verb = "needs" if param else "is shipped as"
        raise DatasetError(f"{name} {verb} data/{SHIPPED_FILES[family]}, but {path} is missing: restore it with git, "
                           f"or regenerate it with python data/make_{family}.py.", file=str(path))
    return (name, _stat_key(path))


def _load_shipped(key: tuple, folder: Path) -> Dataset:
    name = key[0]
    family, _, digit = name.partition(":")
    ds = load_course_h5(Path(key[1][0]), name=family)
    if not digit:
        return ds
    k = int(digit)
    return dataclasses.replace(
        ds, name=name,
        y_train=(ds.y_train == k).astype(np.int64), y_test=(ds.y_test == k).astype(np.int64),
        classes=(f"not {k}", str(k)),
        description=ds.description.rstrip(".") + f"; relabelled as 'is it a {k}' (about 10% positives).",
    )


def _gaussian_key(name: str, param: str, folder: Path) -> tuple:
    try:
        dim = int(param)
    except ValueError:
        dim = 0
    if not 1 <= dim <= GAUSSIAN_MAX_DIM or param != str(dim):
        raise DatasetError(f"dataset {name!r}: D in gaussian:D must be an integer 1..{GAUSSIAN_MAX_DIM}, "
                           "e.g. gaussian:500.")
    return (f"gaussian:{dim}",)


def _name_key(name: str, param: str, folder: Path) -> tuple:
    return (name,)


LOADERS: dict[str, Loader] = {
    "catvnoncat": Loader(_cat_key, _load_cat),
    "shapes64": Loader(_shipped_key, _load_shipped),
    "digits": Loader(_shipped_key, _load_shipped, param="optional"),
    **{name: Loader(_name_key, lambda key, folder: make_two_d(key[0])) for name in TWO_D_NAMES},
    "gaussian": Loader(_gaussian_key, lambda key, folder: make_gaussian(int(key[0].partition(":")[2])),
                       param="required"),
}


def dataset_names(data_dir: str | Path = REPO_DATA_DIR) -> list[str]:
    """Names that load_dataset can load now: catvnoncat only when its two files are in data_dir.

    ``gaussian:D`` accepts any D in 1..4096; only gaussian:500 (CS231n's width) is listed.
    """
    folder = _expand_user(data_dir)
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


def load_dataset(name: str, data_dir: str | Path = REPO_DATA_DIR, *, standardize: bool = False) -> Dataset:
    """Load a dataset by name (see ``core.data``), optionally standardised with train statistics.

    Image datasets are only divided by their pixel maximum (255, or 16 for digits) unless standardize is True.
    Results are cached (the arrays are read-only), so loading the same name twice is cheap.
    """
    if not isinstance(name, str):
        raise DatasetError(f"a dataset name must be a string, got {type(name).__name__}.")
    name = name.strip()
    folder = _expand_user(data_dir)
    family, colon, param = name.partition(":")
    loader = LOADERS.get(family)
    takes = {"none": not colon, "optional": not colon or bool(param), "required": bool(param)}
    if loader is None or not takes[loader.param]:
        raise DatasetError(
            f"unknown dataset {name!r}. Choose one of catvnoncat, shapes64, digits, digits:K (K = 0..9), "
            f"{', '.join(TWO_D_NAMES)}, gaussian:D (D = 1..{GAUSSIAN_MAX_DIM})."
        )
    key = loader.key(name, param, folder)
    with _LOADING:
        return _load_cached(key, str(folder), standardize)


# One load at a time: a class that picks a preset at once on a fresh server would otherwise all miss lru_cache
# together, each reading, scaling and fingerprinting its own copy of the data (30 copies of the cat files took
# ~30 CPU-seconds of the server's GIL). A hit takes microseconds under the lock.
_LOADING = threading.Lock()


@lru_cache(maxsize=8)
def _load_cached(key: tuple, folder: str, standardize: bool = False) -> Dataset:
    if standardize:  # cached too: every page run of a standardised config asks for it
        return standardized(_load_cached(key, folder, False))
    return LOADERS[key[0].partition(":")[0]].load(key, Path(folder))
