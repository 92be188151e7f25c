"""A run file read back, checked item by item, as the very snapshots the engine produced (the layout: record.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .activations import ACTIVATIONS, canonical_name
from .config import Config, ConfigError
from .limits import Limits
from .memory import snapshots_bytes
from .network import Params
from .record import (FORMAT, FORMAT_VERSION, NORM_PARAMS, RUN_COLUMNS, SECONDS, STEP_PARAMS, RecordedRun,
                     RunFileError, stat_layout)
from .sandbox import parse
from .stats import HISTOGRAMS, Snapshot
from .untrusted import FileSource, ParseLimits, UntrustedFileError, read_tree

CLI_RUN_FILE = "a run file written by `python -m core train --out`"
PAGE_RUN_FILE = "a run file downloaded from Init Lab's Run file tab"
MAX_NAME_CHARS = 200  # dataset name and fingerprint
MAX_REASON_CHARS = 2000


def read_run(path: str | Path, weights: bool = True) -> RecordedRun:
    """The recorded run at ``path`` (a finished file or a ``.partial``); raises RunFileError if unreadable.

    The file is parsed in a separate, limited process (core.sandbox) and checked here item by item. Without
    ``weights`` its weights are not read (the run's ``initial_params`` and ``final_params`` are None, its
    ``step_params`` empty): a page following a live run reads only its statistics, at about half the cost.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"no run file at {path}; give the path of a .h5 file written by `train --out`")
    return _read(FileSource(str(path), path=str(path)), CLI_RUN_FILE, weights)


def read_uploaded_run(data: bytes, name: str) -> RecordedRun:
    """The recorded run in an uploaded file's bytes; messages name the file as ``name``, its upload name."""
    return _read(FileSource(f"uploaded file {name!r}", data=bytes(data)), PAGE_RUN_FILE)


