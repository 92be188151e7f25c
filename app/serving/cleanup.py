"""Files a server process is writing, removed when it stops (SIGTERM, or any orderly exit) so none is left behind.

Under Streamlit the main thread's signal handlers are Streamlit's, and app code never runs on the main thread, where
Python lets a handler be set: Streamlit's SIGTERM handler stops the server and the interpreter exits normally, so
an `atexit` hook does the removing. Where the registering code does run on the main thread (a script, the tests) a
SIGTERM handler is chained in front of the one it finds: it removes the files, then hands the signal on, so the
process still ends as the previous handler (or the default: killed by SIGTERM) would have ended it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()
_paths: dict[Path, None] = {}  # insertion-ordered set
_installed = False


def remove_at_exit(*paths: str | Path) -> None:
    """Remove these files (or folders) if the process stops before `forget` is called for them."""
    _install()
    with _lock:
        _paths.update(dict.fromkeys(Path(p) for p in paths))


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
    """Remove every registered path now (what the exit hooks call)."""
    with _lock:
        paths = list(_paths)
        _paths.clear()
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
