"""This server process's one run store, started with the server rather than by its first page, and its readiness.

`streamlit run app/main.py` serves app/main.py's `st.App`, whose `lifespan` calls `start_in_background` as the
server starts: the run store connects to $INITLAB_DASK_SCHEDULER, or starts this server's own Dask cluster (its
workers compile the engine's kernels as they start: app/serving/worker_setup.py), in a thread, so the web server and
its health route answer at once and the first student finds the workers warm; then the page's modules are
imported (`load_page`: a second of the first page's run otherwise), and the presets' probes are computed
(`warm_probes`), so that a class picking a preset finds its charts ready. A start that fails is logged, and the
first page tries again and shows the message (`run_store` raises it there). At shutdown the store is closed and the
cluster this server started is stopped, before the interpreter's exit (cleanup.py's exit hook then has nothing left
to stop).

`readiness` answers GET /ready: 200 "ready" when a run started now could be computed (the store is up and one of its
cluster's workers has the memory a run may need: app/serving/ready.py), else 503 with the reason in one line.
Streamlit's /_stcore/health only says that the web server answers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from app.presets import preset_configs
from app.serving import cleanup, ready
from app.serving.cache import ABANDONED_SECONDS, RunCache
from app.serving.limits import ServerLimits
from app.serving.store import RunStore
from core.config import ConfigError
from core.data import default_data_dir, load_dataset
from core.limits import Limits

READY_PATH = "/ready"  # outside Streamlit's reserved /_stcore/, /media/, /component/, /static/
# /ready's body meanwhile (200: a run can start)
WARMING = "ready; loading the page's modules and computing the presets' probes"
READY_REUSE_SECONDS = 2.0  # a readiness answer serves every probe in this long: a flood of probes is one check
PRESETS_ENV = "INITLAB_PRECOMPUTE_PRESETS"  # "0": compute nothing at start (tests); "probes": their probes, no runs
OWN_LIVE_PREFIX = "server-"  # .live/server-*: the run files of a server with a Dask cluster of its own (live_folder)

log = logging.getLogger(__name__)

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
            folder = own_folder if cache is None else live_folder(cache, shared_cluster=own_folder is None)
            protected = preset_configs(default_data_dir())
            _store = RunStore(connection.client, folder, cache=cache, policy=policy, protected=protected,
                              worker_mb=workers_mb, data_dir=default_data_dir())
            _store.cluster = connection  # held for as long as the store: its processes are stopped at exit
            if cache is not None and precompute() not in ("0", "probes"):
                threading.Thread(target=_store.warm_presets, args=(protected, default_data_dir()),
                                 name="initlab-presets", daemon=True).start()
        return _store


def live_folder(cache: RunCache, shared_cluster: bool) -> Path:
    """Where this server's runs write their files with a disk cache: inside the cache's folder, from where a run
    that ends is moved into the cache by an atomic rename. A scheduler shared by every replica runs each config once
    (one task per run key), so its runs share one folder. A server with a cluster of its own gets a folder of its
    own there, removed when it stops: servers that share a cache but not a scheduler each train a config asked of
    both, and wrote the same run file at once (seen with two replicas and a cleared cache: every run failed). The
    folder of a server that was killed is removed by the next one to start (cleanup.remove_abandoned): it counted
    towards the cache's cap for ever."""
    if shared_cluster:
        return cache.live
    for folder in cleanup.remove_abandoned(cache.live, OWN_LIVE_PREFIX, ABANDONED_SECONDS):
        log.info("removed %s, left by a server that was killed", folder.name)
    own = Path(tempfile.mkdtemp(prefix=OWN_LIVE_PREFIX, dir=cache.live))
    cleanup.claim(own)
    cleanup.remove_at_exit(own)
    return own


def precompute() -> str:
    """What the server computes as it starts ($INITLAB_PRECOMPUTE_PRESETS): "0" nothing; "probes" the presets'
    probes only; anything else (default "1") their probes and, with a disk cache, their missing runs."""
    return os.environ.get(PRESETS_ENV, "1")


def close_run_store() -> None:
    """Close the store, if one was built, and its client (the next `run_store` builds a new one)."""
    global _store
    with _store_lock:  # waits for a start in progress: what it starts is then closed, not left running
        store, _store = _store, None
    if store is not None:
        store.close()
        store.client.close()


