"""A content-addressed cache of recorded runs, shared by every process that mounts the same folder.

Runs are deterministic, so a run is named by what decides its numbers: the key is the sha256 of the config's JSON,
the dataset's fingerprint, the run-file format, NumPy's version and this cache's own version. The value is the run's
HDF5 file from core.record, stored as ``<directory>/<key>.h5``.

Writes are atomic: a run is recorded under a unique name in ``<directory>/.tmp/`` and os.replace'd to its key only
once it has ended on its own (finished or diverged), so a reader — in this process or another replica sharing the
volume — sees a complete file or none.

Each config is computed once across replicas: a process about to train a missing run first `claim`s its key, by
creating ``<directory>/.claims/<key>`` exclusively (O_EXCL, atomic on local disks and on NFS v3+). Another process
that misses the same key finds the claim and waits for the file instead of training. The holder refreshes the
claim's modification time while it works and removes it when the run has ended; a claim left unrefreshed for
CLAIM_STALE_SECONDS belongs to a process that died, and the next claimant takes it over. (Two claimants taking over
the same dead claim at the same instant may both compute: the renames are atomic and the files identical, so the
later one simply wins. That is the only duplicate work left.)

Eviction is least recently used by total size: `get` touches an entry's modification time, `evict` removes the
oldest entries until the folder fits in ``max_bytes``. A damaged entry (truncated, foreign, incomplete) is deleted on
`get`, and so becomes a miss that is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from .config import Config
from .record import FORMAT, FORMAT_VERSION, RecordedRun, RunFileError, read_run, record
from .stats import Snapshot
from .train import Training

CACHE_VERSION = 1  # bump when what a cached run means changes without the run-file format changing
DEFAULT_MAX_MB = 1024
STALE_TMP_SECONDS = 24 * 3600  # a temporary file this old belongs to a writer that was killed
TMP_DIR = ".tmp"
CLAIMS_DIR = ".claims"
CLAIM_STALE_SECONDS = 60.0  # a claim not refreshed for this long belongs to a process that died
CLAIM_REFRESH_SECONDS = 5.0  # how often a working holder refreshes its claim
CLAIM_POLL_SECONDS = 0.5  # how often a process that found a claim looks for the holder's file


def cache_key(config: Config, fingerprint: str) -> str:
    """sha256 hex naming the run of ``config`` on the dataset with this fingerprint."""
    payload = json.dumps({"config": json.loads(config.to_json()), "dataset": fingerprint, "cache": CACHE_VERSION,
                          "run_format": FORMAT_VERSION, "numpy": np.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _is_complete_run(path: Path) -> bool:
    """True if ``path`` opens as an Init Lab run file whose writer finished it (cheap: reads two attributes)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("initlab_format") == FORMAT and bool(f["status/complete"][()])
    except (OSError, KeyError, ValueError, TypeError):
        return False


class RunCache:
    """Recorded runs in ``directory`` keyed by `cache_key`, evicted least recently used beyond ``max_bytes``."""

    def __init__(self, directory: str | Path, max_bytes: int = DEFAULT_MAX_MB * 2**20):
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.tmp = self.directory / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.claims = self.directory / CLAIMS_DIR
        self.claims.mkdir(exist_ok=True)

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

    def get(self, config: Config, dataset) -> Path | None:
        """The cached run file, touched as recently used; None on a miss or a damaged entry (which is deleted)."""
        path = self.path(config, dataset)
        if not path.is_file():
            return None
        if not _is_complete_run(path):
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)
        except FileNotFoundError:  # evicted by another process a moment ago
            return None
        return path

    def load(self, config: Config, dataset) -> RecordedRun | None:
        """The cached run read back, or None (a miss, or an entry that could not be read, now deleted)."""
        path = self.get(config, dataset)
        if path is None:
            return None
        try:
            return read_run(path)
        except RunFileError:
            path.unlink(missing_ok=True)
            return None

    def claim(self, config: Config, dataset) -> Path | None:
        """Take the right to compute this run: the claim file, to `refresh` while working and `release` at the end;
        None if a live process holds it already (wait for its file instead)."""
        path = self.claims / self.path(config, dataset).stem
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released a moment ago: try again
                if age < CLAIM_STALE_SECONDS:
                    return None
                path.unlink(missing_ok=True)  # its holder died without releasing it: take it over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")  # who holds it, for a person looking
            return path
        return None

    @staticmethod
    def refresh(claim: Path) -> None:
        try:
            os.utime(claim)
        except FileNotFoundError:  # taken over as stale by another process: it computes the same file
            pass

    @staticmethod
    def release(claim: Path) -> None:
        claim.unlink(missing_ok=True)

    def record(self, training: Training, stopped_path: str | Path | None = None,
               stop_reason: Callable[[], str | None] | None = None, claim: Path | None = None) -> Iterator[Snapshot]:
        """Iterate ``training``, recording it and yielding each snapshot; a run that ends on its own is stored.

        A run closed early (stopped by the user, or by a server cap: ``stop_reason`` as in core.record.record) is not
        the config's run, so it is not cached: its file is moved to ``stopped_path`` if given, else deleted.
        ``claim`` (from `claim`) is refreshed as snapshots come and released once the file is in place or gone.
        """
        final = self.path(training.config, training.dataset)
        tmp = self.tmp / f"{final.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.h5"
        ended = False
        stream = record(training, tmp, stop_reason=stop_reason)
        refreshed = time.monotonic()
        try:
            for snapshot in stream:
                if claim is not None and time.monotonic() - refreshed > CLAIM_REFRESH_SECONDS:
                    self.refresh(claim)
                    refreshed = time.monotonic()
                yield snapshot
            ended = True
        finally:
            stream.close()  # closed early: record() finishes the file with the stop reason
            if ended and tmp.is_file():
                os.replace(tmp, final)
                self.evict(keep=final)
            elif tmp.is_file() and stopped_path is not None:
                os.replace(tmp, stopped_path)
            else:
                tmp.unlink(missing_ok=True)
                Path(f"{tmp}.partial").unlink(missing_ok=True)
            if claim is not None:
                self.release(claim)

    def compute(self, config: Config, dataset,
                training_factory: Callable[[Config, object], Training] = Training) -> Iterator[Snapshot]:
        """The run's snapshots: replayed from the cache on a hit, else trained (recorded while streaming), or, if
        another process holds its claim, replayed once that one's file is in place."""
        while True:
            cached = self.load(config, dataset)
            if cached is not None:
                yield from cached.snapshots
                return
            claim = self.claim(config, dataset)
            if claim is not None:
                break
            time.sleep(CLAIM_POLL_SECONDS)
        yield from self.record(training_factory(config, dataset), claim=claim)

    def entries(self) -> list[Path]:
        """Stored runs, least recently used first."""
        stats = []
        for path in self.directory.glob("*.h5"):
            try:
                stats.append((path.stat().st_mtime, path.name, path))
            except FileNotFoundError:
                continue
        return [path for _, _, path in sorted(stats)]

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete least recently used entries until the cache fits in max_bytes (never ``keep``); return them.

        Also removes temporary files left by writers that were killed long ago.
        """
        now = time.time()
        for stale in self.tmp.iterdir():
            try:
                if now - stale.stat().st_mtime > STALE_TMP_SECONDS:
                    stale.unlink()
            except FileNotFoundError:
                continue
        sizes = {}
        for path in self.entries():
            try:
                sizes[path] = path.stat().st_size
            except FileNotFoundError:
                continue
        total, removed = sum(sizes.values()), []
        for path, size in sizes.items():
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed
