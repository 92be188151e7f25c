"""This server process's one run store (store.py), built on first use."""

from __future__ import annotations

import os
import threading

from app.presets import preset_configs
from app.serving.cache import RunCache
from app.serving.limits import ServerLimits
from app.serving.store import LIVE_DIR, PRESETS_ENV, RunStore
from core.data import default_data_dir

_store: RunStore | None = None
_store_lock = threading.Lock()


def run_store() -> RunStore:
    """This server process's one RunStore, built on first use: it connects to the Dask cluster, or starts one
    (cluster.py), and reads $INITLAB_CACHE_* and the server's caps; a malformed setting, or a cluster that cannot
    be reached, raises ConfigError, and the next call tries again. With a disk cache, the presets' missing runs are
    then computed in the background. Not an st.cache_resource: Streamlit empties those for every session on a
    "clear caches" request, which any client can send over its WebSocket whatever the page's menu shows, and a
    second store would lose the runs in progress to their students and start a second cluster beside the first."""
    global _store
    with _store_lock:
        if _store is None:
            from app.serving import cluster

            cache = RunCache.from_env()
            policy = ServerLimits.from_env()
            workers_mb = None if os.environ.get(cluster.SCHEDULER_ENV) else cluster.sizes_from_env()[1]
            connection, own_folder = cluster.connect()
            folder = own_folder if cache is None else cache.directory / LIVE_DIR
            protected = preset_configs(default_data_dir())
            _store = RunStore(connection.client, folder, cache=cache, policy=policy, protected=protected,
                              worker_mb=workers_mb, data_dir=default_data_dir())
            _store.cluster = connection  # held for as long as the store: its processes are stopped at exit
            if cache is not None and os.environ.get(PRESETS_ENV, "1") != "0":
                threading.Thread(target=_store.warm_presets, args=(protected, default_data_dir()),
                                 name="initlab-presets", daemon=True).start()
        return _store
