"""HDF5 files that come from users -- uploads, run files, course files -- and the checks that refuse hostile ones.

HDF5 is a rich format, and every part of its richness is a way in for a hostile file: a dataset can keep its bytes
in another file on the server (external storage), a link can point into another file (external links) or another
place (soft links), a virtual dataset maps other files' data in (and reading one through a file-like object crashes
the HDF5 library), a few kilobytes of compressed chunks can declare gigabytes, and a damaged file can crash the
library or keep it looping. So no server or CLI process parses such a file itself. `core.sandbox.parse` has it
parsed in a child process that caps its own address space and CPU time before it touches the file, and is killed
after a wall-clock limit. In the child, `open_hdf5` opens the file and `check_tree` walks it without following any
link and refuses, before one byte of data is read, everything listed above and every dtype that is not plain numbers
or text. The child hands back only plain data: a JSON header and the raw bytes of numeric arrays, which the parent
reads into arrays it allocates itself (never a pickle, never an h5py object), so even a child that a crafted file
took over can do no more than send wrong numbers, which the callers validate. A child that crashes, overruns or
hangs becomes an `UntrustedFileError` that names the file as the user knows it, never a server path.

The limited process is sandbox.py's (`parse`, the server's side) and zygote.py's (the zygote and its children).

Limits, from the environment (read on each `parse`):

* ``INITLAB_MAX_PARSE_MB`` (default 512): the most data one file may declare, summed over its datasets and
  attributes, and the most its parsed result may take; the child may use three times this much memory on top of
  what the interpreter itself needs.
* ``INITLAB_MAX_PARSE_SECONDS`` (default 30): CPU seconds the child may spend on the file; it is stopped after
  twice this long plus 10 s on the wall clock from its start (the machine may be busy).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

DEFAULT_PARSE_MB = 512
DEFAULT_PARSE_SECONDS = 30
MAX_OBJECTS = 10_000  # groups, datasets and attributes in one file: a run file of 100 layers has about 500
MAX_TEXT_CHARS = 100_000  # one text attribute (a run's config is about 1,000)
NUMERIC_KINDS = "biuf"


class UntrustedFileError(ValueError):
    """A file was refused or could not be parsed. The message names the file by its label and says what to do.

    ``key`` is the HDF5 path of the object at fault, when there is one.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ParseLimits:
    max_mb: float = DEFAULT_PARSE_MB
    cpu_seconds: int = DEFAULT_PARSE_SECONDS

    @classmethod
    def from_env(cls, environ=os.environ) -> "ParseLimits":
        values = {}
        for name, var, kind in (("max_mb", "INITLAB_MAX_PARSE_MB", float),
                                ("cpu_seconds", "INITLAB_MAX_PARSE_SECONDS", int)):
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if not (math.isfinite(value) and value > 0):
                raise UntrustedFileError(f"{var}={raw!r} must be a positive number; set it to e.g. "
                                         f"{getattr(cls, name)}, or unset it for the default.")
            values[name] = value
        return cls(**values)

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    @property
    def wall_seconds(self) -> float:
        return 2.0 * self.cpu_seconds + 10  # a busy machine; and the interpreter must start first


@dataclass(frozen=True)
class FileSource:
    """A file to parse: a path or uploaded bytes, and its label -- how messages name it (the user's own name)."""

    label: str
    path: str | None = None
    data: bytes | None = None

    def size(self) -> int:
        return Path(self.path).stat().st_size if self.path is not None else len(self.data)


def size_text(n: float) -> str:
    return f"{n / 2**20:,.1f} MB" if n >= 2**20 else f"{int(n):,} bytes"


