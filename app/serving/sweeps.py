"""The dashboard's sweeps (core/sweep.py), one at a time per server process, on the cluster of its run store.

A sweep is a few hundred trainings: a classroom server runs one at a time and queues the others (each page shows
its position). A sweep asked again while it is queued, running or still held here (the same grid, base settings
and dataset) is the same sweep: a class opening it sees it fill, or whole. Its cells are cached in the run cache's
folder when there is one (INITLAB_CACHE_DIR, which a remote cluster's workers share), else in this server's own
temporary folder: a cell trained before, by any sweep, is not trained again. In the run cache they are entries like
the runs, of the sessions that asked for the sweep, and evicted as the runs are (app/serving/cache.py): each cell a
worker finishes has room made for it. Stop cancels the cells not started. No Streamlit here: the tab
(app/tabs/sweep.py) reads a `ServerSweep` on every tick.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from app.serving.cache import SWEEP_CELLS_DIR, RunCache
from core.limits import Limits
from core.sweep import SweepRun, SweepSpec, cell_key

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
KEEP_ENDED = 8  # ended sweeps held for the pages that show them; a sweep file keeps them for good
# A sweep's cells wait behind every student's own runs and probes (store.py: priorities -1, -2, ... and 10**6),
# ahead of the presets' background runs: a class's sweep never holds up a student's Start.
SWEEP_PRIORITY = -10**5

log = logging.getLogger(__name__)


@dataclass
class ServerSweep:
    key: str
    spec: SweepSpec
    dataset: object
    status: str = QUEUED
    message: str | None = None
    run: SweepRun | None = None  # while and after it runs: its results, its clock
    stop_asked: bool = False
    done_at: float | None = None
    owners: set = field(default_factory=set)  # who asked for it (run cache owner tags): its cells count as theirs

    @property
    def results(self) -> dict:
        return dict(self.run.results) if self.run else {}

    @property
    def ended(self) -> bool:
        return self.status in (DONE, STOPPED, FAILED)

    def elapsed(self) -> float:
        if self.run is None:
            return 0.0
        return (self.done_at or time.monotonic()) - self.run.started


def sweep_key(spec: SweepSpec, fingerprint: str) -> str:
    return hashlib.sha256(f"{spec.to_dict()}|{fingerprint}".encode()).hexdigest()[:16]


@dataclass
class SweepQueue:
    """The sweeps of one server: `client()` gives the Dask client (the run store's), ``cache`` the cells' folder:
    ``run_cache``'s `sweep_cells` if there is one, whose eviction they then take part in."""

    client: object  # a callable returning the distributed.Client
    cache: Path
    limits: Limits = field(default_factory=Limits)
    run_cache: RunCache | None = None

    def __post_init__(self):
        self._lock = threading.Lock()
        self._sweeps: OrderedDict[str, ServerSweep] = OrderedDict()
        self._queue: list[str] = []
        self._wake = threading.Event()
        threading.Thread(target=self._serve, name="initlab-sweeps", daemon=True).start()

    def submit(self, spec: SweepSpec, dataset, owner: str | None = None) -> ServerSweep:
        """The sweep of this grid on this dataset, queued unless it is queued, running or done; ``owner`` (a run cache
        owner tag) counts its cells as theirs too."""
        key = sweep_key(spec, dataset.fingerprint())
        owners = {owner} - {None}
        with self._lock:
            found = self._sweeps.get(key)
            if found is not None and found.status not in (STOPPED, FAILED):
                found.owners |= owners
                cells = list(found.results)
            else:
                found = None
        if found is not None:
            self._admit(found, cells, owners, new=False)
            return found
        with self._lock:
            sweep = self._sweeps[key] = ServerSweep(key, spec, dataset, owners=owners)
            self._sweeps.move_to_end(key)
            self._queue.append(key)
            self._forget_ended()
        self._wake.set()
        return sweep

    def get(self, key: str | None) -> ServerSweep | None:
        with self._lock:
            return self._sweeps.get(key) if key else None

    def position(self, sweep: ServerSweep) -> int:
        """1 for the next to run; 0 if it is not waiting."""
        with self._lock:
            return self._queue.index(sweep.key) + 1 if sweep.key in self._queue else 0

    def stop(self, sweep: ServerSweep) -> None:
        """A queued sweep leaves the queue; a running one has its cells not started cancelled."""
        with self._lock:
            sweep.stop_asked = True
            if sweep.key in self._queue:
                self._queue.remove(sweep.key)
                sweep.status, sweep.message = STOPPED, "stopped before it started"
                return
            run = sweep.run
        if run is not None and not sweep.ended:
            run.cancel()

    def _forget_ended(self) -> None:
        ended = [k for k, s in self._sweeps.items() if s.ended]
        for key in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self._sweeps[key]

    def _serve(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                key = self._queue.pop(0) if self._queue else None
                if key is None:
                    self._wake.clear()
                    continue
                sweep = self._sweeps[key]
                sweep.status = RUNNING
            self._run(sweep)

    def _run(self, sweep: ServerSweep) -> None:
        try:
            run = SweepRun(sweep.spec, sweep.dataset, None, self.cache, self.limits, priority=SWEEP_PRIORITY)
            missing = run.find_cached()
            sweep.run = run
            with self._lock:
                owners = set(sweep.owners)
            self._admit(sweep, list(run.results), owners, new=False)
            if missing:
                run.client = self.client()
                run.submit(missing)
            trained = {(row, column) for row, column, _ in missing}
            for row, column, _ in run.completed():
                if (row, column) in trained:  # a worker wrote it just now: room is made for it
                    self._admit(sweep, [(row, column)], owners, new=True)
            sweep.status = STOPPED if sweep.stop_asked else DONE
            if sweep.stop_asked:
                sweep.message = f"stopped with {len(run.results)} of {run.total} cells done"
        except Exception as e:  # a cell's own error, a lost scheduler: the page says so, the next sweep runs
            log.exception("sweep %s failed", sweep.key)
            sweep.status = FAILED
            sweep.message = (f"the sweep stopped: a cell could not be computed ({type(e).__name__}). Press Run to "
                             "try again; cells already trained are kept.")
        finally:
            sweep.done_at = time.monotonic()

    def _admit(self, sweep: ServerSweep, cells: list, owners: set, new: bool) -> None:
        """The sweep's cells as run cache entries of ``owners`` (see RunCache.admit_cell); nothing without a cache."""
        if self.run_cache is None:
            return
        fingerprint = sweep.dataset.fingerprint()
        for row, column in cells:
            self.run_cache.admit_cell(cell_key(sweep.spec.cell_config(row, column), fingerprint), owners, new)


_queue: SweepQueue | None = None
_queue_lock = threading.Lock()


def sweep_queue() -> SweepQueue:
    """This server's one SweepQueue, on the run store's cluster (built on first use, as the store is)."""
    global _queue
    with _queue_lock:
        if _queue is None:
            from app.serving.server import run_store

            store = run_store()
            cells = store.cache.sweep_cells if store.cache is not None else Path(store.folder) / SWEEP_CELLS_DIR
            _queue = SweepQueue(lambda: run_store().client, cells, Limits.from_env(), store.cache)
        return _queue
