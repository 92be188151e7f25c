"""Readiness of the compute tier: `python -m app.serving.ready` exits 0 when a run started now could be computed,
else 1 with the reason on stderr: the scheduler of $INITLAB_DASK_SCHEDULER cannot be reached in a few seconds, or
has no worker, or none with the memory a run the app accepts may need (INITLAB_MAX_MEMORY_MB). Streamlit's
/_stcore/health only says that the web server answers, and answers ok while no run can be computed.

A command, not an HTTP endpoint in the app: Streamlit owns the app's HTTP server, a second listener per replica
would be one more port to publish and protect, and what is checked is the shared scheduler, which the command reaches
itself: Docker's and compose's HEALTHCHECK, or a Kubernetes exec probe, run it in the app's container. A server that
starts its own cluster (no $INITLAB_DASK_SCHEDULER) starts it on its first page: there is nothing to check before,
so the command says so and exits 2 (a usage error: this check is for the shared-cluster deployment).
"""

from __future__ import annotations

import os
import sys

from app.serving.cluster import SCHEDULER_ENV
from core.config import ConfigError
from core.limits import Limits

TIMEOUT_SECONDS = 5


def problem(address: str, environ=os.environ) -> str | None:
    """Why no run can be computed on the cluster at ``address`` now, or None if one can."""
    from distributed import Client

    try:
        needed = Limits.from_env(environ).max_memory_mb * 2**20
    except ConfigError as e:
        return str(e)
    try:
        with Client(address, timeout=TIMEOUT_SECONDS) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
    except OSError as e:
        return f"the Dask scheduler at {address} cannot be reached ({type(e).__name__})"
    if not workers:
        return f"the Dask scheduler at {address} has no worker"
    if not any(not w.get("memory_limit") or w["memory_limit"] >= needed for w in workers):
        return (f"no worker of {address} has the {needed / 2**20:,.0f} MB a run may need (INITLAB_MAX_MEMORY_MB): "
                "give the workers a larger --memory-limit")
    return None


def main(environ=os.environ) -> int:
    address = environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        print(f"{SCHEDULER_ENV} is not set: this server starts its own Dask cluster on its first page, so there is "
              "no shared cluster to check; use Streamlit's /_stcore/health", file=sys.stderr)
        return 2
    reason = problem(address, environ)
    if reason is not None:
        print(f"not ready: {reason}", file=sys.stderr)
        return 1
    print("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
