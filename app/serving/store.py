"""Training runs shared by every session of the server, computed by worker threads (no Streamlit here).

A run is keyed by its config JSON and its dataset's fingerprint: a classroom starting the same preset attaches to
one computation. Workers only compute and append snapshots (Streamlit calls from threads are unsupported); the
page polls the shared run and draws it. Each run is recorded to an .h5 file through core.record while it trains.
A run stops when every session watching it has pressed Stop (or left it); the others keep theirs running.
With $INITLAB_CACHE_DIR set, runs also go through the disk cache shared by replicas (app/serving/cache.py): a config any
replica has trained is replayed from its file instead of trained again, and one another replica is training now
(it holds the cache's claim on it) is waited for, not trained twice: the run shows as running elsewhere until its
file appears (or is trained here after all, if that replica stops it or dies). Each run is tagged in the disk cache
as a preset's (the configs in ``protected``: kept) or as the starting session's (a fair share of the room).

A full disk stops the run with a message saying so (and no path); if it was the disk cache's, this process trains
without writing to the cache for CACHE_FULL_PAUSE_SECONDS (replaying from it still works), so the next run trains.
Files being written, and the store's own folder, are removed when the process is stopped (app/serving/cleanup.py).

A run that has already ended (here, or in the disk cache) is replayed to each session that starts it at the pace it
was computed, from the moment that session pressed Start: a `Replay` reveals the recorded snapshots by the seconds
each one took originally, reckoned from the clock whenever the page reads it (no thread, no copy). With
``instant=True`` (the dashboard's "Replay cached runs instantly") the session gets the ended run whole.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from app.presets import preset_configs
from app.serving import cleanup
from app.serving.cache import CLAIM_POLL_SECONDS, CLAIM_REFRESH_SECONDS, PRESET_OWNER, RunCache, session_owner
from app.serving.limits import ENV as SERVER_ENV, ServerLimits
from core.config import Config, ConfigError
from core.data import default_data_dir
from core.limits import Limits, check_limits
from core.network import Network, Params
from core.record import RunFileError, partial_path, record
from core.stats import Snapshot
from core.train import Training

Array = np.ndarray

RUNNING, FINISHED, DIVERGED, STOPPED = "running", "finished", "diverged", "stopped"
CACHE_FULL_PAUSE_SECONDS = 300.0  # after the disk cache's disk was found full, train without writing to it this long

log = logging.getLogger(__name__)


def run_key(config: Config, fingerprint: str) -> str:
    return hashlib.sha256(f"{config.to_json()}|{fingerprint}".encode()).hexdigest()[:24]


def preflight(config: Config, dataset, limits: Limits) -> Network:
    """The network a config builds on a dataset; ConfigError naming the cap if it is over one. Allocates nothing."""
    net = Network.from_config(config, dataset.n_features, dataset.output_size)
    check_limits(net, config, dataset.x_train.shape[1], dataset.x_test.shape[1], limits)
    return net


@dataclass
class SharedRun:
    key: str
    config: Config
    network: Network
    path: Path  # the recorded .h5, complete once the run has ended
    two_d: bool
    snapshots: list[Snapshot] = field(default_factory=list)  # append-only: readers slice a prefix
    offsets: list[float] = field(default_factory=list)  # seconds from the start to each snapshot (empty: unknown)
    params: Params | None = None  # after the latest snapshot, kept for 2-D decision boundaries
    initial_params: Params | None = None  # 2-D runs only: the boundary a replay shows until it reaches the end
    status: str = RUNNING
    message: str | None = None
    watchers: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None
    cached: bool = False  # replayed from the disk cache, not trained in this process
    elsewhere: bool = False  # another process sharing the disk cache is training it; its file is awaited

    @property
    def done(self) -> bool:
        return self.status != RUNNING


def _recorded(recorded, two_d: bool) -> dict:
    """A SharedRun's fields for a run read back from its file (the disk cache's), ``status`` last."""
    return dict(snapshots=recorded.snapshots, offsets=list(recorded.seconds or ()), params=recorded.final_params,
                initial_params=recorded.initial_params if two_d else None, message=recorded.stopped_reason,
                seconds=recorded.seconds[-1] if recorded.seconds else None, cached=True,
                status=DIVERGED if recorded.stopped_reason else FINISHED)


class Replay:
    """One watcher's view of an ended run, revealed at the pace the run was computed, from ``started`` on.

    It reads like the SharedRun (key, snapshots, status, done, params, message, ...): a page draws either. Until the
    last snapshot is due the replay is RUNNING and shows the 2-D boundary of the initial parameters; then it is the
    run itself. Watchers who start the same run at different times each get their own Replay and pace.
    """

    def __init__(self, run: SharedRun, watcher: str, clock=time.monotonic):
        self.run, self.watcher, self.clock = run, watcher, clock
        self.key = f"{run.key}/{watcher}"
        self.started = clock()

    def visible(self) -> int:
        """How many snapshots are due: those computed, in the original run, within the time since `started`."""
        return bisect.bisect_right(self.run.offsets, self.clock() - self.started)

    @property
    def snapshots(self) -> list[Snapshot]:
        return self.run.snapshots[:self.visible()]

    @property
    def done(self) -> bool:
        return self.visible() >= len(self.run.snapshots)

    @property
    def status(self) -> str:
        return self.run.status if self.done else RUNNING

    @property
    def message(self) -> str | None:
        return self.run.message if self.done else None

    @property
    def params(self) -> Params | None:
        return self.run.params if self.done else self.run.initial_params

    def __getattr__(self, name: str):  # config, network, path, two_d, seconds, cached: the run's own
        if name == "run":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.run, name)


class RunStore:
    """Thread-safe map key -> SharedRun; at most `max_runs` ended runs kept, `workers` computing at once."""

    def __init__(self, folder: Path | None = None, max_runs: int = 32, workers: int = 2,
                 cache: RunCache | None = None, max_replays: int = 4096, clock=time.monotonic,
                 protected: Iterable[Config] = (), policy: ServerLimits | None = None):
        if folder is None:
            folder = tempfile.mkdtemp(prefix="initlab-runs-")
            cleanup.remove_at_exit(folder)  # this process's runs, downloadable only while it serves them
        self.folder = Path(folder)
        self.cache = cache if cache is not None else RunCache.from_env()
        self.policy = policy if policy is not None else ServerLimits.from_env()  # this process's caps on trainings
        self.protected = frozenset(protected)  # the presets' configs: their runs are kept in the disk cache
        self.cache_full_until = 0.0  # time.monotonic() until which runs are not written to the full disk cache
        self.max_runs = max_runs
        self.max_replays = max_replays  # a Replay is a few references: keep one per watcher and run, most recent
        self.clock = clock  # paces replays (tests pass a fake one)
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._runs: dict[str, SharedRun] = {}
        self._replays: OrderedDict[str, Replay] = OrderedDict()

    def get(self, key: str) -> SharedRun | Replay | None:
        with self._lock:
            return self._runs.get(key) or self._replays.get(key)

    def start(self, config: Config, dataset, watcher: str, limits: Limits,
              instant: bool = False, session: str | None = None) -> SharedRun | Replay:
        """Attach `watcher` to the run of this config, starting it unless it runs or ran to its end already.

        A run still training is shared as it goes; one that has ended (here or in the disk cache) is replayed to
        this watcher at its original pace from now (a `Replay`), or whole if ``instant``. Limits are checked and
        the network initialised here, before the call returns: an over-cap config raises ConfigError and no work
        starts. The disk cache counts the run against ``session`` (default: the watcher) unless it is a preset's.
        """
        owner = PRESET_OWNER if config in self.protected else session_owner(session or watcher)
        key = run_key(config, dataset.fingerprint())
        with self._lock:
            run = self._runs.get(key)
            if run is not None and run.status != STOPPED:
                run.watchers.add(watcher)
                return self._replay(run, watcher, instant)
        network = preflight(config, dataset, limits)
        two_d = dataset.n_features == 2
        recorded = self.cache.load(config, dataset, owner) if self.cache else None
        if recorded is not None:
            run = SharedRun(key, config, network, self.cache.path(config, dataset), two_d, watchers={watcher},
                            **_recorded(recorded, two_d))
            with self._lock:
                self._runs[key] = run
                self._evict()
                return self._replay(run, watcher, instant)
        writes = self.cache is not None and time.monotonic() >= self.cache_full_until
        claim = self.cache.claim(config, dataset) if writes else None
        if writes and claim is None:  # another replica is training it: wait for its file
            run = SharedRun(key, config, network, self.cache.path(config, dataset), two_d, watchers={watcher},
                            elsewhere=True)
            target, args = self._await_elsewhere, (run, dataset, limits, owner)
        else:
            try:  # a run that cannot start here gives its claim back
                with self._lock:
                    busy = sum(not r.done and not r.elsewhere for r in self._runs.values())
                if busy >= self.policy.max_concurrent_trainings:
                    raise ConfigError(f"this server already has {busy} trainings running or queued, its cap "
                                      f"({SERVER_ENV['max_concurrent_trainings']}); try again when one has finished")
                training = Training(config, dataset, limits)
            except BaseException:
                if claim is not None:
                    self.cache.release(claim)
                raise
            path = self.cache.path(config, dataset) if claim is not None else self.folder / f"{key}.h5"
            run = SharedRun(key, config, training.network, path, two_d, watchers={watcher})
            target, args = self._work, (run, training, self.policy.max_training_seconds, claim, owner)
        with self._lock:
            self._runs[key] = run
            self._evict()
        threading.Thread(target=target, args=args, name=f"initlab-run-{key[:8]}", daemon=True).start()
        return run

    def _replay(self, run: SharedRun, watcher: str, instant: bool) -> SharedRun | Replay:
        """The run itself if it is still training, asked for whole, or has no timing (a file from before timings
        were recorded); else a fresh Replay for this watcher. Call with the lock held."""
        if not run.done or instant or len(run.offsets) < len(run.snapshots):
            return run
        replay = Replay(run, watcher, self.clock)
        self._replays.pop(replay.key, None)
        self._replays[replay.key] = replay
        while len(self._replays) > self.max_replays:
            self._replays.popitem(last=False)
        return replay

    def detach(self, key: str, watcher: str) -> None:
        """`watcher` stops watching; the run stops when nobody watches it any more."""
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                return
            run.watchers.discard(watcher)
            if not run.watchers and not run.done:
                run.stop.set()

    def wait(self, key: str, timeout: float) -> bool:
        """Block until the run has ended (tests and scripts); True if it has."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            run = self.get(key)
            if run is None or run.done:
                return True
            time.sleep(0.02)
        return False

    def _await_elsewhere(self, run: SharedRun, dataset, limits: Limits, owner: str) -> None:
        """Wait for the file of a run another replica trains; train it here if that one gives up its claim (stopped
        by its users, or dead); stop waiting when nobody here watches any more."""
        while not run.stop.wait(CLAIM_POLL_SECONDS):
            recorded = self.cache.load(run.config, dataset, owner)
            if recorded is not None:
                for name, value in _recorded(recorded, run.two_d).items():  # status last: readers check it
                    setattr(run, name, value)
                return
            claim = self.cache.claim(run.config, dataset)
            if claim is not None:
                run.elsewhere = False
                try:
                    training = Training(run.config, dataset, limits)
                except Exception as e:  # a worker must never die silently: the page shows what happened
                    self.cache.release(claim)
                    run.status, run.message = STOPPED, f"the run failed: {type(e).__name__}: {e}"
                    return
                self._work(run, training, self.policy.max_training_seconds, claim, owner)
                return
        run.status, run.message = STOPPED, "stopped by the user while another server was training it"

    def _work(self, run: SharedRun, training: Training, max_seconds: float, claim: Path | None = None,
              owner: str | None = None) -> None:
        """Train and record the run: into the disk cache if this process holds its ``claim``, else in the folder."""
        while not self._slots.acquire(timeout=CLAIM_REFRESH_SECONDS):  # queued: still alive, say so to the others
            if claim is not None:
                self.cache.refresh(claim)
        try:
            run.started = time.perf_counter()
            stopped_path = self.folder / f"{run.key}.h5"  # a run stopped early is not the config's run: not cached
            if run.two_d:
                run.initial_params = training.params.copy()
            # a run over the time cap is recorded with the cap's message (run.message), not "stopped by the user"
            stream = (self.cache.record(training, stopped_path, stop_reason=lambda: run.message, claim=claim,
                                        owner=owner)
                      if claim is not None else record(training, run.path, stop_reason=lambda: run.message))
            try:
                # the cache removes its own files if the process stops; a run recorded here is this store's to remove
                with cleanup.removed_at_exit(*([] if claim is not None else [partial_path(run.path)])):
                    try:
                        for snapshot in stream:
                            if run.two_d:
                                run.params = training.params.copy()
                            run.offsets.append(time.perf_counter() - run.started)
                            run.snapshots.append(snapshot)
                            if run.stop.is_set():
                                break
                            if time.perf_counter() - run.started > max_seconds:
                                run.message = (f"stopped at step {snapshot.step}: this server stops a training "
                                               f"after {max_seconds:g} s ({SERVER_ENV['max_training_seconds']})")
                                break
                    finally:
                        stream.close()  # finishes the recording (closed early: the cap's message, or "by the user")
            except RunFileError as e:  # the disk: the run cannot be recorded (the error names no path)
                run.status, run.message = STOPPED, self._unrecorded(run, e, in_cache=claim is not None)
            except Exception as e:  # a worker must never die silently: the page shows what happened
                run.message = f"the run failed: {type(e).__name__}: {e}"
                run.status = STOPPED
            if not run.path.is_file():
                run.path = stopped_path
            run.seconds = time.perf_counter() - run.started
            if run.status == STOPPED:
                return
            if training.diverged:
                run.status, run.message = DIVERGED, training.stopped_reason
            elif training.finished:
                run.status = FINISHED
            else:
                last = run.snapshots[-1].step if run.snapshots else 0
                run.status, run.message = STOPPED, run.message or f"stopped by the user at step {last}"
        finally:
            self._slots.release()

    def _unrecorded(self, run: SharedRun, error: RunFileError, in_cache: bool) -> str:
        """The message of a run whose file could not be written; a full disk cache is left alone for a while."""
        step = run.snapshots[-1].step if run.snapshots else 0
        if not getattr(error, "disk_full", False):
            log.warning("run %s could not be recorded: %s", run.key, error)
            return (f"This run stopped at step {step:,}: the server could not record it on its disk. Press Start "
                    "to try again; if it happens again, tell whoever runs this server.")
        if in_cache:
            self.cache_full_until = time.monotonic() + CACHE_FULL_PAUSE_SECONDS
            log.warning("the run cache's disk (%s) is full: runs are trained without being written to it for %g s; "
                        "free space there or lower INITLAB_CACHE_MAX_MB", self.cache.directory,
                        CACHE_FULL_PAUSE_SECONDS)
            return (f"This run stopped at step {step:,}: the server's disk is full, so it could not be saved. Press "
                    "Start to train it again: for now the server trains without its shared run cache.")
        log.warning("run %s: the disk of %s is full", run.key, self.folder)
        return (f"This run stopped at step {step:,}: the server's disk is full, so it could not be recorded. Try "
                "again in a few minutes; if it happens again, tell whoever runs this server.")

    def _evict(self) -> None:
        ended = [k for k, r in self._runs.items() if r.done]
        for key in ended[: max(0, len(self._runs) - self.max_runs)]:
            run = self._runs.pop(key)
            if run.path.parent == self.folder:  # files in the disk cache are its own to evict
                run.path.unlink(missing_ok=True)


# --- reading runs for the figures ------------------------------------------------------------------------------
_store: RunStore | None = None
_store_lock = threading.Lock()


def run_store() -> RunStore:
    """This server process's one RunStore, built on first use from $INITLAB_CACHE_* and the server's caps
    ($INITLAB_MAX_CONCURRENT_TRAININGS, $INITLAB_MAX_TRAINING_SECONDS; a malformed setting raises
    ConfigError, and the next call tries again). Not an st.cache_resource: Streamlit empties those for every session
    on a "clear caches" request, which any client can send over its WebSocket whatever the page's menu shows, and a
    second store would lose the runs in progress to their students and train as many again beside them, past the
    cap on concurrent trainings."""
    global _store
    with _store_lock:
        if _store is None:
            _store = RunStore(protected=preset_configs(default_data_dir()))  # the class's preset runs stay cached
        return _store
