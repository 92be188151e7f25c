"""Readiness of the compute tier: whether a run started now could be computed on a Dask cluster. The server's
GET /ready (app/serving/server.py) answers with it: Streamlit's /_stcore/health only says that the web server answers,
and answers ok while no run can be computed.
"""

from __future__ import annotations

import os

from core.config import ConfigError
from core.limits import Limits

TIMEOUT_SECONDS = 5


def problem(address: str, environ=os.environ) -> str | None:
    """Why no run can be computed on the cluster at ``address`` now, or None if one can: the scheduler cannot be
    reached in a few seconds, or has no worker, or none with the memory a run the app accepts may need
    (INITLAB_MAX_MEMORY_MB). Says no address: the reason may be shown to anyone who asks."""
    from distributed import Client

    try:
        needed = Limits.from_env(environ).max_memory_mb * 2**20
    except ConfigError as e:
        return str(e)
    try:
        # not the process's default client: the run store's stays that
        with Client(address, timeout=TIMEOUT_SECONDS, set_as_default=False) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
    except OSError as e:
        return f"the Dask scheduler cannot be reached ({type(e).__name__})"
    if not workers:
        return "the Dask scheduler has no worker"
    if not any(not w.get("memory_limit") or w["memory_limit"] >= needed for w in workers):
        return (f"no Dask worker has the {needed / 2**20:,.0f} MB a run may need (INITLAB_MAX_MEMORY_MB): "
                "give the workers a larger --memory-limit")
    return None
