"""One dashboard run as a Dask task, and how the server tells it to stop (no Streamlit here: this runs in workers).

`probe_run` computes what the pages show of a config at initialisation (one forward and backward pass), and
`train_run` a training; both execute in Dask worker processes, queued by the scheduler by priority
(core/tasks.py). `train_run` trains the run with the engine's `should_stop` hook and records
it as it goes, with core.record, to ``<runs folder>/<run key>.h5`` (``.partial`` while it streams), where the
pages of every replica read it. A run that ends on its own (finished or diverged) is then moved into the disk cache,
if there is one, at its cache key.

The server side controls a run through the scheduler's metadata at `control_path(key)`: ``{"stop": reason or
None, "watch": {replica id: wall-clock time a page of that replica last read the run, or None}}``. Each replica
writes only its own entry, while its pages watch the run, and sets it to None when its last watcher has pressed
Stop or left; then it reads the others', and if none is left it sets ``stop``. Every replica writes before it
reads, so of two leaving at once the later one sees both gone: no lock is needed. A `ControlWatch` thread in the
worker reads the metadata every POLL_SECONDS and the engine asks it before every step, so the run ends within a
second of Stop whatever its ``record_every``. The run also ends when no page has read it for ``unwatched_seconds``
(a closed tab, a lost replica), and at the server's time cap.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.data import Dataset, DatasetError, load_dataset
from core.limits import Limits
from core.record import DEFAULT_STOP, RunFileError, record
from core.measures import identical_units
from core.train import Training, initial_cost_note, probe

RUNNING, FINISHED, DIVERGED, STOPPED = "running", "finished", "diverged", "stopped"
POLL_SECONDS = 0.2  # how often a running task reads its control variable: Stop takes effect within this and a step
USER_STOP = "user"  # the value of "stop" when the run's last watcher pressed Stop (the message gets the step)
GAVE_WAY = "gave way"  # the value of "stop" when a preset's background run gave way to the pages (store.py)
TIME_CAP_ENV = "INITLAB_MAX_TRAINING_SECONDS"

log = logging.getLogger(__name__)


def task_key(run_key: str) -> str:
    """The Dask key of a run's task: the same config from any session of any replica is one task."""
    return f"initlab-run-{run_key}"


def control_path(run_key: str) -> list[str]:
    """Where the run's control lives in the scheduler's metadata (see the module)."""
    return ["initlab-run", run_key]


def run_file(folder: str | Path, run_key: str) -> Path:
    return Path(folder) / f"{run_key}.h5"


