"""A sweep's results in one HDF5 file (core/sweep.py computes them), written whole or not at all, read back checked.

Layout (format `FORMAT_VERSION`)::

    /         attrs: initlab_format = "initlab-sweep", format_version, spec (JSON: the grid and the base config),
                     dataset_name, dataset_fingerprint, classes, versions (JSON)
    /cells    (depths, sigma_w^2 values): train_accuracy, test_accuracy, loss, seconds (nan where a cell was not
              computed), diverged, done (int8); curve_steps, curve_loss (depths, sigma_w^2, points): each cell's
              loss curve, padded with -1 / nan; attrs config_<row>_<column>: each computed cell's config (JSON)

The file is written to a temporary file beside ``path`` and renamed over it, so a crash leaves the previous file or
none, never half of one. It is read like every file from outside: parsed in the sandbox (core.sandbox), then checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .config import Config, ConfigError
from .record import RunFileError, package_versions
from .sweep import SweepSpec, write_atomically
from .run_reader import parse_initlab_file
from .untrusted import FileSource

FORMAT = "initlab-sweep"
FORMAT_VERSION = 1
FIGURES = ("train_accuracy", "test_accuracy", "loss", "seconds")
SWEEP_FILE = "a sweep file written by `python -m core sweep --out` or downloaded from the Sweep tab"


@dataclass
class SweepResults:
    spec: SweepSpec
    dataset_name: str
    dataset_fingerprint: str
    classes: int
    results: dict  # (row, column) -> figures, as train_cell returns them


def write_sweep(path: str | Path, sweep: SweepResults) -> None:
    path = Path(path)
    write_atomically(path, lambda temporary: _write(temporary, sweep))


def _write(path: Path, sweep: SweepResults) -> None:
    spec, shape = sweep.spec, sweep.spec.shape
    points = max([len(f["steps"]) for f in sweep.results.values()] + [1])
    with h5py.File(path, "w") as f:
        f.attrs.update({"initlab_format": FORMAT, "format_version": FORMAT_VERSION,
                        "spec": json.dumps(spec.to_dict()), "dataset_name": sweep.dataset_name,
                        "dataset_fingerprint": sweep.dataset_fingerprint, "classes": sweep.classes,
                        "versions": json.dumps(package_versions())})
        cells = f.create_group("cells")
        arrays = {name: np.full(shape, np.nan) for name in FIGURES}
        diverged, done = np.zeros(shape, np.int8), np.zeros(shape, np.int8)
        steps, losses = np.full((*shape, points), -1, np.int64), np.full((*shape, points), np.nan)
        for (row, column), figures in sweep.results.items():
            for name in FIGURES:
                arrays[name][row, column] = _number(figures[name])
            diverged[row, column], done[row, column] = bool(figures["diverged"]), 1
            n = len(figures["steps"])
            steps[row, column, :n] = figures["steps"]
            losses[row, column, :n] = [_number(v) for v in figures["losses"]]
            cells.attrs[f"config_{row}_{column}"] = spec.cell_config(row, column).to_json()
        for name, values in {**arrays, "diverged": diverged, "done": done, "curve_steps": steps,
                             "curve_loss": losses}.items():
            cells.create_dataset(name, data=values, compression="gzip", compression_opts=1)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def read_sweep(path: str | Path) -> SweepResults:
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"no sweep file at {path}; give the path of a file written by `python -m core sweep --out`")
    return _read(FileSource(str(path), path=str(path)))


def read_uploaded_sweep(data: bytes, name: str) -> SweepResults:
    """The sweep in an uploaded file's bytes; messages name the file as ``name``, its upload name."""
    return _read(FileSource(f"uploaded file {name!r}", data=bytes(data)))


def _read(source: FileSource) -> SweepResults:
    return _checked(source.label, *parse_initlab_file(source, SWEEP_FILE, FORMAT))


def _checked(label: str, texts: dict, arrays: dict) -> SweepResults:
    def damaged(problem: str) -> RunFileError:
        return RunFileError(f"{label} is damaged: {problem}. Open {SWEEP_FILE}")

    root = texts.get("", {})
    if root.get("initlab_format") != FORMAT:
        raise RunFileError(f"{label} is not an Init Lab sweep file; open {SWEEP_FILE}")
    version = arrays.get("@format_version")
    if version is None or version.size != 1 or int(version.reshape(-1)[0]) > FORMAT_VERSION:
        raise RunFileError(f"{label} was written by a newer Init Lab (or is damaged); open it with that version")
    try:
        spec = SweepSpec.from_dict(json.loads(root.get("spec", "")))
    except (ValueError, KeyError, TypeError, ConfigError):
        raise damaged("its grid (the attribute spec) is missing or not valid") from None
    shape = spec.shape
    classes = arrays.get("@classes")
    if classes is None or classes.size != 1 or not 1 <= int(classes.reshape(-1)[0]) <= 10_000:
        raise damaged("the attribute classes is missing or not a class count")
    grids = {}
    for name in (*FIGURES, "diverged", "done", "curve_steps", "curve_loss"):
        values = arrays.get(f"cells/{name}")
        if values is None or values.shape[:2] != shape or values.ndim != (3 if name.startswith("curve") else 2):
            raise damaged(f"cells/{name} is missing or not a {shape[0]} x {shape[1]} grid")
        grids[name] = values
    if grids["curve_steps"].shape != grids["curve_loss"].shape:
        raise damaged("cells/curve_steps and cells/curve_loss differ in shape")
    cell_texts = texts.get("cells", {})
    results = {}
    for row, column in zip(*np.nonzero(grids["done"])):
        row, column = int(row), int(column)
        try:
            config = Config.from_json(cell_texts.get(f"config_{row}_{column}", ""))
        except ConfigError:
            raise damaged(f"the config of cell ({row}, {column}) is missing or not valid") from None
        if config != spec.cell_config(row, column):
            raise damaged(f"the config of cell ({row}, {column}) is not its grid point's")
        kept = grids["curve_steps"][row, column] >= 0
        results[row, column] = {
            **{name: float(grids[name][row, column]) for name in FIGURES},
            "diverged": bool(grids["diverged"][row, column]),
            "steps": [int(s) for s in grids["curve_steps"][row, column][kept]],
            "losses": [float(v) for v in grids["curve_loss"][row, column][kept]]}
    return SweepResults(spec, root.get("dataset_name", "")[:200], root.get("dataset_fingerprint", "")[:200],
                        int(classes.reshape(-1)[0]), results)
