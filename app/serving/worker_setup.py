"""Loaded by every Dask worker as it starts (``dask worker --preload app.serving.worker_setup``).

- The engine's kernels are compiled (or loaded from numba's on-disk cache) before the worker joins its scheduler,
  so that no run is sent to a worker still compiling (about 6 s of compiling with an empty cache on a 2-core
  machine): a run there waited for the compiler's lock, and the compiling thread, holding the GIL, stalled the
  worker's event loop for seconds (a new server's first chart took 73 s at load 12). In a thread the worker's event
  loop awaits, so it goes on answering its nanny. One worker of the machine at a time, so that with an empty cache
  the first compiles and the others load its work; a server waits for its first worker (cluster.py).
- glibc's allocator gets back the thresholds it would reach by itself: Dask's nanny sets MALLOC_TRIM_THRESHOLD_
  (to hand freed memory back to the system), which also switches off glibc's adaptive mmap threshold, so every
  array of a step over 128 KB is mapped and zero-filled anew each step (measured on the seed question: 15-30% more
  CPU per step than the same run outside Dask). Arrays up to 32 MB are kept in the heap; freed memory over 128 MB
  is still returned.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import logging
import tempfile
from pathlib import Path

import dask

from core.warm import warm_kernels

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for the adaptive threshold on 64-bit
TRIM_THRESHOLD = 128 * 2**20

log = logging.getLogger(__name__)


def tune_allocator() -> bool:
    """Set the thresholds above through glibc's mallopt; False where there is no glibc (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def warm_in_turn() -> None:
    """warm_kernels, while holding a lock every worker of this machine takes (several workers compiling the same
    kernels at once would each pay the whole cost, on the same cores)."""
    # in Dask's temporary folder: a server's own cluster has one of its own, removed with it (cluster.py)
    folder = Path(dask.config.get("temporary-directory", None) or tempfile.gettempdir())
    with open(folder / "initlab-warm-kernels.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        warm_kernels()


async def dask_setup(worker) -> None:
    if not tune_allocator():
        log.info("no glibc mallopt here: the allocator keeps Dask's settings")
    await asyncio.to_thread(warm_in_turn)
