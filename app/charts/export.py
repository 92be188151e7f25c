"""CSV of what the dashboard shows: any chart's data, a run's per-layer statistics, and a tab's charts and statistics
in one zip file (pure functions, no Streamlit).

A chart's CSV is in long form, one row per point: ``series,x,y`` (and ``z`` for heatmaps), so every chart, with
any number of lines, has the same columns and loads in one call (pandas.read_csv, a spreadsheet). A point drawn
somewhere other than its value (a 0 on a log axis sits on the floor line) is written with its true value.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Iterable

import numpy as np
import plotly.graph_objects as go

from core.stats import NORM_SCALARS, SCALARS, Snapshot

RUN_COLUMNS = ("step", "loss", "train_accuracy", "test_accuracy", "layer", *SCALARS)


def _text(rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _cell(value) -> object:
    """Numbers as Python numbers (repr precision: a CSV must not round what the chart rounds), NaN as empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def _series_name(trace, k: int) -> str:
    name = trace.name or f"series {k + 1}"
    group = trace.legendgroup
    return f"{group} {name}" if group and group != name and not name.startswith(group) else name


def figure_csv(fig: go.Figure) -> str:
    """The data of every trace of ``fig``: ``series,x,y`` rows (``series,x,y,z`` when it holds a heatmap, z being
    the counts where the colour shows log(1 + count))."""
    with_z = any(t.type in ("heatmap", "contour") for t in fig.data)
    rows: list[list] = [["series", "x", "y", *(["z"] if with_z else [])]]
    for k, trace in enumerate(fig.data):
        name = _series_name(trace, k)
        if trace.type in ("heatmap", "contour"):
            z = np.asarray(trace.customdata if trace.customdata is not None else trace.z)  # counts, not log
            for j, y in enumerate(trace.y):
                rows += [[name, _cell(x), _cell(y), _cell(z[j, i])] for i, x in enumerate(trace.x)]
            continue
        if trace.x is None or trace.y is None or all(x is None for x in trace.x):
            continue  # a trace that only carries a colour bar
        ys = trace.customdata if trace.customdata is not None else trace.y
        rows += [[name, _cell(x), _cell(y), *([""] if with_z else [])] for x, y in zip(trace.x, ys)]
    return _text(rows)


def run_csv(snapshots: list[Snapshot]) -> str:
    """A run's statistics: one row per recorded step and layer (layers numbered from 1), every scalar statistic
    (a normalised network's NORM_SCALARS too)."""
    extra = NORM_SCALARS if snapshots and NORM_SCALARS[0] in snapshots[0].stats else ()
    rows: list[list] = [[*RUN_COLUMNS, *extra]]
    for snap in snapshots:
        head = [snap.step, _cell(snap.loss), _cell(snap.train_accuracy), _cell(snap.test_accuracy)]
        for i in range(snap.n_layers):
            rows.append([*head, i + 1, *(_cell(snap.stats[k][i]) for k in SCALARS + extra)])
    return _text(rows)


def data_zip(figures: dict[str, go.Figure], statistics: str | None = None) -> bytes:
    """One download for a tab: ``<chart>.csv`` (figure_csv) for each named figure and ``statistics.csv`` (run_csv's
    text) when given, in a zip file."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, fig in figures.items():
            archive.writestr(f"{name}.csv", figure_csv(fig))
        if statistics is not None:
            archive.writestr("statistics.csv", statistics)
    return out.getvalue()
