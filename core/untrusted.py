"""Parsing HDF5 files that come from users -- uploads, run files, course files -- in a separate, limited process.

HDF5 is a rich format, and every part of its richness is a way in for a hostile file: a dataset can keep its bytes
in another file on the server (external storage), a link can point into another file (external links) or another
place (soft links), a virtual dataset maps other files' data in (and reading one through a file-like object
crashes the HDF5 library), a few kilobytes of compressed chunks can declare gigabytes, and a damaged file can
crash the library or keep it looping. So no server or CLI process parses such a file itself. `parse` has it parsed
in a child process that caps its own address space and CPU time before it touches the file, and is killed after a
wall-clock limit. In the child, `open_hdf5` opens the file and `check_tree` walks it without following any link and
refuses, before one byte of data is read, everything listed above and every dtype that is not plain numbers or text.
The child hands back only plain data: a JSON header and the raw bytes of numeric arrays, which the parent reads into
arrays it allocates itself (never a pickle, never an h5py object), so even a child that a crafted file took over can
do no more than send wrong numbers, which the callers validate. A child that crashes, overruns or hangs becomes an
`UntrustedFileError` that names the file as the user knows it, never a server path.

The children come from a zygote: one helper process per server process, started on the first parse as an isolated
interpreter (``python -I``, so neither the working directory nor PYTHONPATH can put another `core` or h5py first),
which imports NumPy, h5py and the jobs' modules once, stays single-threaded (a fork copies only the forking thread),
and forks a fresh child per request; it never opens a file itself. A child costs a fork instead of an interpreter
importing NumPy and h5py (tens of milliseconds instead of a quarter of a second of CPU), and inherits none of the
server's threads or state, nor another request's: it closes every descriptor but its own two.

How a request travels, and why so: the server holds one end of a socketpair (SOCK_SEQPACKET), the zygote's stdin
the other. Per request the server sends one message, the wall-clock limit, carrying three descriptors: a memfd with
the pickled request (the job, its arguments -- uploaded bytes included -- and the limits: trusted data from the
server; a named file is passed by its path, as before), the write end of a pipe for the child's answer, and one end
of a socketpair on which the zygote reports the child's pid when it starts and its exit code once it has reaped it.
Each message arrives whole with its descriptors, so threads send without a lock and nothing multiplexes answers:
every parse has its own pipe and socket, and the child's bytes reach the server without passing through the zygote
(one shared pipe would need a lock, request ids and a thread routing the answers, each copied twice).
The zygote kills a child at its deadline (its own child, not yet reaped: the pid cannot have been reused) and reaps
every child on SIGCHLD, so none is left a zombie. A child dies with the zygote (PR_SET_PDEATHSIG), so none is left
an orphan. When the server's end of the socket closes -- the server exited, however it died -- the zygote kills its
children and exits. A zygote that died is found so by the next parse (its process has exited, or the message
cannot be sent, or no child was reported started) and started again; a parse whose child was running when the
zygote died is an error, not retried: the file may be what killed it.

Limits, from the environment (read on each `parse`):

* ``INITLAB_MAX_PARSE_MB`` (default 512): the most data one file may declare, summed over its datasets and
  attributes, and the most its parsed result may take; the child may use three times this much memory on top of
  what the interpreter itself needs.
* ``INITLAB_MAX_PARSE_SECONDS`` (default 30): CPU seconds the child may spend on the file; it is stopped after
  twice this long plus 10 s on the wall clock from its start (the machine may be busy).

At most `MAX_CONCURRENT_PARSES` files are parsed at once per process; more wait their turn. The first parse of a
process also starts the zygote (about a quarter of a second of CPU, as each parse cost before it); figures in
tests/benchmarks/bench_parse.py and the README.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import importlib
import io
import json
import math
import os
import pickle
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

DEFAULT_PARSE_MB = 512
DEFAULT_PARSE_SECONDS = 30
MEMORY_FACTOR = 3  # the child's memory beyond its interpreter: the data, a converted copy and a temporary
MAX_CONCURRENT_PARSES = 2  # one per core of a small server: a class uploading at once queues instead of swapping
MAX_OBJECTS = 10_000  # groups, datasets and attributes in one file: a run file of 100 layers has about 500
MAX_HEADER_BYTES = 16 * 2**20
MAX_TEXT_CHARS = 100_000  # one text attribute (a run's config is about 1,000)
NUMERIC_KINDS = "biuf"
_ARRAY_DTYPE = re.compile(r"[<>|][biuf][1248]")  # what the parent accepts from a child: plain numbers only
ROOT = str(Path(__file__).resolve().parents[1])  # where the child finds the core package
ZYGOTE = f"import sys; sys.path.insert(0, {ROOT!r}); from core.untrusted import _zygote_main; _zygote_main()"
PRELOADED = ("core.data.course_h5",)  # the modules of the jobs `parse` runs (core.untrusted's own come with it)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_PARSES)


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


# ------------------------------------------------------------------------------------------ in the child process


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


def read_tree(source: FileSource, what: str, max_bytes: int, marker: tuple[str, str] | None = None):
    """The whole checked file as plain data: ``({"attrs": {path: {name: text}}}, {path: array})``.

    Numeric attributes come back as arrays under ``"<path>@<name>"`` (the root's path is ""), text attributes in the
    header. Every dataset must hold numbers. With a ``marker`` (attribute name, value) a file whose root lacks it
    comes back with its root's attributes only, so a foreign file is recognised without reading its data.
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
            if isinstance(obj, h5py.Dataset):
                if obj.dtype.kind not in NUMERIC_KINDS:
                    raise UntrustedFileError(f"{source.label}: {path} holds {obj.dtype} values where numbers are "
                                             f"expected, so the file was not read. Give {what}.", key=path)
                arrays[path] = np.asarray(obj[()]) if obj.shape is not None else np.zeros(0)

        f.visititems(visit)  # safe now: check_tree found hard links only
        return {"attrs": texts}, arrays


def _limit_resources(limits: ParseLimits) -> None:
    with open("/proc/self/statm") as statm:  # what the interpreter and its libraries already map
        baseline = int(statm.read().split()[0]) * resource.getpagesize()
    memory = baseline + MEMORY_FACTOR * limits.max_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    used = resource.getrusage(resource.RUSAGE_SELF)  # starting the interpreter does not count
    cpu = math.ceil(used.ru_utime + used.ru_stime + limits.cpu_seconds)  # RLIMIT_CPU takes whole seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the parser writes no file...
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ...and an attempt fails with an error instead of killing it
    while h5py.h5pl.size():  # no compression plugins loaded from the disk at a file's request
        h5py.h5pl.remove(0)


def _as_bytes(a: np.ndarray) -> memoryview:
    """The bytes of an array (its buffer, not a copy, when it is contiguous), for any shape, empty ones included."""
    return memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def _send(out, header: dict, arrays: dict[str, np.ndarray]) -> None:
    header = dict(header, arrays=[[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()])
    blob = json.dumps(header).encode()
    out.write(struct.pack("<Q", len(blob)) + blob)
    for a in arrays.values():
        out.write(_as_bytes(a))
    out.flush()


def _run_job(request: bytes, out) -> None:
    """In the child: limit itself, run the requested job, write the result to ``out``."""
    module, name, args, label, limits = pickle.loads(request)  # from the parent, through the zygote: trusted
    job = getattr(importlib.import_module(module), name)  # our own code, imported before the limits (preloaded)
    try:
        _limit_resources(limits)
        plain, arrays = job(*args)
        for key, a in arrays.items():
            if not (isinstance(a, np.ndarray) and _ARRAY_DTYPE.fullmatch(a.dtype.str)):
                raise UntrustedFileError(f"{label}: {key} holds {getattr(a, 'dtype', type(a).__name__)} values "
                                         "where numbers are expected, so the file was not read.", key=key)
        _send(out, {"plain": plain}, arrays)
    except UntrustedFileError as e:
        _send(out, {"error": str(e), "key": e.key}, {})
    except MemoryError:
        _send(out, {"error": f"{label} needs more memory to read than this server allows for one file "
                             f"({MEMORY_FACTOR} x {size_text(limits.max_bytes)}), so it was not loaded. Use a "
                             "smaller file (the operator sets the limit with INITLAB_MAX_PARSE_MB)."}, {})
    except Exception as e:  # noqa: BLE001 -- anything else a crafted file provokes; its text may quote the file
        _send(out, {"error": f"{label} could not be read ({type(e).__name__}); the file is damaged or not the "
                             "kind of file expected here."}, {})


# ------------------------------------------------------------------------------------------ in the zygote process


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:  # the descriptor listdir itself used, closed already
                pass


def _child(zygote: int, request_fd: int, result_fd: int) -> int:
    """In a child just forked from the zygote: hold only its two descriptors, run the job; the exit code."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # A zygote that dies (killed, say) takes its children with it, even one that died before this call:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:
        return 1
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the zygote's stdin is its control socket: not the child's
    _close_fds_except({request_fd, result_fd})  # other requests' pipes and sockets: a child sees only its own
    with os.fdopen(request_fd, "rb") as request, os.fdopen(result_fd, "wb") as out:
        _run_job(request.read(), out)
    return 0


def _tell(status: socket.socket, message: dict) -> None:
    """One line of news about a child, to the parent that asked for it; a parent that gave up is not waited for."""
    try:
        status.send(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _zygote_main() -> None:
    """The zygote: fork a child per request that comes on stdin (a socket), kill it at its deadline, reap it, and
    tell the parent its exit; exit, its children killed, once the parent's end of the socket closes."""
    os.dup2(2, 1)  # a stray print goes to the log
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal is the server's to handle
    for module in PRELOADED:
        importlib.import_module(module)
    if len(os.listdir("/proc/self/task")) != 1:  # a fork copies one thread: a lock another one held stays held
        sys.exit("core.untrusted: the zygote started a thread while importing; it must be single-threaded")
    control, zygote = socket.socket(fileno=0), os.getpid()
    wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wakeup_w)  # SIGCHLD wakes the poll below
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wakeup_r, select.POLLIN)
    children: dict[int, list] = {}  # pid: [status socket, deadline, killed at the deadline]
    while True:
        deadline = min((c[1] for c in children.values() if not c[2]), default=None)
        timeout = None if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
        for fd, _ in poller.poll(timeout):
            if fd == wakeup_r:
                while True:
                    try:
                        os.read(wakeup_r, 512)
                    except BlockingIOError:
                        break
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, 1024, 3)
            except OSError:
                message, fds = b"", []
            if not message:  # the parent exited (or retired this zygote)
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                for pid in children:
                    os.waitpid(pid, 0)
                return
            request_fd, result_fd, status_fd = fds
            status = socket.socket(fileno=status_fd)
            status.setblocking(False)  # the zygote never waits for a parent
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child(zygote, request_fd, result_fd)
                finally:
                    os._exit(code)
            os.close(request_fd)
            os.close(result_fd)
            children[pid] = [status, time.monotonic() + json.loads(message)["wall_seconds"], False]
            _tell(status, {"pid": pid})
        now = time.monotonic()
        for pid, child in children.items():
            if child[1] <= now and not child[2]:
                os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still this child's
                child[2] = True
        while children:
            pid, code = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            status, _, killed = children.pop(pid)
            _tell(status, {"exit": os.waitstatus_to_exitcode(code), "timed_out": killed})
            status.close()


