"""A content-addressed cache of recorded runs, shared by every process that mounts the same folder.

Runs are deterministic, so a run is named by what decides its numbers: the key is the sha256 of the config's JSON,
the dataset's fingerprint, the run-file format, NumPy's version and this cache's own version. The value is the run's
HDF5 file from core.record, stored as ``<directory>/<key>.h5``.

Writes are atomic: a run is recorded under a unique name in ``<directory>/.tmp/`` and os.replace'd to its key only
once it has ended on its own (finished or diverged), so a reader — in this process or another replica sharing the
volume — sees a complete file or none.

Each config is computed once across replicas by the compute tier, not here: every replica sharing the cache shares
one Dask scheduler, where a run is the task of its key (app/serving/store.py). The cache only stores what the tasks
recorded (`store`), and the runs `compute` trains itself (scripts: the load test's warm-up).

An entry is served only if the config, dataset fingerprint and NumPy version stored in it are the ones its key
names: a file copied to another run's key, or damaged (truncated, foreign, incomplete), or anything but a regular
file there, is deleted on `get` (and logged, by key: no path reaches a page), and so becomes a miss computed again.
An entry is read, checked and served in one parse, in core.sandbox's limited process like every run file a user
hands in, never opened by the server process itself: the folder is shared with other replicas and may be a volume
an operator copies into, so what stands at a key was not necessarily written by this process, and a damaged or
foreign file must not be able to crash or mislead the server (deploy/README.md, "Security model"). A hit costs that
one parse (tens of milliseconds for a small run, core/sandbox.py), where the check once opened the file in-process
before parsing it.
What stands where the cache's own folders should be is replaced by the folder.

Eviction keeps the folder, temporary files included, within ``max_bytes``, fairly: each entry is tagged with who
asked for it (``.owners/<key>.<tag>``: a preset, or a hash of a session's id; a tag file per owner, so replicas
add tags without locks). A preset's runs are never evicted; the rest of the room is shared equally by the owners
that have entries, an entry's size split among its owners, and only an owner over its share loses entries, its
least recently used first (`get` touches an entry's modification time). So one session's big runs evict its own
older ones, never another session's within its share. An untagged entry (written before tags, or by the CLI)
counts as one more owner.

The sweeps' cells (core/sweep.py) live in ``sweep-cells/``: each ``<key>.json`` (its figures, what a sweep reads
back) beside ``<key>.h5`` (its run), one entry of both files' size, counted, tagged and evicted with the runs
(`admit_cell`). A sweep holds its finished cells' figures in memory and in its sweep file, so an evicted cell costs
only a later sweep's training it again. Cells being written there (``.partial`` runs, ``.*.tmp`` figures) count as
temporary files.

Temporary files a stopped process was writing are removed: on SIGTERM or exit by the process itself
(app/serving/cleanup.py),
and at start and at each eviction, any in ``.tmp/`` (or a cell's in ``sweep-cells/``) unchanged for ABANDONED_SECONDS
(a live writer flushes its file every second or so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from app.serving import cleanup
from core.config import Config
from core.record import FORMAT_VERSION, PARTIAL_SUFFIX, RecordedRun, RunFileError, partial_path, record
from core.run_reader import read_run
from core.stats import Snapshot
from core.train import Training

CACHE_VERSION = 1  # bump when what a cached run means changes without the run-file format changing
DEFAULT_MAX_MB = 1024
TMP_DIR = ".tmp"
OWNERS_DIR = ".owners"
LIVE_DIR = ".live"  # the dashboard's runs being computed, and those stopped early (app/serving/server.py)
PRESET_OWNER = "preset"  # the owner tag of runs a preset trains: never evicted
SWEEP_CELLS_DIR = "sweep-cells"  # the sweeps' cells: <key>.json and <key>.h5 (see the module)
# A temporary file unchanged this long belongs to a writer that was killed: a live one flushes it every second or so.
ABANDONED_SECONDS = 60.0

log = logging.getLogger(__name__)


def cache_key(config: Config, fingerprint: str) -> str:
    """sha256 hex naming the run of ``config`` on the dataset with this fingerprint."""
    payload = json.dumps({"config": json.loads(config.to_json()), "dataset": fingerprint, "cache": CACHE_VERSION,
                          "run_format": FORMAT_VERSION, "numpy": np.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def session_owner(session: str) -> str:
    """The owner tag of a session's runs: a hash, so the session's id (a secret of its browser) is never on disk."""
    return "s" + hashlib.sha256(session.encode()).hexdigest()[:16]


def _run_problem(run: RecordedRun, config: Config, fingerprint: str) -> str | None:
    """Why this run, read from the file at ``config``'s key, cannot be served as that run, or None."""
    if not run.complete:
        return "not a complete run file"
    if run.config != config:
        return "it holds another config's run"
    if run.dataset_fingerprint != fingerprint:
        return "it holds a run on other data"
    if run.versions.get("numpy") != np.__version__:
        return "it was computed with another NumPy version"
    return None


