"""Files a server process is writing, removed when it stops (SIGTERM, or any orderly exit) so none is left behind;
and the processes it started (its Dask scheduler and workers), stopped then by their process ids. A folder of a
server's own that a kill (SIGKILL, an out-of-memory kill, a lost machine) left behind is found by the next server
that starts beside it: its owner's lock is gone with the process (`claim`, `remove_abandoned`).

Under Streamlit the main thread's signal handlers are Streamlit's, and app code never runs on the main thread, where
Python lets a handler be set: Streamlit's SIGTERM handler stops the server and the interpreter exits normally, so
an `atexit` hook does the removing. Where the registering code does run on the main thread (a script, the tests) a
SIGTERM handler is chained in front of the one it finds: it removes the files, then hands the signal on, so the
process still ends as the previous handler (or the default: killed by SIGTERM) would have ended it.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()
_paths: dict[Path, None] = {}  # insertion-ordered set
_processes: list[subprocess.Popen] = []
_closers: list = []  # called before the processes are stopped (a Dask client, which would try to reconnect)
_installed = False
_claims: list = []  # the open owner files of the folders this process claimed: their locks last as long as it
OWNER_FILE = ".owner"


def remove_at_exit(*paths: str | Path) -> None:
    """Remove these files (or folders) if the process stops before `forget` is called for them."""
    _install()
    with _lock:
        _paths.update(dict.fromkeys(Path(p) for p in paths))


def stop_at_exit(processes: list[subprocess.Popen], close=None) -> None:
    """Stop these processes (each the leader of its own session) when this process stops, after calling ``close``
    (what talks to them: closed first, it does not log their going as an error)."""
    _install()
    with _lock:
        _processes.extend(processes)
        if close is not None:
            _closers.append(close)


def stop_processes(processes: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM to each process's group, the last started first (workers before their scheduler); SIGKILL to a
    group still there after ``grace`` seconds. By process id: never by name, which other users' processes share."""
    for process in reversed(processes):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for process in reversed(processes):
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def claim(folder: Path) -> None:
    """Lock ``folder``'s owner file for the rest of this process. The kernel drops the lock when the process ends,
    however it ends: `remove_abandoned` then knows the folder's owner is gone."""
    handle = open(folder / OWNER_FILE, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    _claims.append(handle)


def remove_abandoned(parent: Path, prefix: str, unclaimed_seconds: float) -> list[Path]:
    """Remove the folders ``parent/<prefix>*`` whose owner has ended (its owner file is not locked), and those
    without an owner file unchanged for ``unclaimed_seconds`` (their server was killed before it claimed them).
    Anything else there (a file, a link) is left alone. Returns what was removed."""
    removed = []
    for folder in parent.glob(f"{prefix}*"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            with open(folder / OWNER_FILE, "r+") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while the owner lives
        except FileNotFoundError:
            if time.time() - folder.stat().st_mtime < unclaimed_seconds:
                continue
        except OSError:  # locked: its server runs
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def forget(*paths: str | Path) -> None:
    with _lock:
        for p in paths:
            _paths.pop(Path(p), None)


@contextmanager
def removed_at_exit(*paths: str | Path):
    """`remove_at_exit` for the duration of the block."""
    remove_at_exit(*paths)
    try:
        yield
    finally:
        forget(*paths)


def remove_registered() -> None:
    """Stop every registered process and remove every registered path now (what the exit hooks call)."""
    with _lock:
        paths, processes, closers = list(_paths), list(_processes), list(_closers)
        _paths.clear()
        _processes.clear()
        _closers.clear()
    for close in closers:
        try:
            close()
        except Exception:  # stopping anyway: what it was closing goes with the processes
            pass
    stop_processes(processes)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # gone or not ours to remove: nothing more to do at exit


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(remove_registered)
    if threading.current_thread() is not threading.main_thread():
        return  # signals are the main thread's (Streamlit's): its orderly exit runs the atexit hook
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN or previous is None:
        return  # SIGTERM ignored, or handled outside Python: not ours to change

    def on_sigterm(signum, frame):
        remove_registered()
        if callable(previous):
            previous(signum, frame)
        else:  # the default: die of SIGTERM, as the process would have without us
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