class ControlWatch:
    """The stop reason of a running task, kept up to date by a thread reading the run's control; `check` (the
    engine's should_stop) costs an attribute read."""

    def __init__(self, run_key: str, started: float, max_seconds: float, unwatched_seconds: float):
        from distributed import get_client  # imported here: the CLI and the engine never need Dask

        self.client, self.path = get_client(), control_path(run_key)
        self.started, self.max_seconds, self.unwatched_seconds = started, max_seconds, unwatched_seconds
        self.started_wall = time.time()  # watch times are wall-clock: replicas on other machines write them
        self.reason: str | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, name=f"initlab-control-{run_key[:8]}", daemon=True)

    def __enter__(self) -> "ControlWatch":
        self.update()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()

    def update(self) -> None:
        try:
            control = self.client.get_metadata(self.path, default={})
        except Exception:  # the scheduler did not answer this time: the next poll asks again
            return
        if control.get("stop"):
            self.reason = self.reason or control["stop"]
        watched = [t for t in (control.get("watch") or {}).values() if t is not None]
        last_watched = max(watched) if watched else self.started_wall
        if time.time() - last_watched > self.unwatched_seconds:
            self.reason = self.reason or "unwatched"

    def _poll(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            self.update()

    def check(self, step: int) -> str | None:
        reason = self.reason
        if reason is None and time.monotonic() - self.started > self.max_seconds:
            reason = (f"stopped at step {step:,}: this server stops a training after {self.max_seconds:g} s "
                      f"({TIME_CAP_ENV})")
            self.reason = reason
        if reason == USER_STOP:
            return DEFAULT_STOP.format(step=step)
        if reason == GAVE_WAY:
            return (f"stopped at step {step:,}: this preset's run was being computed in the background, and gives "
                    "way to the pages open on the server; press Start to compute it")
        if reason == "unwatched":
            return f"stopped at step {step:,}: no page had shown it for {self.unwatched_seconds:g} s"
        return reason


@dataclass(frozen=True)
class FolderDataset:
    """A dataset of the data folder, which a worker loads itself (once per process: load_dataset keeps it) rather
    than receive its arrays with every task: the seed question's are 24 MB a run, through the scheduler."""

    name: str
    folder: str
    standardize: bool
    fingerprint: str

    def load(self) -> Dataset:
        try:
            dataset = load_dataset(self.name, self.folder, standardize=self.standardize)
        except DatasetError:
            dataset = None
        if dataset is None or dataset.fingerprint() != self.fingerprint:
            raise DatasetError(f"the workers computing the runs do not find the data of {self.name} where the web "
                               "server does: whoever runs this server, mount its data folder (INITLAB_DATA_DIR) at "
                               "the same path on the Dask workers")
        return dataset


def source_of(config: Config, dataset: Dataset, data_dir: Path | None) -> Dataset | FolderDataset:
    """What a task is given of its data: a reference to the data folder's dataset when that is what the session
    uses (the worker loads it), else the arrays themselves (an upload). ``data_dir`` None: always the arrays."""
    if data_dir is not None:
        try:
            named = load_dataset(config.dataset, data_dir, standardize=config.standardize)
        except DatasetError:  # not a name of the data folder: an upload
            named = None
        if named is not None and named.fingerprint() == dataset.fingerprint():
            return FolderDataset(config.dataset, str(data_dir), config.standardize, dataset.fingerprint())
    return dataset


def probe_key(run_key: str) -> str:
    return f"initlab-probe-{run_key}"


def probe_run(config: Config, dataset: Dataset | FolderDataset, limits: Limits) -> tuple:
    """What the pages show of a config at initialisation, computed in a worker: (network, its snapshot at step 0,
    which layers start as copies of one unit, the note on the course's step-0 cost or None)."""
    if isinstance(dataset, FolderDataset):
        dataset = dataset.load()
    network, params, snapshot = probe(config, dataset, limits)
    return network, snapshot, identical_units(params), initial_cost_note(Training(config, dataset, limits))


def train_run(run_key: str, config: Config, dataset: Dataset | FolderDataset, limits: Limits, folder: str,
              max_seconds: float, unwatched_seconds: float, cache_dir: str | None = None, cache_max_bytes: int = 0,
              owner: str | None = None) -> dict:
    """Train and record one run in a worker; returns its outcome: status, message, seconds, path (see module)."""
    started = time.monotonic()
    if isinstance(dataset, FolderDataset):
        dataset = dataset.load()
    path = run_file(folder, run_key)
    with ControlWatch(run_key, started, max_seconds, unwatched_seconds) as control:
        if control.reason is not None:  # stopped or abandoned while it was queued: never started
            return {"status": STOPPED, "message": control.check(0), "seconds": 0.0, "path": None}
        training = Training(config, dataset, limits, should_stop=control.check)
        last = 0
        try:
            for snapshot in record(training, path):
                last = snapshot.step
        except RunFileError as e:  # the disk: told here, where whether it is full is known (the error names no path)
            return {"status": STOPPED, "message": unrecorded_message(e, last), "seconds": time.monotonic() - started,
                    "path": None}
    outcome = {"seconds": time.monotonic() - started, "path": str(path), "message": training.stopped_reason,
               "status": FINISHED if training.finished else DIVERGED if training.diverged else STOPPED}
    if outcome["status"] != STOPPED and cache_dir:
        from app.serving.cache import RunCache

        outcome["path"] = str(RunCache(cache_dir, cache_max_bytes).store(path, config, dataset, owner))
    return outcome


def unrecorded_message(error: RunFileError, step: int) -> str:
    """What a student reads when their run's file could not be written."""
    log.warning("a run could not be recorded at step %d: %s", step, error)
    full = getattr(error, "disk_full", False)
    return (f"This run stopped at step {step:,}: the server's disk is " + ("full" if full else "not writable") +
            ", so it could not be recorded. Press Start to try again in a few minutes; if it happens again, tell "
            "whoever runs this server.")