def _real_folder(path: Path) -> Path:
    """``path``, one of the cache's own folders, as a folder: anything else standing there (a file, or a link that
    would send the cache's writes elsewhere) is replaced."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        log.warning("run cache: replaced %r, which was not a folder, by the cache's own folder", path.name)
        _remove(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class RunCache:
    """Recorded runs in ``directory`` keyed by `cache_key`, evicted least recently used beyond ``max_bytes``."""

    def __init__(self, directory: str | Path, max_bytes: int = DEFAULT_MAX_MB * 2**20):
        self.directory = Path(directory)  # the operator's: it may well be a link to the volume
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.tmp = _real_folder(self.directory / TMP_DIR)
        self.owners = _real_folder(self.directory / OWNERS_DIR)
        self.sweep_cells = _real_folder(self.directory / SWEEP_CELLS_DIR)
        self.live = _real_folder(self.directory / LIVE_DIR)
        self.remove_abandoned()  # what a killed process left

    @classmethod
    def from_env(cls, environ=os.environ) -> "RunCache | None":
        """The cache in $INITLAB_CACHE_DIR capped at $INITLAB_CACHE_MAX_MB (default 1024), or None if unset."""
        folder = environ.get("INITLAB_CACHE_DIR", "").strip()
        if not folder:
            return None
        raw = environ.get("INITLAB_CACHE_MAX_MB", "").strip() or str(DEFAULT_MAX_MB)
        try:
            mb = int(raw)
        except ValueError:
            mb = 0
        if mb < 1:
            raise ValueError(f"INITLAB_CACHE_MAX_MB={raw!r} must be a whole number of megabytes, at least 1")
        return cls(Path(folder).expanduser(), mb * 2**20)

    def path(self, config: Config, dataset) -> Path:
        """Where the run of ``config`` on ``dataset`` is (or would be) stored."""
        return self.directory / f"{cache_key(config, dataset.fingerprint())}.h5"

    def get(self, config: Config, dataset, owner: str | None = None) -> Path | None:
        """The cached run file, touched as recently used and tagged as ``owner``'s too (`PRESET_OWNER` or a
        `session_owner`); None on a miss or an entry that is not this run (which is deleted)."""
        found = self._verified(config, dataset, owner)
        return None if found is None else found[0]

    def load(self, config: Config, dataset, owner: str | None = None) -> RecordedRun | None:
        """The cached run read back, as `get` finds it; None on a miss or an entry that is not this run."""
        found = self._verified(config, dataset, owner)
        return None if found is None else found[1]

    def _verified(self, config: Config, dataset, owner: str | None) -> tuple[Path, RecordedRun] | None:
        """The entry at the key of ``config`` on ``dataset`` and its run, read in the parser process like any
        other run file (see the module); an entry that is not that run is deleted."""
        path = self.path(config, dataset)
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                self._drop(path, "not a regular file")
                return None
        except FileNotFoundError:
            return None
        try:
            run = read_run(path)
        except RunFileError:
            self._drop(path, "unreadable")
            return None
        problem = _run_problem(run, config, dataset.fingerprint())
        if problem is not None:
            self._drop(path, problem)
            return None
        try:
            os.utime(path)
        except FileNotFoundError:  # evicted by another process a moment ago
            return None
        self.tag(path, owner)
        return path, run

    def tag(self, entry: Path, owner: str | None) -> None:
        """Count ``entry`` as ``owner``'s (in addition to any owner it has) for eviction."""
        if owner is not None:
            (self.owners / f"{entry.stem}.{owner}").touch()

    def _drop(self, entry: Path, why: str) -> None:
        """Delete an entry and its owner tags; logged by key, as the path may not reach a page."""
        log.warning("run cache: removed entry %s…: %s", entry.stem[:16], why)
        _remove(entry)
        self._untag(entry.stem)

    def _untag(self, key: str) -> None:
        for tag in self.owners.glob(f"{key}.*"):
            tag.unlink(missing_ok=True)

    def record(self, training: Training, stopped_path: str | Path | None = None,
               stop_reason: Callable[[], str | None] | None = None, owner: str | None = None) -> Iterator[Snapshot]:
        """Iterate ``training``, recording it and yielding each snapshot; a run that ends on its own is stored,
        tagged as ``owner``'s (see `get`).

        A run closed early (stopped by the user, or by a server cap: ``stop_reason`` as in core.record.record) is not
        the config's run, so it is not cached: its file is moved to ``stopped_path`` if given, else deleted.
        A full disk raises core.record.RunWriteError and leaves no file. Should the process be stopped meanwhile,
        its files are removed (app/serving/cleanup.py).
        """
        final = self.path(training.config, training.dataset)
        tmp = self.tmp / f"{final.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.h5"
        ended = False
        with cleanup.removed_at_exit(tmp, partial_path(tmp)):
            stream = record(training, tmp, stop_reason=stop_reason)
            try:
                for snapshot in stream:
                    yield snapshot
                ended = True
            finally:
                try:
                    stream.close()  # closed early: record() finishes the file with the stop reason
                    if ended and (training.finished or training.diverged) and tmp.is_file():
                        if os.path.lexists(final):  # not a run (a folder, say), or it would not be a miss
                            self._drop(final, "not a regular file")
                        os.replace(tmp, final)
                        self.tag(final, owner)
                        self.evict(keep=final)
                    elif tmp.is_file() and stopped_path is not None:
                        shutil.move(tmp, stopped_path)  # the stopped-runs folder may be on another disk
                finally:
                    tmp.unlink(missing_ok=True)
                    partial_path(tmp).unlink(missing_ok=True)

    def store(self, run_file: Path, config: Config, dataset, owner: str | None = None) -> Path:
        """Move a recorded run that ended on its own (finished or diverged) into the cache at its key, tagged as
        ``owner``'s (see `get`), and evict for room; returns where it now is. The move is atomic when the file is on
        the cache's disk (the runs' folder is inside the cache's): readers see the whole file or none."""
        final = self.path(config, dataset)
        # A regular file there is the same run, stored by a server with a scheduler of its own (see
        # app/serving/server.py: live_folder): replaced at once, never missing. Anything else is not a run.
        if os.path.lexists(final) and not stat.S_ISREG(os.lstat(final).st_mode):
            self._drop(final, "not a regular file")
        os.replace(run_file, final)
        self.tag(final, owner)
        self.evict(keep=final)
        return final

    def compute(self, config: Config, dataset,
                training_factory: Callable[[Config, object], Training] = Training) -> Iterator[Snapshot]:
        """The run's snapshots: replayed from the cache on a hit, else trained (recorded while streaming)."""
        cached = self.load(config, dataset)
        if cached is not None:
            yield from cached.snapshots
            return
        yield from self.record(training_factory(config, dataset))

    def entries(self) -> list[Path]:
        """Stored runs, least recently used first."""
        return [path for path, _ in self._sized_entries()]

    def _sized_entries(self, with_cells: bool = False) -> list[tuple[Path, int]]:
        """(entry, size in bytes), least recently used first: the runs (regular files only), and the sweep cells
        if ``with_cells``."""
        stats = []
        for path in self.directory.glob("*.h5"):
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                stats.append((st.st_mtime, path.name, path, st.st_size))
        if with_cells:
            stats += self._cells()
        return [(path, size) for _, _, path, size in sorted(stats)]

    def admit_cell(self, key: str, owners, new: bool = True) -> Path:
        """A sweep's cell in `sweep_cells` as an entry: touched as recently used and tagged as each of ``owners``';
        one ``new`` (just written by a worker) has room made for it, and is kept. Returns the entry."""
        entry = self.sweep_cells / f"{key}.json"
        try:
            os.utime(entry)
        except FileNotFoundError:  # evicted by another process a moment ago: the sweep holds its figures
            return entry
        for owner in owners:
            self.tag(entry, owner)
        if new:
            self.evict(keep=entry)
        return entry

    def _cells(self) -> list[tuple[float, str, Path, int]]:
        """(last used, key, a sweep cell's figures' path, bytes of its figures and run file) per cell."""
        cells: dict[str, tuple[float, int]] = {}
        for path in self.sweep_cells.iterdir():
            if path.suffix not in (".json", ".h5") or path.name.startswith("."):
                continue  # a cell being written (see _writing)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                used, size = cells.get(path.stem, (0.0, 0))
                cells[path.stem] = (max(used, st.st_mtime), size + st.st_size)
        return [(used, key, self.sweep_cells / f"{key}.json", size) for key, (used, size) in cells.items()]

    def _writing(self) -> list[Path]:
        """Files being written: the runs' in ``.tmp/``, the sweep cells' beside their entries."""
        return [*self.tmp.iterdir(), *(path for path in self.sweep_cells.iterdir()
                                       if path.name.startswith(".") or path.name.endswith(PARTIAL_SUFFIX))]

    def _tmp_bytes(self) -> int:
        total = 0
        for path in self._writing():
            try:
                total += path.lstat().st_size
            except FileNotFoundError:
                continue
        return total

    def remove_abandoned(self) -> list[Path]:
        """Remove temporary files of killed writers: unchanged for ABANDONED_SECONDS (see the module). Returns them."""
        now, removed = time.time(), []
        for path in self._writing():
            try:
                if now - path.lstat().st_mtime <= ABANDONED_SECONDS:
                    continue
            except FileNotFoundError:
                continue  # its writer finished with it a moment ago
            _remove(path)
            removed.append(path)
        return removed

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete entries until the cache, temporary files included, fits in max_bytes: never a preset's or
        ``keep``, and only from owners over their fair share (see the module). Returns them."""
        self.remove_abandoned()
        tags: dict[str, set[str]] = {}
        for tag in self.owners.iterdir():  # before the entries: a tag is written after its entry
            key, _, owner = tag.name.partition(".")
            tags.setdefault(key, set()).add(owner)
        sized = self._sized_entries(with_cells=True)
        present = {path.stem for path, _ in sized}
        for key in tags.keys() - present:  # entries another process removed
            self._untag(key)
        total = sum(size for _, size in sized) + self._tmp_bytes()
        shared = [(path, size, tags.get(path.stem) or {""}) for path, size in sized
                  if PRESET_OWNER not in tags.get(path.stem, ())]  # "": the untagged entries' owner
        room = self.max_bytes - (total - sum(size for _, size, _ in shared))  # what presets and writers leave
        removed = []
        while total > self.max_bytes and shared:
            usage: dict[str, float] = {}
            for _, size, owners in shared:
                for owner in owners:
                    usage[owner] = usage.get(owner, 0.0) + size / len(owners)
            share = room / len(usage)
            evictable = [owner for owner in sorted(usage, key=usage.get, reverse=True)
                         if usage[owner] > share and any(owner in o and p != keep for p, _, o in shared)]
            if not evictable:
                break
            victim = next(item for item in shared if evictable[0] in item[2] and item[0] != keep)  # its LRU one
            shared.remove(victim)
            path, size, _ = victim
            _remove(path)
            if path.parent == self.sweep_cells:
                _remove(path.with_suffix(".h5"))  # the cell's run beside its figures
            self._untag(path.stem)
            total -= size
            removed.append(path)
        return removed