def short(e: BaseException) -> str:
    """The first line of an exception's message, for a message to a user (at most 200 characters)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def open_hdf5(source: FileSource, what: str) -> h5py.File:
    """Open the file read-only; ``what`` says in the messages which kind of file was expected."""
    target = source.path if source.path is not None else io.BytesIO(source.data)
    try:
        return h5py.File(target, "r")
    except (OSError, ValueError, RuntimeError) as e:  # h5py raises RuntimeError for a truncated superblock
        error = e
    # A writer in SWMR mode (live, or killed) leaves the file flagged open for writing: only a SWMR reader may open
    # it. Try that only then: a SWMR reader retries damaged metadata for a long time (the wall clock stops it).
    if "consistency flags" in str(error):
        if source.data is not None:
            target = io.BytesIO(source.data)
        try:
            return h5py.File(target, "r", swmr=True)
        except (OSError, ValueError, RuntimeError) as e:
            error = e
    if "signature" in str(error):
        raise UntrustedFileError(f"{source.label} is not an HDF5 file. Give {what} itself, not an image, an archive "
                                 "or a renamed text file.")
    raise UntrustedFileError(f"{source.label} could not be opened as HDF5 ({short(error)}); it may be truncated or "
                             f"damaged. Copy or upload the complete file again ({what}).")


def _dtype_problem(dtype: np.dtype) -> str | None:
    """Why a dataset or attribute of this dtype is refused outright, or None for plain numbers and text."""
    if h5py.check_string_dtype(dtype) is not None:
        return None
    if h5py.check_ref_dtype(dtype) is not None:
        return "object references"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "variable-length sequences"
    if h5py.check_enum_dtype(dtype) is not None:
        return "enumerated values"
    if dtype.names is not None:
        return "compound records"
    if dtype.subdtype is not None:
        return "fixed-size arrays per element"
    if dtype.kind not in NUMERIC_KINDS:
        return f"{dtype} values"
    return None


def _declared_bytes(shape: tuple[int, ...] | None, dtype: np.dtype) -> int:
    return 0 if shape is None else math.prod(int(s) for s in shape) * dtype.itemsize


class _Walk:
    """The running totals of `check_tree`."""

    def __init__(self, label: str, max_bytes: int):
        self.label, self.max_bytes = label, max_bytes
        self.objects = self.total = 0
        self.seen: set[int] = set()

    def refuse(self, key: str, what: str, fix: str) -> None:
        raise UntrustedFileError(f"{self.label}: {key} {what}, so the file was not read. {fix}", key=key)

    def count(self, key: str, shape, dtype: np.dtype, kind: str) -> None:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            self.refuse(key, f"is one object too many (a file may hold {MAX_OBJECTS:,} groups, datasets and "
                        "attributes)", "Store fewer, larger arrays.")
        problem = _dtype_problem(dtype)
        if problem is not None:
            self.refuse(key, f"is {kind} of {problem}, not numbers or text",
                        "Store numbers as integer or float arrays (and names as strings).")
        size = _declared_bytes(shape, dtype)
        self.total += size
        if size > self.max_bytes or self.total > self.max_bytes:
            dims = " x ".join(f"{int(s):,}" for s in shape)
            self.refuse(key, f"declares {dims} values of {dtype} ({size_text(size)}; {size_text(self.total)} in the "
                        f"file so far), more than this server's limit of {size_text(self.max_bytes)} per file",
                        "Use fewer or smaller arrays (the operator sets the limit with INITLAB_MAX_PARSE_MB).")

    def attributes(self, obj, key: str) -> None:
        for name in obj.attrs:
            attr = h5py.h5a.open(obj.id, name.encode())
            self.count(f"{key} attribute {name!r}", attr.shape, attr.dtype, "an attribute")

    def dataset(self, ds: h5py.Dataset, key: str) -> None:
        plist = ds.id.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            self.refuse(key, "is a virtual dataset (its data is mapped in from other files)",
                        "Save the data itself in the file (e.g. h5py create_dataset(name, data=array)).")
        if plist.get_external_count() > 0:
            self.refuse(key, "keeps its data in another file (HDF5 external storage)",
                        "Save the data itself in the file (e.g. h5py create_dataset(name, data=array)).")
        self.count(key, ds.shape, ds.dtype, "a dataset")
        if plist.get_layout() == h5py.h5d.CHUNKED:  # a chunk is decompressed whole, whatever the dataset's shape
            chunk = _declared_bytes(plist.get_chunk(), ds.dtype)
            if chunk > self.max_bytes:
                self.refuse(key, f"is stored in chunks of {size_text(chunk)}, more than this server's limit of "
                            f"{size_text(self.max_bytes)}", "Save it again with h5py's default chunking.")


def check_tree(f: h5py.File, label: str, max_bytes: int) -> None:
    """Refuse the file unless every object is reached by hard links only, every dataset keeps plain numbers or
    text in the file itself, and the declared sizes fit ``max_bytes``. Reads no data, follows no link."""
    walk = _Walk(label, max_bytes)
    walk.attributes(f, "the file")
    groups = [(f, "")]
    while groups:
        group, prefix = groups.pop()
        for name in group:
            key = f"{prefix}{name}"
            link = group.id.links.get_info(name.encode()).type
            if link == h5py.h5l.TYPE_SOFT:
                walk.refuse(key, "is a soft link (a second name for another object)",
                            "Store the array itself under this name.")
            if link != h5py.h5l.TYPE_HARD:
                walk.refuse(key, "is a link into another file", "Store the array itself in this file.")
            obj = group[name]
            address = h5py.h5o.get_info(obj.id).addr
            if address in walk.seen:  # a second hard link to an object already checked; it may form a cycle
                continue
            walk.seen.add(address)
            walk.attributes(obj, key)
            if isinstance(obj, h5py.Group):
                groups.append((obj, f"{key}/"))
            elif isinstance(obj, h5py.Dataset):
                walk.dataset(obj, key)


def _text(value) -> str | list | None:
    """An attribute's value as text (or a list of texts), None if it is not text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS + 1]
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.ndim == 1 and len(value) <= 1000:
        texts = [_text(v) for v in value]
        return texts if all(isinstance(t, str) for t in texts) else None
    return None


