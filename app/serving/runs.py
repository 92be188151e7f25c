"""A run as the pages see it: computed by the cluster (`SharedRun`, read from its file), or an ended run replayed to
one watcher at its recorded pace (`Replay`); and what a student reads when a run's task failed."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.serving.compute import RUNNING
from core.config import Config
from core.network import Network, Params
from core.stats import Snapshot

log = logging.getLogger(__name__)


@dataclass
class SharedRun:
    key: str
    config: Config
    network: Network
    path: Path  # the recorded .h5 (``.partial`` beside it while it streams), complete once the run has ended
    two_d: bool
    snapshots: list[Snapshot] = field(default_factory=list)  # replaced whole when the file has changed
    offsets: list[float] = field(default_factory=list)  # seconds from the start to each snapshot (empty: unknown)
    step_params: list[tuple[int, Params]] = field(default_factory=list)  # 2-D runs: (step, weights) from the file
    status: str = RUNNING
    message: str | None = None
    watchers: dict[str, float] = field(default_factory=dict)  # watcher -> time.time() a page of it last read it
    # perf_counter() when the worker started it, as this process reckons from the file's first read (None: not yet)
    started: float | None = None
    seconds: float | None = None
    cached: bool = False  # replayed from the disk cache, not computed for this process
    future: object = None  # the Dask task's, while it runs
    file_state: tuple | None = None  # (path, mtime_ns, size) of the file last read
    next_read: float = 0.0  # time.monotonic() before which a live run's file is not read again (RunStore._read_file)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> bool:
        return self.status != RUNNING

    @property
    def queued(self) -> bool:
        """Waiting for a free worker: running, nothing recorded yet."""
        return not self.done and not self.snapshots and self.file_state is None


def recorded_fields(recorded, two_d: bool) -> dict:
    """A SharedRun's fields for a run read back from its file, but its status."""
    return dict(snapshots=recorded.snapshots, offsets=list(recorded.seconds or ()),
                step_params=list(recorded.step_params) if two_d else [])


class Replay:
    """One watcher's view of an ended run, revealed at the pace the run was computed, from ``started`` on.

    It reads like the SharedRun (key, snapshots, status, done, step_params, message, ...): a page draws either. Until
    the last snapshot is due the replay is RUNNING; then it is the run itself. Watchers who start the same run at
    different times each get their own Replay and pace.
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
    def queued(self) -> bool:
        return False

    def __getattr__(self, name: str):  # config, network, path, two_d, step_params, seconds, cached: the run's own
        if name == "run":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.run, name)


def failure_message(error: BaseException, step: int, worker_mb: int | None) -> str:
    """What a student reads when the task of their run failed: what happened, and what to do."""
    from distributed import KilledWorker

    room = f" ({worker_mb:,} MB each)" if worker_mb else ""
    if isinstance(error, MemoryError):
        return (f"This run stopped at step {step:,}: it needed more memory than a worker of this server has{room}. "
                "Use a smaller network or batch.")
    if isinstance(error, KilledWorker):
        return (f"This run stopped at step {step:,}: the worker running it stopped, most likely because the run "
                f"needed more memory than a worker has{room}. Press Start to run it again; if it stops again, use a "
                "smaller network or batch.")
    log.warning("a run failed: %s: %s", type(error).__name__, error)
    return f"This run stopped at step {step:,}: it failed ({type(error).__name__}). Press Start to run it again."