def load_page() -> None:
    """Import the page's modules (app/page.py and all it imports: the tabs, the charts, Plotly, pandas): a second
    of CPU that the first student's page would otherwise spend before it drew anything. Streamlit executes the page
    afresh for every run, but its imports are found loaded. Then the scripts a page loads are compressed
    (app/serving/assets.py): the first students do not wait for that either. And Streamlit's one question of a
    process, asked at its first element, whether it runs in a REPL, is asked here (`ask_streamlits_repl_question`)."""
    importlib.import_module("app.page")
    importlib.import_module("app.serving.assets").warm()
    ask_streamlits_repl_question()


def ask_streamlits_repl_question() -> None:
    """Streamlit 1.67 asks, at the first element a process sends, whether it runs in Python's REPL (to warn once if
    so) with `inspect.stack()`, which reads the source of every frame and resolves the path of every loaded module
    (Plotly's, pandas', Dask's: thousands): 0.11 s of CPU with the page's modules loaded, 0.28 s of the first
    student's page on a loaded machine (py-spy). Asked once, here, it is not asked again. A private function of
    Streamlit's: where a release has no such function, the first page asks as before (tests/test_server_start.py
    notices)."""
    from streamlit import delta_generator

    ask = getattr(delta_generator, "_maybe_print_use_warning", None)
    if ask is not None:
        ask()


def warm_probes(store: RunStore) -> None:
    """The presets' probes (app/serving/probes.py), first preset first: the landing page's and the seed question's
    are ready before a class picks them. (load_dataset keeps what it loaded: the presets share a few datasets.)"""
    data_dir = default_data_dir()
    store.probes.warm(preset_configs(data_dir),
                      lambda config: load_dataset(config.dataset, data_dir, standardize=config.standardize),
                      Limits.from_env())


class _Start:
    """The start of the run store in a background thread, and how it went (for the readiness route)."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.failure: str | None = None

    def begin(self) -> None:
        self.thread = threading.Thread(target=self._run, name="initlab-start", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            store = run_store()
        except ConfigError as e:
            self.failure = str(e)
            log.warning("the run store did not start with the server (the first page tries again): %s", e)
            return
        except Exception:
            self.failure = "the compute cluster did not start (the server's log says why)"
            log.exception("the run store did not start with the server (the first page tries again)")
            return
        try:  # also when nothing is precomputed, so that the tests' servers start as a deployed one does
            load_page()
        except Exception:  # the first page imports them, as it would without it
            log.exception("the page's modules were not loaded in advance")
        if precompute() == "0":
            return
        try:
            warm_probes(store)
        except Exception:  # the pages compute what is missing, as they would without it
            log.exception("the presets' probes were not made ready in advance")

    @property
    def warming(self) -> bool:
        """Whether the presets' probes are still being computed (after the store started)."""
        return _store is not None and self.thread is not None and self.thread.is_alive()

    def problem(self) -> str | None:
        """Why no run can be computed now, or None if one can."""
        store = _store
        if store is None:
            if self.thread is not None and self.thread.is_alive():
                return "the server is starting its compute cluster"
            return self.failure or "the server has not started its compute cluster"
        return ready.problem(store.client.scheduler.address)


_start = _Start()
_answer: tuple[float, str | None] = (-float("inf"), None)  # (when, the reason) of the last readiness check
_answer_lock = threading.Lock()


def start_in_background() -> None:
    _start.begin()


def not_ready_reason() -> str | None:
    """`_Start.problem`, checked at most once every READY_REUSE_SECONDS (probes in between get its answer)."""
    global _answer
    with _answer_lock:
        checked, reason = _answer
        if time.monotonic() - checked >= READY_REUSE_SECONDS:
            reason = _start.problem()
            _answer = (time.monotonic(), reason)
        return reason


async def readiness(request):
    from starlette.responses import PlainTextResponse

    reason = await asyncio.to_thread(not_ready_reason)  # a check waits up to seconds on the scheduler
    if reason is None:  # a run can start; the presets' probes, which their pages would wait for, may not be done
        return PlainTextResponse(WARMING if _start.warming else "ready")
    return PlainTextResponse(f"not ready: {reason}", status_code=503)


@asynccontextmanager
async def lifespan(app):
    """For `st.App`: the run store starts as the server starts; at shutdown it closes, and the cluster this server
    started stops (with the files registered for removal at exit: the exit hook then finds nothing to do twice)."""
    start_in_background()
    yield
    await asyncio.to_thread(close_run_store)
    await asyncio.to_thread(cleanup.remove_registered)