# ----------------------------------------------------------------------------------------- in the server process


def _read_exactly(stream, buffer) -> bool:
    """Fill ``buffer`` from the pipe; False if the child's end closed first."""
    view, filled = (_as_bytes(buffer) if isinstance(buffer, np.ndarray) else memoryview(buffer)), 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            return False
        filled += n
    return True


def _receive(stream, label: str, limits: ParseLimits) -> dict | None:
    """The child's header and arrays, checked; None if the child died before sending everything.

    The checks hold even against a child that a crafted file took over: it can send wrong numbers, nothing else."""
    def malformed(what: str) -> UntrustedFileError:
        return UntrustedFileError(f"{label} was refused: its reader sent {what}; the file is crafted or damaged.")

    size = bytearray(8)
    if not _read_exactly(stream, size):
        return None
    (length,) = struct.unpack("<Q", size)
    if length > MAX_HEADER_BYTES:
        raise malformed("a header too large to be real")
    blob = bytearray(length)
    if not _read_exactly(stream, blob):
        return None
    try:
        header = json.loads(blob)
    except ValueError:
        raise malformed("a malformed answer") from None
    if not (isinstance(header, dict) and isinstance(header.get("arrays"), list)
            and (isinstance(header.get("error"), str) or isinstance(header.get("plain"), dict))):
        raise malformed("a malformed answer")
    arrays, total = {}, 0
    for entry in header.pop("arrays"):
        name, dtype, shape = entry if isinstance(entry, list) and len(entry) == 3 else (None, None, None)
        if not (isinstance(name, str) and isinstance(dtype, str) and _ARRAY_DTYPE.fullmatch(dtype)
                and isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise malformed("something other than numbers")
        dtype = np.dtype(dtype)
        total += math.prod(shape) * dtype.itemsize
        if total > MEMORY_FACTOR * limits.max_bytes:
            raise malformed("more data than the limit allows")
        array = np.empty(shape, dtype)
        if not _read_exactly(stream, array):
            return None
        arrays[name] = array
    header["arrays"] = arrays
    return header


class _Zygote:
    """The server's end of a running zygote."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # a parser computes nothing in
        with theirs:  # parallel, and the zygote must stay single-threaded to fork safely
            self.process = subprocess.Popen([sys.executable, "-I", "-c", ZYGOTE], stdin=theirs, env=env)
        self.control = ours

    def stop(self) -> None:
        """Close its socket (so it kills its children and exits), and reap it; killed if it does not exit."""
        self.control.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def run(self, request: bytes, limits: ParseLimits, label: str) -> tuple[dict | None, dict]:
        """Have a child run ``request``: (its checked answer, or None and what the zygote said: ``pid`` once the
        child started, its ``exit`` code and whether it was ``timed_out`` once it ended; nothing if the zygote died
        first)."""
        request_fd = os.memfd_create("initlab-parse-request")  # the request, uploaded bytes included
        result_r, result_w = os.pipe()
        status, status_theirs = socket.socketpair()
        try:
            with os.fdopen(request_fd, "wb", closefd=False) as f:
                f.write(request)
            os.lseek(request_fd, 0, os.SEEK_SET)
            try:  # a 1 MB pipe moves the arrays in far fewer context switches than the default 64 kB (Linux only)
                fcntl.fcntl(result_r, F_SETPIPE_SZ, 2**20)
            except OSError:
                pass
            socket.send_fds(self.control, [json.dumps({"wall_seconds": limits.wall_seconds}).encode()],
                            [request_fd, result_w, status_theirs.fileno()])
        except OSError:  # the zygote is gone: it holds none of the descriptors, and no child started
            os.close(result_r)
            status.close()
            return None, {}
        finally:  # the child's copies are its only ones: its end closes when it exits
            os.close(request_fd)
            os.close(result_w)
            status_theirs.close()
        with os.fdopen(result_r, "rb") as result, status:
            header = _receive(result, label, limits)
            if header is not None:
                return header, {}  # the zygote reaps the child, which exits on its own
            news = b""
            while chunk := status.recv(4096):  # until the zygote, having reaped the child, closes its end
                news += chunk
        return None, {k: v for line in news.splitlines() for k, v in json.loads(line).items()}


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _running_zygote() -> _Zygote:
    """This process's zygote, started if there is none or it died."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or _zygote.process.poll() is not None:
            if _zygote is None:
                atexit.register(_stop_zygote)
            else:
                _zygote.control.close()
            _zygote = _Zygote()
        return _zygote


def _retire(zygote: _Zygote) -> None:
    """Stop a zygote that failed a request, unless another thread replaced it already."""
    global _zygote
    with _zygote_lock:
        if _zygote is zygote:
            _zygote = None
            zygote.process.kill()
            zygote.stop()


def _stop_zygote() -> None:
    global _zygote
    with _zygote_lock:
        if _zygote is not None:
            _zygote.stop()
            _zygote = None


def parse(job: Callable, *args, label: str, limits: ParseLimits | None = None):
    """Run ``job(*args)`` in a limited child process and return its ``(plain, arrays)``.

    ``job`` must be a module-level function of a core module that returns JSON-able plain data and a dict of
    numeric arrays, and raises UntrustedFileError for a file it refuses. Raises UntrustedFileError (naming
    ``label``) for a refusal, a crash, a timeout or memory exhaustion of the child.
    """
    limits = limits or ParseLimits.from_env()
    request = pickle.dumps((job.__module__, job.__name__, args, label, limits))
    with _SLOTS:
        for _ in range(2):  # a zygote killed between two parses is found dead by the next one, which starts anew
            zygote = _running_zygote()
            header, news = zygote.run(request, limits, label)
            if header is not None or "pid" in news:
                break
            _retire(zygote)
    if header is not None:
        if "error" in header:
            raise UntrustedFileError(header["error"], key=header.get("key"))
        return header["plain"], header["arrays"]
    if "pid" not in news:
        raise UntrustedFileError(f"The server's file reader could not be started, so {label} was not read. Try "
                                 "again in a moment; if it keeps failing, tell the operator (the server's log says "
                                 "why).")
    if "exit" not in news:
        raise UntrustedFileError(f"The server's file reader was stopped while reading {label}, so nothing was "
                                 "loaded. Try again; if it happens again, the file is damaged or crafted.")
    if news["timed_out"]:
        raise UntrustedFileError(f"{label} took longer than {limits.wall_seconds:g} s to read, so reading it was "
                                 "stopped; the file is damaged or crafted to keep the reader busy. Nothing was loaded.")
    code = news["exit"]
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        raise UntrustedFileError(f"{label} took more than {limits.cpu_seconds} s of computing to read, so reading it "
                                 "was stopped; the file is damaged or crafted. Nothing was loaded.")
    how = signal.Signals(-code).name if code < 0 else f"exit code {code}"
    raise UntrustedFileError(f"{label} made the HDF5 reader crash ({how}), so nothing was loaded: the file is damaged "
                             "or crafted. Save the data again with h5py as plain datasets in the file itself.")
