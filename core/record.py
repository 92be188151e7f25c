"""Every run recorded to one HDF5 file while it streams; run_reader.py reads it back as the snapshots it was.

Layout of a run file (format `FORMAT_VERSION`)::

    /                 attrs: initlab_format (the marker), format_version, config (JSON), versions (JSON),
                             dataset_name, dataset_fingerprint, network_dims, activations (JSON), stat_keys (JSON)
    /params/initial   W1..WL, b1..bL (attr lsuv_iterations)      /params/final  the same, valid once complete
                      and, where the network normalises (format 2), gamma<l>, beta<l>, and for batch norm
                      running_mean<l>, running_var<l> for each hidden layer l, as (n_l, 1) columns
                      (every dataset of the file is compressed: COMPRESSION)
    /params/steps     W1..WL, b1..bL, step: one row per snapshot whose step is a multiple of the attribute
                      params_every, the weights as the snapshot left them; only for 2-D inputs (the decision boundary
                      is drawn from them), within STEP_PARAMS_BUDGET; absent in other and older files
    /run/<column>     step, loss, train_accuracy, test_accuracy: one row per recorded step (test_accuracy NaN at
                      steps that did not measure it: core/train.py's TEST_EVERY, or no test split)
    /run/seconds      wall-clock seconds from the start of the run to each row's snapshot (absent in files
                      written before it was added: readers then have no timing, `RecordedRun.seconds` is None)
    /stats/<key>      one row per recorded step: (n, L) scalars, (n, L, bins) histograms, (n, L, 2) outside counts
                      (normalised networks add core.stats.NORM_SCALARS, format 2)
    /edges/<h>        (L, bins + 1): histogram edges, fixed for a run, so stored once
    /status           complete (int8), stopped_reason (utf-8 bytes)

The writer works in HDF5's single-writer/multiple-reader (SWMR) mode: every object exists before the first step,
and afterwards only rows are appended and flushed, which HDF5 orders so that a process killed at any moment
leaves a file that opens and holds every row up to its last flush. Rows are buffered and written in blocks at
each flush (at least once per ``flush_seconds``), which keeps recording cheap when the engine records every step.
While the run streams the file is ``<path>.partial``; it is renamed to ``<path>`` when the run ends.
"""

from __future__ import annotations

import bisect
import errno
import json
import math
import os
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from .config import Config
from .network import Params
from .stats import HISTOGRAMS, NORM_SCALARS, SCALARS, Snapshot
from .train import Training

FORMAT = "initlab-run"
FORMAT_VERSION = 2  # 2: normalised networks' gamma, beta, running statistics and NORM_SCALARS (1 reads as plain)
PARTIAL_SUFFIX = ".partial"
RUN_COLUMNS = {"step": np.int64, "loss": np.float64, "train_accuracy": np.float64, "test_accuracy": np.float64}
SECONDS = "seconds"  # optional column: older files lack it, so it is not one of RUN_COLUMNS
DEFAULT_STOP = "stopped by the user at step {step}"
# A flush rewrites each dataset's last, partly filled chunk, and in SWMR mode HDF5 never reuses the space the old
# copy held: chunks of a few rows keep that leak small (large chunks made a 2,500-step file 80 MB).
CHUNK_ROWS = 32
CHUNK_BYTES = 256 * 1024  # fewer rows per chunk when layers are many
# gzip level 1 is cheap; shuffling the bytes first lets mostly-small int64 counts shrink well, and the weights'
# sign and exponent bytes (their mantissas are noise: see the README for the ratios measured)
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
STEP_PARAMS = "params/steps"
# The weights a 2-D run keeps for its decision boundary, all snapshots together (in memory and in its file): every
# snapshot's for the toy networks (the course's 2-10-5-1 on 15,000 steps keeps 151 x 808 bytes), fewer for big ones.
STEP_PARAMS_BUDGET = 8 * 2**20
# Free space a write must leave: HDF5's own metadata, and closing the file cleanly. HDF5 survives few failed writes
# (a failed SWMR start leaves it to crash the process later), so writes that would not fit are refused before.
SPACE_MARGIN = 256 * 1024


class RunFileError(ValueError):
    """A run file cannot be read (missing, not HDF5, truncated, foreign, or from a newer Init Lab) or written."""


class RunWriteError(RunFileError):
    """Writing a run file failed part way (``disk_full``: no space left); the partial file has been removed. The
    message names no path: it may reach a page."""

    def __init__(self, cause: BaseException):
        self.disk_full = _is_disk_full(cause)
        super().__init__("the disk is full, so the run file could not be written" if self.disk_full else
                         f"the run file could not be written ({_strerror(cause)})")


