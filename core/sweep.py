"""A trainability sweep (Schoenholz et al. 2017, Fig. 5-6): one training per (sigma_w^2, depth) cell, run as Dask tasks.

Each cell is the ordinary engine on one config: `depth` hidden layers of `width` units, weights LeCun normal
(Var(W) = 1 / n_in) times a gain of sqrt(sigma_w^2), so n_in Var(W) = sigma_w^2 in every layer, the output layer
included; biases N(0, sigma_b^2) (the "normal" bias initialiser with value sigma_b): the parametrisation of the
mean-field theory (core/criticality.py). `train_cell` runs in a worker: it records the run to ``<cache>/<key>.h5``
(core.record: ``.partial`` while it trains, renamed when done) and its figures to ``<key>.json`` (temp file and
rename), where a later sweep, from any client, finds them and does not train the cell again. `SweepRun` submits the
missing cells to a Dask client and hands out their figures as they complete; `cancel` drops the cells not started.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .config import Config, ConfigError
from .criticality import chi_1, criticality
from .limits import Limits, check_limits, numbers_from_env
from .network import Network
from .record import record
from .tasks import submit
from .train import Training

ENV = {"max_cells": "INITLAB_MAX_SWEEP_CELLS", "max_sweep_steps": "INITLAB_MAX_SWEEP_STEPS"}
CURVE_POINTS = 12  # snapshots recorded per cell (its loss curve): each evaluates the whole data set, so few
WORKER_DEATHS = 3  # times a cell is computed again after the worker computing it died (killed, out of memory)
TRAINED_ABOVE_CHANCE = 0.5  # a cell "trained" if its train accuracy is halfway from chance to perfect, or more


@dataclass(frozen=True)
class SweepLimits:
    """What one sweep may ask of a shared server; an operator raises them through the environment."""

    max_cells: int = 400
    max_sweep_steps: int = 2000  # training steps of one cell

    @classmethod
    def from_env(cls, environ=os.environ) -> "SweepLimits":
        return cls(**numbers_from_env(ENV, environ))


def parse_axis(text: str, name: str, whole: bool = False) -> tuple:
    """"1:4:16" is 16 values from 1 to 4 evenly spaced, "1,2,3" those values, "2" one; whole numbers for depths
    (rounded, repeats dropped). Raises ConfigError saying how to write it."""
    how = f"{name} takes START:STOP:COUNT (e.g. 1:4:16), a list 1,2,3, or one number"
    try:
        parts = text.split(":")
        if len(parts) == 3:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            values = np.linspace(start, stop, count)
        elif len(parts) == 1:
            values = np.array([float(v) for v in text.split(",")])
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{name}={text[:40]!r}: {how}") from None
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"{name}={text[:40]!r}: every value must be a positive number; {how}")
    if whole:
        return tuple(int(v) for v in np.unique(np.round(values)) if v >= 1)
    return tuple(float(v) for v in np.unique(values))


@dataclass(frozen=True)
class SweepSpec:
    """The grid: sigma_w^2 (columns) by depth (rows), every other setting from ``base`` (its layers, init, gain and
    bias are the cell's own)."""

    base: Config
    sigma_w2: tuple[float, ...]
    depths: tuple[int, ...]
    width: int
    sigma_b2: float

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.depths), len(self.sigma_w2)

    def cell_config(self, row: int, column: int) -> Config:
        return self.base.replace(layers=(self.width,) * self.depths[row], init="lecun_normal",
                                 init_gain=math.sqrt(self.sigma_w2[column]), bias_init="normal",
                                 bias_value=math.sqrt(self.sigma_b2),
                                 record_every=max(1, self.base.iterations // CURVE_POINTS))

    def cells(self) -> Iterator[tuple[int, int]]:
        for row in range(len(self.depths)):
            for column in range(len(self.sigma_w2)):
                yield row, column

    def check(self, dataset, limits: Limits, caps: SweepLimits) -> None:
        """ConfigError naming the cap a sweep would exceed; the deepest cell against the engine's caps."""
        cells = len(self.depths) * len(self.sigma_w2)
        if cells > caps.max_cells:
            raise ConfigError(f"{len(self.depths)} depths x {len(self.sigma_w2)} sigma_w^2 values = {cells} cells, "
                              f"over this server's cap of {caps.max_cells} ({ENV['max_cells']}); use fewer values")
        if self.base.iterations > caps.max_sweep_steps:
            raise ConfigError(f"{self.base.iterations:,} steps per cell is over the cap of {caps.max_sweep_steps:,} "
                              f"({ENV['max_sweep_steps']}); use fewer steps")
        if self.sigma_b2 < 0:
            raise ConfigError(f"sigma_b^2 must be 0 or more, got {self.sigma_b2:g}")
        deepest = self.cell_config(len(self.depths) - 1, 0)
        net = Network.from_config(deepest, dataset.n_features, dataset.output_size)
        check_limits(net, deepest, dataset.x_train.shape[1], dataset.x_test.shape[1], limits)

    def to_dict(self) -> dict:
        return {"base": self.base.to_dict(), "sigma_w2": list(self.sigma_w2), "depths": list(self.depths),
                "width": self.width, "sigma_b2": self.sigma_b2}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        return cls(Config.from_dict(data["base"]), tuple(float(v) for v in data["sigma_w2"]),
                   tuple(int(v) for v in data["depths"]), int(data["width"]), float(data["sigma_b2"]))


def cell_key(config: Config, fingerprint: str) -> str:
    """One config on one dataset: the key of its run file in a cache, and of its Dask task."""
    return hashlib.sha256(f"{config.to_json()}|{fingerprint}".encode()).hexdigest()[:24]


def task_key(key: str) -> str:
    return f"initlab-cell-{key}"


def cached_figures(cache: str | Path, key: str) -> dict | None:
    """A cell's figures if a sweep trained it into this cache folder already."""
    try:
        return json.loads((Path(cache) / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def write_atomically(path: Path, write) -> None:
    """``write(temporary path)``, then rename it to ``path``: a reader sees the whole file or none."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache's files from the other users' workers
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def train_cell(config: Config, dataset, limits: Limits, cache: str) -> dict:
    """Train one cell (in a worker), record its run file, and return (and cache) its figures: final train and test
    accuracy, loss, whether it diverged, its loss curve (steps, losses) and seconds. A cell a sweep already trained
    into ``cache`` is read back, not trained."""
    key = cell_key(config, dataset.fingerprint())
    found = cached_figures(cache, key)
    if found is not None:
        return found
    started = time.monotonic()
    training = Training(config, dataset, limits)
    steps, losses, last, test_accuracy = [], [], None, math.nan
    for snapshot in record(training, Path(cache) / f"{key}.h5"):
        steps.append(snapshot.step)
        losses.append(snapshot.loss)
        last = snapshot
        if not math.isnan(snapshot.test_accuracy):  # a diverged run's last snapshot may not have measured it
            test_accuracy = snapshot.test_accuracy
    figures = {"train_accuracy": last.train_accuracy if last else math.nan, "test_accuracy": test_accuracy,
               "loss": last.loss if last else math.nan, "diverged": training.diverged,
               "message": training.stopped_reason, "steps": steps, "losses": losses,
               "seconds": time.monotonic() - started}
    if training.diverged:  # what is left is untrained: the accuracies the last sound weights gave, not a result
        figures["loss"] = math.nan
    write_atomically(Path(cache) / f"{key}.json", lambda p: p.write_text(json.dumps(figures)))
    return figures


@dataclass
class SweepRun:
    """A sweep on a Dask ``client``: cells found in ``cache`` at once, the others as their tasks complete."""

    spec: SweepSpec
    dataset: object
    client: object  # a distributed.Client; may be None until `submit` (all cells cached: no cluster needed)
    cache: Path
    limits: Limits = field(default_factory=Limits)
    results: dict = field(default_factory=dict)  # (row, column) -> figures
    cached: int = 0  # cells found in the cache
    started: float = field(default_factory=time.monotonic)
    priority: int = 0  # of the cells, deepest first above it (the dashboard's: below every student's own runs)

    def __post_init__(self):
        self.cache = Path(self.cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.futures: dict = {}  # future -> (row, column)
        self.cancelled = False

    @property
    def total(self) -> int:
        rows, columns = self.spec.shape
        return rows * columns

    def find_cached(self) -> list[tuple[int, int, Config]]:
        """Take the cells found in the cache; return the others' (row, column, config)."""
        fingerprint, missing = self.dataset.fingerprint(), []
        for row, column in self.spec.cells():
            config = self.spec.cell_config(row, column)
            found = cached_figures(self.cache, cell_key(config, fingerprint))
            if found is None:
                missing.append((row, column, config))
            else:
                self.results[row, column] = found
                self.cached += 1
        return missing

    def submit(self, missing: list[tuple[int, int, Config]]) -> None:
        """The missing cells as tasks, deepest first: they take longest, so they do not end up last on one worker."""
        if not missing:
            return
        [dataset] = self.client.scatter([self.dataset], broadcast=True)  # to each worker once, not once per cell
        fingerprint = self.dataset.fingerprint()
        for row, column, config in missing:
            future = submit(self.client, task_key(cell_key(config, fingerprint)), self.priority + self.spec.depths[row],
                            train_cell, config, dataset, self.limits, str(self.cache))
            self.futures[future] = (row, column)

    def completed(self) -> Iterator[tuple[int, int, dict]]:
        """(row, column, figures) of every cell, cached ones first, then each as its task completes. A cell whose
        worker died under it is computed again (up to WORKER_DEATHS times: a cluster may fail such a task at once,
        as the dashboard's does); any other failure raises its error. Ends early after `cancel`."""
        from distributed import KilledWorker, as_completed

        for (row, column), figures in list(self.results.items()):
            yield row, column, figures
        if not self.futures:
            return
        deaths: dict = {}
        pending = as_completed(list(self.futures))
        for future in pending:
            if self.cancelled:
                return
            if future.cancelled():
                continue
            if future.status == "error" and isinstance(future.exception(), KilledWorker) and \
                    deaths.get(future.key, 0) < WORKER_DEATHS:
                deaths[future.key] = deaths.get(future.key, 0) + 1
                future.retry()
                pending.add(future)
                continue
            row, column = self.futures.pop(future)
            self.results[row, column] = future.result()
            yield row, column, self.results[row, column]

    def cancel(self) -> None:
        """Drop the cells not yet computed: queued ones never start; one running finishes into the cache."""
        self.cancelled = True
        self.client.cancel(list(self.futures))

    def eta(self) -> float | None:
        """Seconds left at the pace of the cells trained so far (cached ones took no time); None before any."""
        trained = len(self.results) - self.cached
        if trained == 0:
            return None
        return (time.monotonic() - self.started) / trained * (self.total - len(self.results))


# --- the theory beside it, and what the heatmap shows ---------------------------------------------------------
def trained(figures: dict, classes: int) -> bool:
    chance = 1.0 / max(classes, 2)
    accuracy = figures.get("train_accuracy", math.nan)
    return not figures.get("diverged") and accuracy >= chance + TRAINED_ABOVE_CHANCE * (1 - chance)


def trainable_depths(activation: str, sigma_w2, sigma_b2: float) -> np.ndarray:
    """6 xi_c per sigma_w^2 (Schoenholz et al.: networks train to about this depth); inf at chi_1 = 1."""
    return np.array([6 * criticality(activation, float(s), sigma_b2).xi_c for s in np.atleast_1d(sigma_w2)])


def critical_sigma_w2(activation: str, sigma_b2: float, low: float = 1e-3, high: float = 1e3) -> float | None:
    """The sigma_w^2 where chi_1 = 1 at this sigma_b^2 (chi_1 grows with sigma_w^2), by bisection on a log scale;
    None if chi_1 does not cross 1 in [low, high]."""
    def above(s: float) -> bool:
        return float(chi_1(activation, s, sigma_b2)) > 1.0

    if above(low) or not above(high):
        return None
    for _ in range(60):
        middle = math.sqrt(low * high)
        low, high = (low, middle) if above(middle) else (middle, high)
    return math.sqrt(low * high)


def boundary_depths(spec: SweepSpec, results: dict, classes: int) -> list[float]:
    """Per sigma_w^2 column, the largest depth whose cell trained (nan if none did, or if a cell is missing)."""
    out = []
    for column in range(len(spec.sigma_w2)):
        column_cells = [results.get((row, column)) for row in range(len(spec.depths))]
        if any(c is None for c in column_cells):
            out.append(math.nan)
            continue
        depths = [spec.depths[row] for row, c in enumerate(column_cells) if trained(c, classes)]
        out.append(float(max(depths)) if depths else math.nan)
    return out
