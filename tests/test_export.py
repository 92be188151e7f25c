"""CSV export: every chart's data and a run's per-layer statistics, read back and checked against their source."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from app.charts import export, figures
from core.config import Config
from core.data import load_dataset
from core.stats import SCALARS
from core.train import Training


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_depth_profile_exports_each_series_point_with_its_true_value():
    """A 0 is drawn on the log axis's floor line; the file says 0."""
    fig = figures.depth_profile({"std Z": [0.5, 0.0, 4.4e-6], "std A": [0.3, np.nan, 1e-6]}, "t", "std", log_y=True)
    table = rows(export.figure_csv(fig))
    assert [(r["series"], r["x"], r["y"]) for r in table] == [
        ("std Z", "1", "0.5"), ("std Z", "2", "0.0"), ("std Z", "3", "4.4e-06"),
        ("std A", "1", "0.3"), ("std A", "2", ""), ("std A", "3", "1e-06")]


def test_predictions_and_colour_bars_are_named_or_left_out():
    steps, values = np.arange(3), np.full((3, 5), 0.5)
    fig = figures.per_layer_over_steps(steps, values, "t", "std", predicted=np.full(5, 0.25))
    table = rows(export.figure_csv(fig))
    assert len(table) == 5 * 3 + 5 * 2  # 5 layers x 3 steps, 5 predicted segments of 2 ends; no colour-bar rows
    assert {r["series"] for r in table} >= {"layer 1", "layer 1 predicted at init"}


def test_heatmaps_export_the_counts_not_their_logarithm():
    counts = np.arange(2 * 1 * 4).reshape(2, 1, 4)
    fig = figures.histogram_heatmaps(np.array([0, 10]), counts, np.linspace(-1, 1, 5)[None], "t", "A")
    table = rows(export.figure_csv(fig))
    assert list(table[0]) == ["series", "x", "y", "z"] and len(table) == 8
    got = {(int(r["x"]), float(r["y"])): int(r["z"]) for r in table}
    assert got[(10, 0.75)] == counts[1, 0, 3] and got[(0, -0.75)] == counts[0, 0, 0]


def test_run_csv_has_a_row_per_step_and_layer_with_every_statistic():
    run = Training(Config(dataset="circles", layers=(4, 3), iterations=20, record_every=10), load_dataset("circles"))
    snapshots = list(run)
    table = rows(export.run_csv(snapshots))
    assert len(table) == 3 * 3 and list(table[0]) == list(export.RUN_COLUMNS)
    last = [r for r in table if r["step"] == "20"]
    for i, r in enumerate(last):
        assert int(r["layer"]) == i + 1
        for key in SCALARS:
            assert float(r[key]) == pytest.approx(snapshots[-1].stats[key][i], rel=1e-15)  # no rounding
        assert float(r["loss"]) == snapshots[-1].loss


def test_a_tabs_download_holds_each_charts_csv_and_the_statistics():
    import zipfile

    fig = figures.depth_profile({"std Z": [0.5, 0.25]}, "t", "std")
    other = figures.layer_fractions(np.array([0.5, 0.0]), np.array([0.0, 0.1]))
    snapshots = list(Training(Config(dataset="circles", layers=(4,), iterations=2), load_dataset("circles")))
    data = export.data_zip({"init_std": fig, "init_fractions": other}, export.run_csv(snapshots))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["init_fractions.csv", "init_std.csv", "statistics.csv"]
        assert archive.read("init_std.csv").decode() == export.figure_csv(fig)
        assert archive.read("init_fractions.csv").decode() == export.figure_csv(other)
        assert len(rows(archive.read("statistics.csv").decode())) == len(snapshots) * 2  # 2 layers a step