def _is_disk_full(error: BaseException) -> bool:
    """h5py reports a failed write as OSError with the errno, or as RuntimeError with it only in the message."""
    if getattr(error, "errno", None) in DISK_FULL_ERRNOS:
        return True
    return any(f"errno = {code}," in str(error) or os.strerror(code) in str(error) for code in DISK_FULL_ERRNOS)


def _strerror(error: BaseException) -> str:
    code = getattr(error, "errno", None)
    return os.strerror(code) if code else type(error).__name__


@dataclass(frozen=True)
class RecordedRun:
    config: Config
    dataset_name: str
    dataset_fingerprint: str
    network_dims: tuple[int, ...]
    activations: tuple[str, ...]
    snapshots: list[Snapshot]
    stopped_reason: str | None
    complete: bool  # False for a .partial left by a writer that never finished
    versions: dict
    initial_params: Params | None  # None when read without its weights (core.run_reader.read_run)
    final_params: Params | None  # None unless complete
    seconds: tuple[float, ...] | None = None  # per snapshot, from the start of the run; None in older files
    # (step, weights) by step: every params_every steps (2-D inputs); else, as in older files, the initial weights
    # (step 0) and, once complete, the final ones (the last snapshot's step)
    step_params: tuple[tuple[int, Params], ...] = ()


def params_every(dims: tuple[int, ...], config: Config) -> int:
    """Every how many steps a run keeps its weights for the decision boundary: 0 (never) unless the network takes
    2-D inputs; else at every snapshot (record_every) if they all fit STEP_PARAMS_BUDGET, at every k-th if not."""
    if dims[0] != 2:
        return 0
    per_snapshot = 8 * sum(dims[i] * (dims[i - 1] + 1) for i in range(1, len(dims)))
    if config.norm != "none":
        per_snapshot += 8 * len(NORM_PARAMS) * sum(dims[1:-1])
    snapshots = config.iterations // config.record_every + 2
    return config.record_every * max(1, math.ceil(snapshots * per_snapshot / STEP_PARAMS_BUDGET))


def keep_step_params(kept: list[tuple[int, Params]], step: int, params: Params, every: int,
                     last: bool = False) -> None:
    """Append a copy of `params` as `step`'s if the step falls on `every` (or is the run's `last`) and is not kept
    yet. Append-only: another thread can read the list while it grows."""
    if every and (step % every == 0 or last) and (not kept or kept[-1][0] < step):
        kept.append((step, params.copy()))


def params_at(kept, step: int) -> tuple[int, Params] | None:
    """The (step, weights) kept at the latest step at or before `step`; None if none is."""
    i = bisect.bisect_right([s for s, _ in kept], step)
    return kept[i - 1] if i else None


def partial_path(path: str | Path) -> Path:
    """Where a run to be saved as ``path`` is written while it streams."""
    return Path(f"{path}{PARTIAL_SUFFIX}")


