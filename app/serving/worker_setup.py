"""Loaded by every Dask worker as it starts (``dask worker --preload app.serving.worker_setup``): the engine's
kernels are compiled (or loaded from numba's on-disk cache) in the background, so that a fresh worker's first run
does not wait for them (about 14 s of compiling with an empty cache, measured on a 2-core machine)."""

from __future__ import annotations

import threading

from core.warm import warm_kernels


def dask_setup(worker) -> None:
    threading.Thread(target=warm_kernels, name="warm-kernels", daemon=True).start()
