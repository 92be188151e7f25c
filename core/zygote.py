"""The sandbox's zygote and its children: the processes in which user files are parsed (core.sandbox.parse).

The children come from a zygote: one helper process per server process, started on the first parse as an isolated
interpreter (``python -I``, so neither the working directory nor PYTHONPATH can put another `core` or h5py first),
which imports NumPy, h5py and the jobs' modules once, stays single-threaded (a fork copies only the forking thread),
and forks a fresh child per request; it never opens a file itself. A child costs a fork instead of an interpreter
importing NumPy and h5py (tens of milliseconds instead of a quarter of a second of CPU), and inherits none of the
server's threads or state, nor another request's: it closes every descriptor but its own two.

The checks a child runs on a file are core.untrusted's.
"""

from __future__ import annotations

import ctypes
import importlib
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
import sys
import time

import h5py
import numpy as np

from .untrusted import ParseLimits, UntrustedFileError, size_text

MEMORY_FACTOR = 3  # the child's memory beyond its interpreter: the data, a converted copy and a temporary
ARRAY_DTYPE = re.compile(r"[<>|][biuf][1248]")  # what the parent accepts from a child: plain numbers only
PRELOADED = ("core.data.course_h5",)  # the modules of the jobs `parse` runs (core.untrusted's come with this one)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


# ------------------------------------------------------------------------------------------ in the child process


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


def as_bytes(a: np.ndarray) -> memoryview:
    """The bytes of an array (its buffer, not a copy, when it is contiguous), for any shape, empty ones included."""
    return memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def _send(out, header: dict, arrays: dict[str, np.ndarray]) -> None:
    header = dict(header, arrays=[[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()])
    blob = json.dumps(header).encode()
    out.write(struct.pack("<Q", len(blob)) + blob)
    for a in arrays.values():
        out.write(as_bytes(a))
    out.flush()


def _run_job(request: bytes, out) -> None:
    """In the child: limit itself, run the requested job, write the result to ``out``."""
    module, name, args, label, limits = pickle.loads(request)  # from the parent, through the zygote: trusted
    job = getattr(importlib.import_module(module), name)  # our own code, imported before the limits (preloaded)
    try:
        _limit_resources(limits)
        plain, arrays = job(*args)
        for key, a in arrays.items():
            if not (isinstance(a, np.ndarray) and ARRAY_DTYPE.fullmatch(a.dtype.str)):
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


def main() -> None:
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