def package_versions() -> dict[str, str | int]:
    return {"initlab_format": FORMAT_VERSION, "python": platform.python_version(), "numpy": np.__version__,
            "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}


def stat_layout(depth: int, bins: int, norm: str = "none") -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-row shape and dtype of every statistic a snapshot carries, in the engine's key order."""
    layout: dict[str, tuple[tuple[int, ...], type]] = {name: ((depth,), np.float64) for name in SCALARS}
    for h in HISTOGRAMS:
        layout[f"{h}_hist"] = ((depth, bins), np.int64)
        layout[f"{h}_outside"] = ((depth, 2), np.int64)
    if norm != "none":
        layout.update({name: ((depth,), np.float64) for name in NORM_SCALARS})
    return layout


def _row_dataset(group: h5py.Group, name: str, row_shape: tuple[int, ...], dtype) -> h5py.Dataset:
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    rows = min(CHUNK_ROWS, max(1, CHUNK_BYTES // row_bytes))
    return group.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
                                chunks=(rows, *row_shape), **COMPRESSION)


def _params_group(group: h5py.Group, params: Params, write: bool) -> list[h5py.Dataset]:
    """The datasets of `_params_arrays`, in its order."""
    datasets = [group.create_dataset(name, data=a if write else None, shape=a.shape, dtype=a.dtype, **COMPRESSION)
                for name, a in _params_arrays(params)]
    group.attrs["lsuv_iterations"] = np.asarray(params.lsuv_iterations, dtype=np.int64)
    return datasets


NORM_PARAMS = ("gamma", "beta", "running_mean", "running_var")  # per hidden layer, where the network normalises


def _params_arrays(params: Params) -> list[tuple[str, np.ndarray]]:
    """W1..WL, b1..bL, then gamma1.., beta1.., running_mean1.., running_var1.. where the network has them."""
    groups = (("W", params.W), ("b", params.b), *((name, getattr(params, name)) for name in NORM_PARAMS))
    return [(f"{prefix}{i}", a) for prefix, arrays in groups for i, a in enumerate(arrays, start=1)]


class RunRecorder:
    """Writes one run to ``<path>.partial`` as it streams; `finish` completes it and renames it to ``path``.

    Create it before the training is iterated: the parameters it finds are stored as the initial ones.
    Leaving the ``with`` block without `finish` (an error in the run) closes the file cleanly as incomplete.
    A write that would not fit on the disk, or fails, raises RunWriteError and removes the partial file. Each write
    is refused beforehand if the disk lacks room for it (see SPACE_MARGIN); one that fails all the same (another
    process filled the disk meanwhile) is handled too: HDF5 cannot close a file whose writes fail, and a file it
    leaves open crashes the next one it creates, so the file's blocks are freed (truncated) for the close to go
    through.
    """

    def __init__(self, path: str | Path, training: Training, *, flush_seconds: float = 1.0):
        self.path = Path(path)
        self.partial = partial_path(path)
        self.training = training
        self.flush_seconds = flush_seconds
        net, config = training.network, training.config
        self.layout = stat_layout(net.depth, config.bins, net.norm)
        self.params_every = params_every(net.dims, config)
        try:
            self.file = h5py.File(self.partial, "w", libver="latest")
        except OSError as e:
            if _is_disk_full(e):
                self.partial.unlink(missing_ok=True)
                raise RunWriteError(e) from None
            raise RunFileError(f"cannot write the run file {self.partial}: {e}; choose a writable path") from None
        with self._writing():
            self._require_space(sum(a.nbytes for _, a in _params_arrays(training.params)))
            self._create_layout(net, config)
        self.buffer: list[Snapshot] = []
        self.times: list[float] = []  # seconds from the start of the run of each buffered snapshot
        self.params_buffer: list[tuple[int, Params]] = []  # the weights of the buffered snapshots that keep them
        self.rows = self.params_rows = 0
        self.started = self.last_flush = self.last_add = time.monotonic()
        self.interval = 0.0  # time between the last two snapshots

    def _create_layout(self, net, config: Config) -> None:
        """Every object of the file (see the module), then SWMR mode."""
        training, f = self.training, self.file
        f.attrs.update({
            "initlab_format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_json(),
            "versions": json.dumps(package_versions()), "dataset_name": training.dataset.name,
            "dataset_fingerprint": training.dataset.fingerprint(), "network_dims": np.asarray(net.dims, np.int64),
            "activations": json.dumps(list(net.activations)), "stat_keys": json.dumps(list(self.layout)),
        })
        # every dataset stays referenced until the file is closed: h5py closes one it drops at once, and a close
        # whose write fails is an error h5py can only ignore, which leaves HDF5 unable to close the file at all
        self.initial = _params_group(f.create_group("params/initial"), training.params, write=True)
        self.final = _params_group(f.create_group("params/final"), training.params, write=False)
        self.columns = {name: _row_dataset(f.require_group("run"), name, (), t)
                        for name, t in {**RUN_COLUMNS, SECONDS: np.float64}.items()}
        self.stats = {key: _row_dataset(f.require_group("stats"), key, shape, t)
                      for key, (shape, t) in self.layout.items()}
        self.edges = {h: f.create_dataset(f"edges/{h}", shape=(net.depth, config.bins + 1), dtype=np.float64)
                      for h in HISTOGRAMS}
        self.step_params = {}
        if self.params_every:
            steps = f.create_group(STEP_PARAMS)
            steps.attrs["params_every"] = self.params_every
            self.step_params = {name: _row_dataset(steps, name, a.shape, a.dtype)
                                for name, a in _params_arrays(training.params)}
            self.step_params["step"] = _row_dataset(steps, "step", (), np.int64)
        self.complete = f.create_dataset("status/complete", data=np.int8(0))
        self.reason = f.create_dataset("status/stopped_reason", shape=(0,), maxshape=(None,), dtype=np.uint8,
                                       chunks=(256,))
        f.swmr_mode = True  # from here on only rows are appended: a kill leaves a readable file
        f.flush()

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _writing(self):
        """Turn a failed write into RunWriteError, leaving no file behind (see the class)."""
        try:
            yield
        except (OSError, RuntimeError) as e:  # h5py raises either for a write that failed
            self._abandon()
            raise RunWriteError(e) from None

    def _require_space(self, nbytes: int) -> None:
        """Raise (as a full disk) unless ``nbytes`` and the margin fit on the disk. Call within `_writing`."""
        if shutil.disk_usage(self.partial.parent).free < nbytes + SPACE_MARGIN:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _abandon(self) -> None:
        try:
            os.truncate(self.partial, 0)  # frees the disk, so the metadata HDF5 writes on closing fits
        except OSError:
            pass
        try:
            self.file.close()
        except (OSError, RuntimeError):
            pass  # nothing more can be done for it; the file is removed either way
        self.partial.unlink(missing_ok=True)

    def add(self, snapshot: Snapshot) -> None:
        """Queue one snapshot's row; flush when waiting for the next one would let a row go unflushed too long."""
        if set(snapshot.stats) != set(self.layout):
            raise ValueError(f"snapshot statistics {sorted(set(snapshot.stats) ^ set(self.layout))} do not match "
                             "the run file's layout")
        if self.rows == 0 and not self.buffer:
            with self._writing():
                for h, ds in self.edges.items():
                    ds[...] = snapshot.edges[h]
        now = time.monotonic()
        self.buffer.append(snapshot)
        self.times.append(now - self.started)
        keep_step_params(self.params_buffer, snapshot.step, self.training.params, self.params_every)
        self.interval, self.last_add = now - self.last_add, now
        if now + self.interval - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Append the buffered rows in one block per dataset and flush them to disk."""
        with self._writing():
            if self.buffer:
                n, k = self.rows, len(self.buffer)
                datasets = {**self.stats, **self.columns}
                # at most: each dataset's chunks that k rows from row n touch, rewritten uncompressed
                self._require_space(sum(int(np.prod(ds.chunks)) * ds.dtype.itemsize * (k // ds.chunks[0] + 2)
                                        for ds in datasets.values()))
                blocks = {key: np.stack([s.stats[key] for s in self.buffer]) for key in self.stats}
                blocks.update({name: np.array([getattr(s, name) for s in self.buffer]) for name in RUN_COLUMNS})
                blocks[SECONDS] = np.array(self.times)
                for key in [*self.stats, "loss", "train_accuracy", "test_accuracy", SECONDS, "step"]:  # steps last
                    ds = datasets[key]
                    ds.resize(n + k, axis=0)
                    ds[n:n + k] = blocks[key]
                self.rows, self.buffer, self.times = n + k, [], []
            if self.params_buffer:
                self._flush_step_params()
            self.file.flush()
        self.last_flush = time.monotonic()

    def _flush_step_params(self) -> None:
        """Append the buffered weights, one row per kept step (steps last, as the snapshots'). Call within
        `_writing`."""
        n, k = self.params_rows, len(self.params_buffer)
        self._require_space(sum(a.nbytes for _, p in self.params_buffer for _, a in _params_arrays(p)))
        blocks = {name: np.stack([dict(_params_arrays(p))[name] for _, p in self.params_buffer])
                  for name in self.step_params if name != "step"}
        blocks["step"] = np.array([step for step, _ in self.params_buffer], dtype=np.int64)
        for name, block in blocks.items():
            self.step_params[name].resize(n + k, axis=0)
            self.step_params[name][n:n + k] = block
        self.params_rows, self.params_buffer = n + k, []

    def finish(self, stopped_reason: str | None = None) -> Path:
        """Store the final parameters and the stop reason (``stopped_reason`` or the training's), mark the file
        complete, close it and rename it to the target path."""
        reason = stopped_reason or self.training.stopped_reason
        params = self.training.params
        with self._writing():
            self._require_space(sum(ds.nbytes for ds in self.final))
            for ds, (_, a) in zip(self.final, _params_arrays(params)):
                ds[...] = a
            if reason:
                encoded = np.frombuffer(reason.encode("utf-8"), dtype=np.uint8)
                self.reason.resize(encoded.shape)
                self.reason[...] = encoded
        self.flush()  # rows and final parameters before the flag that vouches for them
        with self._writing():
            self.complete[()] = 1
        self.close()  # a write that fails here raises before the rename: only a whole file gets the final name
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if self.file.id.valid:
            self.flush()
            with self._writing():
                self.file.close()


def record(training: Training, path: str | Path, *, flush_seconds: float = 1.0,
           stop_reason: Callable[[], str | None] | None = None) -> Iterator[Snapshot]:
    """Iterate ``training``, recording and yielding each snapshot; the file is finished and renamed when the run
    ends, diverges, or the caller closes this iterator. Closed early, the recorded reason is ``stop_reason()`` if
    the caller gives one that returns a reason (a server's time cap, say), else that the user stopped it."""
    with RunRecorder(path, training, flush_seconds=flush_seconds) as recorder:
        steps = iter(training)
        for snapshot in steps:
            recorder.add(snapshot)
            try:
                yield snapshot
            except GeneratorExit:
                steps.close()
                reason = stop_reason() if stop_reason is not None else None
                recorder.finish(reason or DEFAULT_STOP.format(step=snapshot.step))
                raise
        recorder.finish()
