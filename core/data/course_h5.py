"""The course-layout HDF5 reader and its validator.

A course file holds train_set_x (m, ...) images or vectors, train_set_y (m,) or (1, m) labels, the same for test_set_*,
and optionally list_classes. Everything read from a file goes through one validating reader that checks shapes and
dtypes on the HDF5 objects before loading them and turns every problem into a ``DatasetError`` that names the file,
the key and the fix. The reader runs in a separate, limited process (core.untrusted), which first refuses links,
data kept in other files, non-numeric dtypes and declared sizes over INITLAB_MAX_PARSE_MB, and hands back plain
arrays only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from ..sandbox import parse
from ..untrusted import FileSource, ParseLimits, UntrustedFileError, check_tree, open_hdf5, short, size_text
from .dataset import Dataset, DatasetError

DEFAULT_MAX_UPLOAD_MB = 200  # the dashboard's uploads take $INITLAB_MAX_UPLOAD_MB; MB here means 2**20 bytes
DEFAULT_MAX_BYTES = DEFAULT_MAX_UPLOAD_MB * 2**20
DEFAULT_MAX_SAMPLES = 100_000
MAX_CLASSES = 1000  # labels must be integers in 0..MAX_CLASSES-1

_COURSE_KEYS = "keys train_set_x, train_set_y, test_set_x, test_set_y and optionally list_classes"
_COURSE_FILE = f"the .h5 file in the course layout ({_COURSE_KEYS})"


def max_upload_bytes(environ=os.environ) -> int:
    """The largest course-layout file accepted, $INITLAB_MAX_UPLOAD_MB (default 200) in bytes: read by the entry
    point that takes uploads (the dashboard), which passes it on as ``max_bytes``."""
    raw = environ.get("INITLAB_MAX_UPLOAD_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        mb = float(raw)
        if not math.isfinite(mb) or mb <= 0:
            raise ValueError(raw)
    except ValueError as e:
        raise DatasetError(f"INITLAB_MAX_UPLOAD_MB is {raw!r}, which is not a positive number of megabytes: "
                           f"set it to e.g. 200, or unset it for the default of {DEFAULT_MAX_UPLOAD_MB}.") from e
    return int(mb * 2**20)


def load_course_h5(train_path: str | Path, test_path: str | Path | None = None, *, name: str | None = None,
                   max_bytes: int = DEFAULT_MAX_BYTES, max_samples: int = DEFAULT_MAX_SAMPLES) -> Dataset:
    """Read course-layout HDF5: one file with both splits, or a train file (train_set_*) and a test file (test_set_*).

    max_bytes (default 200 MB; the dashboard passes `max_upload_bytes`) bounds each file's size and is checked
    before opening; max_samples bounds each split. Any problem raises DatasetError naming the file, the key and the
    fix.
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
    return _read_sources(sources, name or dataset_name(train_path.name), int(max_bytes), max_samples)


def dataset_name(file_name: str) -> str:
    """A dataset's name from its (train) file's: train_catvnoncat.h5 -> catvnoncat."""
    stem = Path(file_name).stem
    return stem[len("train_"):] if stem.startswith("train_") and len(stem) > 6 else stem


def load_uploaded_h5(data: bytes, *, name: str = "upload", test_data: bytes | None = None,
                     max_bytes: int = DEFAULT_MAX_BYTES, max_samples: int = DEFAULT_MAX_SAMPLES,
                     file_name: str | None = None, test_file_name: str | None = None) -> Dataset:
    """Read an uploaded course-layout file from its bytes; same checks as load_course_h5.

    One upload holds both splits, or pass the test file's bytes as test_data (train_set_* in data, test_set_* in
    test_data), as the course ships them. Messages name the files as file_name and test_file_name (the user's
    names for them) when given, else by the dataset's name.
    """
    sources = []
    test_label = f"uploaded file {test_file_name!r}" if test_file_name else f"uploaded test file for {name!r}"
    for label, blob in ((f"uploaded file {file_name or name!r}", data), (test_label, test_data)):
        if blob is None and label is test_label:
            continue
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"load_uploaded_h5 needs bytes, got {type(blob).__name__} (use uploaded.getvalue())")
        sources.append(FileSource(label, data=bytes(blob)))
    return _read_sources(sources, name, int(max_bytes), max_samples)


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
