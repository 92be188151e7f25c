"""Training runs shared by every session and every replica, computed as Dask tasks (no Streamlit here).

A run is keyed by its config JSON and its dataset's fingerprint, and computed by the Dask cluster
(app/serving/cluster.py) as the task of that key (app/serving/compute.py): the same config asked by a classroom, on
any replica sharing the scheduler, is one task. The worker records the run to a file as it trains; pages read that
file, re-read only when it has changed (one read per change per server process, whatever the number of pages).
With $INITLAB_CACHE_DIR set, the files are written inside the disk cache shared by replicas (app/serving/cache.py),
and a run that ended on its own is moved into it: a config any replica has trained is replayed from its file. Each
run is tagged in the disk cache as a preset's (the configs in ``protected``: kept, and computed in the background at
start at the lowest priority) or as the starting session's (a fair share of the room).

A run stops when every session watching it, on every replica, has pressed Stop or left it (a page that has not
read it for ``unwatched_seconds``, default 60, has left), and at the server's time cap: within a second, whatever
its ``record_every``. Each session may have one training and one comparison computing at a time
(`reserve`), and its n-th run is queued behind every other session's earlier ones (Dask priorities). The presets'
background runs give way to the pages: they compute only while no page of this server is open or being opened.

A run that has already ended (here, or in the disk cache) is replayed to each session that starts it at the pace it
was computed, from the moment that session pressed Start: a `Replay` reveals the recorded snapshots by the seconds
each one took originally, reckoned from the clock whenever the page reads it (no thread, no copy). With
``instant=True`` (the dashboard's "Replay cached runs instantly") the session gets the ended run whole.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from app.serving import cleanup, compute
from app.serving.cache import PRESET_OWNER, RunCache, session_owner
from app.serving.compute import DIVERGED, FINISHED, GAVE_WAY, RUNNING, STOPPED, USER_STOP
from app.serving.runs import Replay, SharedRun, failure_message, recorded_fields
from app.serving.limits import ENV as SERVER_ENV, ServerLimits
from app.serving.pace import Pace, pace
from app.serving.probes import PROBE_SECONDS, Probes
from core.config import Config, ConfigError
from core.data import DatasetError, load_dataset
from core.limits import Limits, network_within_limits
from core.record import RunFileError, partial_path
from core.run_reader import read_run
from core.tasks import submit
from core.sweep import cell_key as run_key  # one key for a config's run, in a sweep or not

__all__ = ["DIVERGED", "FINISHED", "RUNNING", "STOPPED", "Replay", "RunStore", "SharedRun"]

UNWATCHED_ENV = "INITLAB_UNWATCHED_SECONDS"
START_LOCKS = 64  # runs starting at once (by key) that never wait for one another
BEAT_SECONDS = 2.0  # how often this replica tells the workers which of their runs its pages still read
PRESET_PRIORITY = -10**6  # the presets' background runs: after every student's
PRESETS_WATCHER = "presets"  # the presets' entry in the control of a run they compute in the background
PAGES_POLL_SECONDS = 0.1  # how soon the presets' background run gives way to a page that opens
READ_SHARE = 0.05  # of the time a live run's file may spend being read (`_read_file`), by each replica
MIN_READ_SECONDS = 0.2  # between two reads of a live run's file: the Training tab's fastest redraw
KINDS = {"training": "a training", "comparison": "a comparison"}

log = logging.getLogger(__name__)


class RunStore:
    """key -> SharedRun computed by the cluster's ``client``, recorded in ``folder``; at most `max_runs` ended runs
    and `max_replays` replays kept."""

    def __init__(self, client, folder: Path, max_runs: int = 32, cache: RunCache | None = None,
                 max_replays: int = 4096, clock=time.monotonic, protected: Iterable[Config] = (),
                 policy: ServerLimits | None = None, unwatched_seconds: float | None = None,
                 worker_mb: int | None = None, data_dir: Path | None = None, pages: Pace = pace):
        self.client = client
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cache = cache
        self.policy = policy if policy is not None else ServerLimits.from_env()
        self.unwatched_seconds = (unwatched_seconds if unwatched_seconds is not None
                                  else float(os.environ.get(UNWATCHED_ENV, "60")))
        self.protected = frozenset(protected)  # the presets' configs: their runs are kept in the disk cache
        self.worker_mb = worker_mb  # for messages: what one worker may use, if this server knows
        self.data_dir = data_dir  # the data folder the workers load named datasets from (None: send the arrays)
        self.max_runs, self.max_replays, self.clock = max_runs, max_replays, clock
        self.pages = pages  # this server's open pages, which the presets' background runs give way to
        self.replica = uuid.uuid4().hex[:12]  # this process, in the runs' control variables
        self._lock = threading.Lock()
        self._runs: dict[str, SharedRun] = {}
        self._replays: OrderedDict[str, Replay] = OrderedDict()
        self._started: dict[str, int] = {}  # session -> runs it has started: the priority of its next
        self._active: dict[tuple[str, str], dict[str, str]] = {}  # (session, kind) -> {run key: its watcher}
        self._start_locks = [threading.Lock() for _ in range(START_LOCKS)]
        self._closed = threading.Event()
        self.probes = Probes(client, data_dir, worker_mb)  # what pages show of a config at initialisation
        self.cluster = None  # the cluster.Cluster holder, when run_store() connected it: kept as long as the store
        threading.Thread(target=self._beat, name="initlab-beat", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.probes.close()

    # --- what pages call -----------------------------------------------------------------------------------------
    def get(self, key: str, watcher: str | None = None) -> SharedRun | Replay | None:
        """The run (brought up to date with its file) or replay of ``key``; a ``watcher`` reading it is watching."""
        with self._lock:
            found = self._runs.get(key) or self._replays.get(key)
            if found is not None and watcher is not None and watcher in found.watchers:
                found.watchers[watcher] = time.time()
        if isinstance(found, SharedRun) and not found.done:
            self._refresh(found)
        return found

    def reserve(self, session: str, kind: str) -> None:
        """Before a session starts its runs of a ``kind`` ("training" or "comparison"): ConfigError if its previous
        ones are still computing and watched by it (one of each kind at a time)."""
        with self._lock:
            started = self._active.get((session, kind), {})
            if any(key in self._runs and not self._runs[key].done and watcher in self._runs[key].watchers
                   for key, watcher in started.items()):
                raise ConfigError(f"you already have {KINDS[kind]} running: stop it, or wait for it to finish, "
                                  "before starting another (one of each at a time, so that every student's runs "
                                  "get their turn)")
            self._active[(session, kind)] = {}

    def start(self, config: Config, dataset, watcher: str, limits: Limits, instant: bool = False,
              session: str | None = None, kind: str = "training") -> SharedRun | Replay:
        """Attach `watcher` to the run of this config, submitting it unless it runs or ran to its end already.

        A run still computing is shared as it goes; one that has ended (here or in the disk cache) is replayed to
        this watcher at its original pace from now (a `Replay`), or whole if ``instant``. Limits are checked here:
        an over-cap config raises ConfigError and no work starts. The run counts against ``session`` (default: the
        watcher): in the disk cache unless it is a preset's, and in its quota of ``kind`` (see `reserve`).
        """
        session = session or watcher
        owner = PRESET_OWNER if config in self.protected else session_owner(session)
        key = run_key(config, dataset.fingerprint())
        # a class pressing Start at once: the first looks the run up and submits it, the others then attach to it
        with self._start_locks[hash(key) % len(self._start_locks)]:
            with self._lock:
                run = self._runs.get(key)
                rejoin = run is not None and not run.done and not run.watchers
                if run is not None and run.status != STOPPED and not rejoin:
                    return self._attach(run, watcher, session, kind, instant)
            if rejoin:  # its last watcher here left a moment ago: watch it again, take the stop back if in time
                self._watch(key, self.replica, time.time())
                self.client.set_metadata([*compute.control_path(key), "stop"], None)
                with self._lock:
                    return self._attach(run, watcher, session, kind, instant)
            network = network_within_limits(config, dataset, limits)
            two_d = dataset.n_features == 2
            recorded = self.cache.load(config, dataset, owner) if self.cache else None
            if recorded is not None:
                run = SharedRun(key, config, network, self.cache.path(config, dataset), two_d, cached=True,
                                seconds=recorded.seconds[-1] if recorded.seconds else None,
                                message=recorded.stopped_reason, **recorded_fields(recorded, two_d),
                                status=DIVERGED if recorded.stopped_reason else FINISHED)
            else:
                with self._lock:
                    busy = sum(not r.done for r in self._runs.values())
                if busy >= self.policy.max_concurrent_trainings:
                    raise ConfigError(f"this server already has {busy} trainings running or queued, its cap "
                                      f"({SERVER_ENV['max_concurrent_trainings']}); try again when one has finished")
                run = SharedRun(key, config, network, compute.run_file(self.folder, key), two_d)
                self._submit(run, dataset, limits, owner, self._priority(session), self.replica, time.time())
            with self._lock:
                self._runs[key] = run
                self._evict()
                return self._attach(run, watcher, session, kind, instant)

    def detach(self, key: str, watcher: str) -> None:
        """`watcher` stops watching; the run stops when nobody, on any replica, watches it any more."""
        with self._lock:
            run = self._runs.get(key)
            if run is None or watcher not in run.watchers:
                return
            del run.watchers[watcher]
            last = not run.watchers and not run.done
        if last:
            self._leave(run)

    def wait(self, key: str, timeout: float) -> bool:
        """Block until the run has ended (tests and scripts); True if it has."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            run = self.get(key)
            if run is None or run.done:
                return True
            time.sleep(0.05)
        return False

    def warm_presets(self, configs: Iterable[Config], data_dir) -> None:
        """Compute the presets' runs missing from the disk cache, at the lowest priority, watched by nobody:
        so that a class finds them ready. Needs a disk cache (without one, nothing would keep them). One at a time:
        with more workers than cores (cluster.py) they would otherwise take every core from the first students.
        They give way to the pages: none starts while a page of this server is open or opening (pace.busy), and one
        that no student watches is stopped when a page opens (on a 2-core server, a preset's run beside the first
        student's page delayed its first chart by seconds), to be computed again once every page has closed."""
        pending = list(configs)
        while pending and self._until_no_page():
            try:
                if self._warm_preset(pending[0], data_dir):
                    pending.pop(0)
            except (ConfigError, DatasetError) as e:
                log.warning("preset run %s not computed in advance: %s", pending.pop(0).dataset, e)
            except Exception as e:  # the scheduler gone (the server stopping): the presets wait for the next start
                if not self._closed.is_set():
                    log.warning("the presets' runs stopped at %s: %s", pending[0].dataset, e)
                return

    def _until_no_page(self) -> bool:
        """Wait until no page of this server is open or being opened; False if the store closed meanwhile."""
        while self.pages.busy():
            if self._closed.wait(PAGES_POLL_SECONDS):
                return False
        return not self._closed.is_set()

    def _warm_preset(self, config: Config, data_dir) -> bool:
        """Submit one preset's run unless the disk cache has it, and wait for its end; False if it gave way to a
        page. Watched "forever" by the presets: a student who watches it too and leaves does not stop it."""
        dataset = load_dataset(config.dataset, data_dir, standardize=config.standardize)
        if self.cache.get(config, dataset, PRESET_OWNER) is not None:
            return True
        limits, key = Limits.from_env(), run_key(config, dataset.fingerprint())
        run = SharedRun(key, config, network_within_limits(config, dataset, limits),
                        compute.run_file(self.folder, key), dataset.n_features == 2)
        self._submit(run, dataset, limits, PRESET_OWNER, PRESET_PRIORITY, PRESETS_WATCHER, float("inf"))
        with self._lock:
            if key not in self._runs or self._runs[key].status == STOPPED:  # else a student's: it is shared
                self._runs[key] = run
        gave_way, end = False, time.monotonic() + self.policy.max_training_seconds + PROBE_SECONDS
        while not self._closed.is_set() and time.monotonic() < end:
            found = self.get(key)
            if found is None or found.done:
                return not (gave_way and found is not None and found.status == STOPPED)
            if not gave_way and self.pages.busy() and self._only_presets_watch(found):
                self._watch(key, PRESETS_WATCHER, None)
                self.client.set_metadata([*compute.control_path(key), "stop"], GAVE_WAY)
                gave_way = True
            self._closed.wait(PAGES_POLL_SECONDS)
        return True

    def _only_presets_watch(self, run: SharedRun) -> bool:
        """Whether no page, of this server or of another replica, watches the run."""
        with self._lock:
            if run.watchers:
                return False
        return self._watching(run.key) <= {PRESETS_WATCHER}

    # --- the tasks ----------------------------------------------------------------------------------------------
    def _priority(self, session: str) -> int:
        with self._lock:
            self._started[session] = self._started.get(session, 0) + 1
            return -self._started[session]

    def _submit(self, run: SharedRun, dataset, limits: Limits, owner: str, priority: int, watcher: str,
                seen: float) -> None:
        self._watch(run.key, watcher, seen)
        self.client.set_metadata([*compute.control_path(run.key), "stop"], None)
        cache_dir = str(self.cache.directory) if self.cache else None
        if self.cluster is not None and self.cluster.processes:  # our own workers stop with us: so do their files
            cleanup.remove_at_exit(partial_path(run.path))
        run.future = submit(
            self.client, compute.task_key(run.key), priority, compute.train_run, run.key, run.config, compute.source_of(run.config, dataset, self.data_dir), limits, str(self.folder),
            self.policy.max_training_seconds, self.unwatched_seconds, cache_dir,
            self.cache.max_bytes if self.cache else 0, owner)

    def _watch(self, key: str, replica: str, seen: float | None) -> None:
        """Write this replica's entry in the run's control (compute.py): when its pages last read it, None if gone."""
        self.client.set_metadata([*compute.control_path(key), "watch", replica], seen)

    def _watching(self, key: str) -> set[str]:
        """The replicas (and the presets) whose entries in the run's control say they still watch it."""
        watched = self.client.get_metadata([*compute.control_path(key), "watch"], default={})
        return {replica for replica, seen in watched.items() if seen is not None}

    def _attach(self, run: SharedRun, watcher: str, session: str, kind: str, instant: bool):
        """Call with the lock held."""
        run.watchers[watcher] = time.time()
        if not run.done:
            self._active.setdefault((session, kind), {})[run.key] = watcher
        return self._replay(run, watcher, instant)

    def _leave(self, run: SharedRun) -> None:
        """No page of this replica watches the run any more: take this replica off it, and stop it if it was the
        last; a run still waiting for a worker is cancelled."""
        path = compute.control_path(run.key)
        try:
            self._watch(run.key, self.replica, None)
            if self._watching(run.key):
                return  # another replica's pages still watch it
            self.client.set_metadata([*path, "stop"], USER_STOP)
            if run.queued and run.future is not None and not partial_path(run.path).exists():
                self.client.cancel(run.future, force=True)  # it reads the stop before any work if it starts now
        except Exception as e:  # the scheduler is unreachable: its workers stop the run once it is unwatched
            log.warning("could not stop run %s: %s", run.key, e)

    def _beat(self) -> None:
        """Tell the workers when this replica's pages last read each run; watchers gone for longer than
        ``unwatched_seconds`` (a closed tab) leave it."""
        while not self._closed.wait(BEAT_SECONDS):
            now = time.time()
            with self._lock:
                live = [r for r in self._runs.values() if not r.done and r.watchers]
                for run in live:
                    for watcher, seen in list(run.watchers.items()):
                        if now - seen > self.unwatched_seconds:
                            del run.watchers[watcher]
            for run in live:
                try:
                    if run.watchers:
                        self._watch(run.key, self.replica, max(run.watchers.values()))
                    else:
                        self._leave(run)
                except Exception as e:  # a busy scheduler: the next beat tries again
                    log.warning("run %s: could not reach the scheduler: %s", run.key, e)

    def _refresh(self, run: SharedRun) -> None:
        """Re-read the run's file if it has changed since last read; collect the task's outcome once it is done."""
        if not run.lock.acquire(blocking=False):
            return  # another page is reading it: it will see the result at its next tick
        try:
            future = run.future
            ended = future is None or future.done()
            self._read_file(run, force=ended)
            if ended and future is not None:
                self._collect(run, future)
        finally:
            run.lock.release()

    def _read_file(self, run: SharedRun, force: bool = False) -> None:
        """Read the run's file again if it has changed, and unless (while it is written, but not ``force``) it was
        read a moment ago: each read parses the whole file (in the sandbox: core.run_reader), which grows with
        every snapshot, so a live run's file is read in at most READ_SHARE of the time, whatever the number of
        pages watching it (30 students' pages each re-reading at their own tick took most of the server's CPU), and
        less often when the pages redraw less often (a large class: app/serving/pace.py). Its weights are read
        only for the pages that draw them (a 2-D input's decision boundary): a third of the read's cost."""
        if not force and time.monotonic() < run.next_read:
            return
        for path in (partial_path(run.path), run.path):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            state = (path, st.st_mtime_ns, st.st_size)
            if state == run.file_state:
                return
            began = time.monotonic()
            try:
                recorded = read_run(path, weights=run.two_d)  # the weights only for the decision boundary
            except RunFileError:  # renamed or being written at that instant: the next tick reads it
                return
            took = time.monotonic() - began
            run.next_read = time.monotonic() + pace.every(max(MIN_READ_SECONDS, took / READ_SHARE))
            for name, value in recorded_fields(recorded, run.two_d).items():
                setattr(run, name, value)
            if run.started is None and run.offsets:  # the file's latest offset is about now: a flush is not older
                run.started = time.perf_counter() - run.offsets[-1]
            run.file_state = state
            return

    def _collect(self, run: SharedRun, future) -> None:
        """The ended task's outcome onto the run: status last, as readers check it."""
        last = run.snapshots[-1].step if run.snapshots else 0
        try:
            outcome = future.result(timeout=5)
        except Exception as error:  # CancelledError, KilledWorker, or the run's own error, raised in the worker
            cancelled = type(error).__name__ == "CancelledError"
            run.message = f"stopped by the user at step {last:,}" if cancelled else failure_message(
                error, last, self.worker_mb)
            run.status, run.future = STOPPED, None
            cleanup.forget(partial_path(run.path))
            return
        cleanup.forget(partial_path(run.path))
        if outcome["path"]:
            run.path = Path(outcome["path"])  # in the disk cache, if it ended on its own and there is one
        self._read_file(run, force=True)
        # the run's own time, from its file, as a replay of it says (the task's also has the data's load in it)
        run.seconds = run.offsets[-1] if run.offsets else outcome["seconds"]
        run.message, run.future = outcome["message"], None
        run.status = outcome["status"]

    # --- bookkeeping --------------------------------------------------------------------------------------------
    def _replay(self, run: SharedRun, watcher: str, instant: bool) -> SharedRun | Replay:
        """The run itself if it is still computing, asked for whole, or has no timing (a file from before timings
        were recorded); else a fresh Replay for this watcher. Call with the lock held."""
        if not run.done or instant or len(run.offsets) < len(run.snapshots):
            return run
        replay = Replay(run, watcher, self.clock)
        self._replays.pop(replay.key, None)
        self._replays[replay.key] = replay
        while len(self._replays) > self.max_replays:
            self._replays.popitem(last=False)
        return replay

    def _evict(self) -> None:
        ended = [k for k, r in self._runs.items() if r.done]
        for key in ended[: max(0, len(self._runs) - self.max_runs)]:
            run = self._runs.pop(key)
            if run.path.parent == self.folder:  # files in the disk cache are its own to evict
                run.path.unlink(missing_ok=True)
