"""Parsing a user's file in a separate, limited process: the server's side (`parse`).

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

At most `MAX_CONCURRENT_PARSES` files are parsed at once per process; more wait their turn. The first parse of a
process also starts the zygote (about a quarter of a second of CPU, as each parse cost before it); figures in
tests/benchmarks/bench_parse.py and the README.
The zygote and its children are core.zygote's; the checks they run on a file core.untrusted's.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import math
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .untrusted import ParseLimits, UntrustedFileError
from .zygote import ARRAY_DTYPE, MEMORY_FACTOR, as_bytes

MAX_CONCURRENT_PARSES = 2  # one per core of a small server: a class uploading at once queues instead of swapping
MAX_HEADER_BYTES = 16 * 2**20
ROOT = str(Path(__file__).resolve().parents[1])  # where the child finds the core package
ZYGOTE = f"import sys; sys.path.insert(0, {ROOT!r}); from core.zygote import main; main()"
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_PARSES)


# ----------------------------------------------------------------------------------------- in the server process


def _read_exactly(stream, buffer) -> bool:
    """Fill ``buffer`` from the pipe; False if the child's end closed first."""
    view, filled = (as_bytes(buffer) if isinstance(buffer, np.ndarray) else memoryview(buffer)), 0
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
        if not (isinstance(name, str) and isinstance(dtype, str) and ARRAY_DTYPE.fullmatch(dtype)
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