def read_tree(source: FileSource, what: str, max_bytes: int, marker: tuple[str, str] | None = None,
              skip: tuple[str, ...] = ()):
    """The whole checked file as plain data: ``({"attrs": {path: {name: text}}}, {path: array})``.

    Numeric attributes come back as arrays under ``"<path>@<name>"`` (the root's path is ""), text attributes in the
    header. Every dataset must hold numbers. With a ``marker`` (attribute name, value) a file whose root lacks it
    comes back with its root's attributes only, so a foreign file is recognised without reading its data. Datasets
    under the groups in ``skip`` (paths ending in "/") are checked like the rest but not read.
    """
    with open_hdf5(source, what) as f:
        check_tree(f, source.label, max_bytes)
        texts: dict[str, dict] = {}
        arrays: dict[str, np.ndarray] = {}

        def take_attrs(obj, path: str) -> None:
            for name, value in obj.attrs.items():
                text = _text(value)
                if text is not None:
                    texts.setdefault(path, {})[name] = text
                elif isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in NUMERIC_KINDS:
                    arrays[f"{path}@{name}"] = np.asarray(value)

        take_attrs(f, "")
        if marker is not None and texts.get("", {}).get(marker[0]) != marker[1]:
            return {"attrs": texts}, arrays

        def visit(path: str, obj) -> None:
            take_attrs(obj, path)
            if isinstance(obj, h5py.Dataset) and not path.startswith(skip):
                if obj.dtype.kind not in NUMERIC_KINDS:
                    raise UntrustedFileError(f"{source.label}: {path} holds {obj.dtype} values where numbers are "
                                             f"expected, so the file was not read. Give {what}.", key=path)
                arrays[path] = np.asarray(obj[()]) if obj.shape is not None else np.zeros(0)

        f.visititems(visit)  # safe now: check_tree found hard links only
        return {"attrs": texts}, arrays