def parse_initlab_file(source: FileSource, what: str, format_name: str,
                       skip: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """The attributes and arrays of an Init Lab HDF5 file whose `initlab_format` attribute is ``format_name``, parsed
    in the sandbox within the server's parse limits (``what`` names the kind of file in messages; the groups in
    ``skip`` are not read); RunFileError with the sandbox's message for anything it refuses."""
    try:
        limits = ParseLimits.from_env()
        attrs, arrays = parse(read_tree, source, what, limits.max_bytes, ("initlab_format", format_name), skip,
                              label=source.label, limits=limits)
    except UntrustedFileError as e:
        raise RunFileError(str(e)) from None
    return attrs["attrs"], arrays


def _read(source: FileSource, what: str, weights: bool = True) -> RecordedRun:
    skip = () if weights else ("params/",)
    return _RunTree(source.label, what, *parse_initlab_file(source, what, FORMAT, skip)).run(weights)


def _printable(text: str, limit: int) -> str:
    """Text from a file as one line a page or terminal can show: no control characters, at most ``limit`` long."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class _RunTree:
    """A run file's plain contents (from core.untrusted.read_tree) checked item by item and built into a run."""

    def __init__(self, label: str, what: str, attrs: dict[str, dict], arrays: dict[str, np.ndarray]):
        self.label, self.what, self.attrs, self.arrays = label, what, attrs, arrays

    def damaged(self, problem: str) -> RunFileError:
        return RunFileError(f"{self.label} is damaged: {problem}. Open {self.what}")

    def text(self, name: str) -> str:
        value = self.attrs.get("", {}).get(name)
        if not isinstance(value, str):
            raise self.damaged(f"the attribute {name} is missing or not text")
        return value

    def json(self, name: str, kind: type):
        try:
            value = json.loads(self.text(name))
        except ValueError:
            value = None
        if not isinstance(value, kind):
            raise self.damaged(f"the attribute {name} is not a JSON {kind.__name__}")
        return value

    def array(self, key: str, kinds: str, shape: tuple, optional: bool = False) -> np.ndarray | None:
        """The array at ``key`` with a dtype kind in ``kinds`` and this shape (None: any length there)."""
        a = self.arrays.get(key)
        if a is None and optional:
            return None
        where = key.replace("@", " attribute ") if key[0] != "@" else f"the attribute {key[1:]}"
        if a is None:
            raise self.damaged(f"{where} is missing")
        if a.dtype.kind not in kinds or a.ndim != len(shape) \
                or any(want is not None and got != want for got, want in zip(a.shape, shape)):
            want = "x".join("n" if n is None else str(n) for n in shape) or "a single value"
            kind = {"f": "floats", "iu": "integers", "u": "bytes", "iub": "integers"}[kinds]
            raise self.damaged(f"{where} holds {a.dtype} {a.shape} where {kind} of shape {want} belong")
        return a

    def params(self, group: str, dims: tuple[int, ...], norm: str) -> Params:
        W = [self.array(f"{group}/W{i}", "f", (dims[i], dims[i - 1])) for i in range(1, len(dims))]
        b = [self.array(f"{group}/b{i}", "f", (dims[i], 1)) for i in range(1, len(dims))]
        lsuv = self.array(f"{group}@lsuv_iterations", "iu", (None,), optional=True)
        return Params(W, b, () if lsuv is None else tuple(int(n) for n in lsuv),
                      *self.norm_params(group, dims, norm, ()))

    def norm_params(self, group: str, dims: tuple[int, ...], norm: str, rows: tuple) -> list[list[np.ndarray]]:
        """gamma, beta, running_mean, running_var per hidden layer (empty lists where the network has none), each
        (*rows, n_l, 1)."""
        names = NORM_PARAMS[:2] if norm == "layer" else NORM_PARAMS if norm == "batch" else ()
        return [[self.array(f"{group}/{name}{i}", "f", (*rows, dims[i], 1)) for i in range(1, len(dims) - 1)]
                if name in names else [] for name in NORM_PARAMS]

    def run(self, weights: bool = True) -> RecordedRun:
        if self.attrs.get("", {}).get("initlab_format") != FORMAT:
            raise RunFileError(f"{self.label} is an HDF5 file but not an Init Lab run file (it lacks the "
                               f"initlab_format marker); open {self.what}")
        version = self.arrays.get("@format_version")
        if version is None or version.shape != () or version.dtype.kind not in "iu":
            raise RunFileError(f"{self.label}: the run file's format_version is missing or not a whole number; it "
                               "is damaged")
        if int(version) > FORMAT_VERSION:
            raise RunFileError(f"{self.label} was written in run-file format {int(version)}, newer than this Init Lab "
                               f"reads (up to {FORMAT_VERSION}); update Init Lab to open it")
        try:
            config = Config.from_json(self.text("config"))
        except ConfigError as e:
            raise RunFileError(f"{self.label}: the recorded config is not valid here ({e})") from None
        dims = tuple(int(d) for d in self.array("@network_dims", "iu", (None,)))
        if len(dims) < 2 or min(dims) < 1:
            raise self.damaged(f"network_dims {list(dims)[:10]} does not describe a network")
        depth = len(dims) - 1
        activations = [canonical_name(a) for a in self.json("activations", list) if isinstance(a, str)]
        if len(activations) != depth - 1 or not all(a in ACTIVATIONS for a in activations):  # hidden layers'
            raise self.damaged(f"activations does not name {depth - 1} known activations")
        layout = stat_layout(depth, config.bins, config.norm)
        keys = self.json("stat_keys", list)
        if sorted(map(str, keys)) != sorted(layout) or len(keys) != len(layout):
            raise self.damaged("stat_keys does not list this Init Lab's statistics")
        kinds = {np.float64: "f", np.int64: "iu"}
        stats = {key: self.array(f"stats/{key}", kinds[layout[key][1]], (None, *layout[key][0])) for key in keys}
        columns = {name: self.array(f"run/{name}", "iu" if t is np.int64 else "f", (None,))
                   for name, t in RUN_COLUMNS.items()}
        n = min(a.shape[0] for a in [*stats.values(), *columns.values()])  # a kill may cut one block short
        self.check_snapshots(n, depth, config)
        edges = {h: self.array(f"edges/{h}", "f", (depth, config.bins + 1)) for h in HISTOGRAMS}
        complete = bool(self.array("status/complete", "iub", ()))
        reason = bytes(self.array("status/stopped_reason", "u", (None,))).decode("utf-8", errors="replace")
        values = {name: a[:n].tolist() for name, a in columns.items()}
        snapshots = [Snapshot(values["step"][i], values["loss"][i], values["train_accuracy"][i],
                              values["test_accuracy"][i], {key: block[i] for key, block in stats.items()}, edges)
                     for i in range(n)]
        seconds = self.array(f"run/{SECONDS}", "f", (None,), optional=True)
        initial = self.params("params/initial", dims, config.norm) if weights else None
        final = self.params("params/final", dims, config.norm) if complete and weights else None
        return RecordedRun(
            config=config,
            dataset_name=_printable(self.text("dataset_name"), MAX_NAME_CHARS),
            dataset_fingerprint=_printable(self.text("dataset_fingerprint"), MAX_NAME_CHARS),
            network_dims=dims,
            activations=tuple(activations),
            snapshots=snapshots,
            stopped_reason=_printable(reason, MAX_REASON_CHARS) or None,
            complete=complete,
            versions=self.json("versions", dict),
            initial_params=initial,
            final_params=final,
            step_params=(self.step_params(dims, config.norm, initial, final, snapshots[-1].step if snapshots else 0)
                         if weights else ()),
            # absent in files written before it was recorded; written before the steps, so never shorter here
            seconds=None if seconds is None or len(seconds) < n else tuple(seconds[:n].tolist()),
        )

    def check_snapshots(self, n: int, depth: int, config: Config) -> None:
        """Refuse, before building them, more snapshots than the cap on a run's recording allows: their arrays are
        within the parse limit, but each snapshot built from them adds ~4 kB of Python objects (by `snapshots_bytes`,
        1.6 million one-layer snapshots at 2 bins, 0.5 GB of arrays, would take 7 GB), and a server holds every
        snapshot of the runs its pages show."""
        cap = Limits.from_env().max_record_mb
        held = snapshots_bytes(n, depth, config.bins, config.norm)
        if held > cap * 2**20:
            raise RunFileError(f"{self.label} holds {n:,} snapshots, about {held / 2**20:,.0f} MB once read, over "
                               f"the cap of {cap:,} MB on what a run records (INITLAB_MAX_RECORD_MB); record a run "
                               "with a larger record_every")

    def step_params(self, dims: tuple[int, ...], norm: str, initial: Params, final: Params | None,
                    last_step: int) -> tuple[tuple[int, Params], ...]:
        """The weights by step (RecordedRun.step_params): the rows of /params/steps, else the initial weights; and
        the final ones at the last step if they are not its row."""
        steps = self.array(f"{STEP_PARAMS}/step", "iu", (None,), optional=True)
        if steps is None:
            kept = [(0, initial)]
        else:
            W = [self.array(f"{STEP_PARAMS}/W{i}", "f", (None, dims[i], dims[i - 1])) for i in range(1, len(dims))]
            b = [self.array(f"{STEP_PARAMS}/b{i}", "f", (None, dims[i], 1)) for i in range(1, len(dims))]
            extra = self.norm_params(STEP_PARAMS, dims, norm, (None,))
            rows = min(len(a) for a in (steps, *W, *b, *(a for group in extra for a in group)))  # a kill may cut
            kept = [(int(steps[j]), Params([w[j] for w in W], [c[j] for c in b], (),  # one block short
                                           *([a[j] for a in group] for group in extra))) for j in range(rows)]
            if any(later <= earlier for (earlier, _), (later, _) in zip(kept, kept[1:])):
                raise self.damaged(f"{STEP_PARAMS}/step is not increasing")
        if final is not None and (not kept or kept[-1][0] < last_step):
            kept.append((last_step, final))
        return tuple(kept)
