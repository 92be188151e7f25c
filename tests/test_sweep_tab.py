"""The Sweep tab in AppTest: a tiny grid run on the page's cluster fills the heatmap with the theory on top, reopens
from its sweep file, and a grid over the server's cap is refused before it runs; a picked cell shows its loss curve
and a link that opens on the Training tab with the cell's settings; the heatmap's click layer."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.replay import CUSTOM_PRESET
from app.charts.sweep import CELLS_TRACE, clicked_cell, sweep_heatmap
from app.serving import sweeps
from app.state import to_query
from core.config import Config
from core.sweep import SweepSpec
from core.sweep_file import SweepResults, write_sweep
from tests.conftest import shown_text
from tests.test_app import chart_specs, decode, no_course_files, no_errors, open_tab, start  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def fresh_queue(no_course_files, monkeypatch):
    """Each test its own sweep queue (and so its own sweeps), on the page's run store."""
    monkeypatch.setattr(sweeps, "_queue", None)


def tiny_grid(at):
    at.number_input(key="sweep_width").set_value(4)
    at.slider(key="sweep_sigma_w2").set_value((1.0, 2.0))
    at.number_input(key="sweep_columns").set_value(2)
    at.slider(key="sweep_depth").set_value((1, 2))
    at.number_input(key="sweep_rows").set_value(2)
    at.number_input(key="sweep_steps").set_value(20)
    return at.run()


def grid(z) -> np.ndarray:
    """A heatmap's z from the chart's JSON: rows of lists, or one typed array with its shape."""
    if isinstance(z, dict):
        return np.array(decode(z), float).reshape([int(n) for n in str(z["shape"]).split(",")])
    return np.array([decode(row) for row in z], float)


def heatmap(at) -> dict:
    return next(spec for spec in chart_specs(at) if spec["layout"]["title"]["text"].startswith("Train accuracy"))


def circles_page():
    """The Sweep tab with circles in the sidebar (cells of a few milliseconds)."""
    return tiny_grid(open_tab(start(to_query(Config(dataset="circles", layers=(4,)), CUSTOM_PRESET)), "Sweep"))


def test_a_sweep_fills_the_heatmap_and_reopens_from_its_file(tmp_path):
    at = circles_page()
    at.button(key="sweep_run").click().run()
    end = time.monotonic() + 180  # a first training in this process compiles the engine's kernels
    while time.monotonic() < end and not at.get("download_button"):
        time.sleep(0.2)
        at.run()  # a timed fragment does not fire in AppTest: rerun the page as its tick would
    no_errors(at)
    figure = heatmap(at)
    cells = grid(figure["data"][0]["z"])
    assert cells.shape == (2, 2) and np.all((cells >= 0) & (cells <= 1))
    names = [trace.get("name", "") for trace in figure["data"][1:]]
    assert names[0].startswith("6 ξ_c") and names[1].startswith("χ₁ = 1")  # tanh, σ_b² 0.05: χ₁ = 1 at 1.76
    assert "4 of 4 cells" in at.get("progress")[0].proto.text
    sweep = sweeps.sweep_queue().get(at.session_state["sweep_key"])
    path = tmp_path / "sweep.h5"
    write_sweep(path, SweepResults(sweep.spec, "circles", sweep.dataset.fingerprint(), 2, sweep.results))
    at.file_uploader(key="sweep_upload").upload("sweep.h5", path.read_bytes(), "application/x-hdf5").run()
    no_errors(at)
    assert "sweep.h5" in at.success[0].value
    assert np.array_equal(grid(heatmap(at)["data"][0]["z"]), cells)


def test_a_grid_over_the_servers_cap_is_refused_before_it_runs(monkeypatch):
    monkeypatch.setenv("INITLAB_MAX_SWEEP_CELLS", "3")
    at = circles_page()
    assert "over this server's cap of 3 (INITLAB_MAX_SWEEP_CELLS)" in shown_text(at.error[0].value)
    assert at.button(key="sweep_run").disabled


def loss_figures(accuracy: float, losses: list[float]) -> dict:
    """A cell's figures as train_cell returns them (what the tab shows; no training needed to show them)."""
    return {"train_accuracy": accuracy, "test_accuracy": accuracy - 0.05, "loss": losses[-1], "diverged": False,
            "message": None, "steps": [10 * i for i in range(len(losses))], "losses": losses, "seconds": 0.1}


def test_a_picked_cell_shows_its_curve_and_a_link_that_opens_the_training_tab(tmp_path):
    spec = SweepSpec(Config(dataset="circles", iterations=30), (1.0, 2.5), (2, 5), 4, 0.05)
    results = {(0, 0): loss_figures(0.9, [0.7, 0.4, 0.2]), (1, 1): loss_figures(0.6, [0.7, 0.65, 0.61])}
    at = open_tab(start(), "Sweep")
    path = tmp_path / "sweep.h5"
    write_sweep(path, SweepResults(spec, "circles", "f" * 16, 2, results))
    at.file_uploader(key="sweep_upload").upload("sweep.h5", path.read_bytes(), "application/x-hdf5").run()
    picker = at.selectbox(key="sweep_cell")
    assert picker.options == ["σ_w² = 1, depth 2", "σ_w² = 2.5, depth 5"]  # the computed cells only
    picker.set_value((1, 1)).run()
    no_errors(at)
    curve = next(c for c in chart_specs(at) if c["layout"]["title"]["text"].startswith("Loss while training"))
    assert "σ_w² = 2.5, depth 5" in curve["layout"]["title"]["text"]
    assert decode(curve["data"][0]["y"]) == [0.7, 0.65, 0.61]
    [outline] = heatmap(at)["layout"]["shapes"]  # the heatmap outlines it: cells meet halfway between centres
    assert (outline["x0"], outline["x1"], outline["y0"], outline["y1"]) == (1.75, 3.25, 3.5, 6.5)
    [link] = at.get("link_button")
    query = dict(parse_qsl(urlsplit(link.proto.url).query))
    opened = AppTest.from_file(at._script_path, default_timeout=at.default_timeout)
    opened.query_params.update(query)
    opened.run()
    no_errors(opened)
    assert not opened.warning  # the tab's parameter is not an unknown setting
    assert opened.session_state["view"] == "Training" and opened.button(key="start")
    assert opened.session_state.config == spec.cell_config(1, 1)
    del query["view"]  # the same settings shared without a tab open on the first
    shared = AppTest.from_file(at._script_path, default_timeout=at.default_timeout)
    shared.query_params.update(query)
    shared.run()
    assert shared.session_state["view"] == "At initialisation"
    assert shared.session_state.config == spec.cell_config(1, 1)
    at.selectbox(key="sweep_cell").set_value(None).run()
    at.session_state["sweep_waiting_cell"] = (0, 1)  # as a click on a cell not computed yet leaves it (a browser's)
    at.run()
    assert any("σ_w² = 2.5, depth 2 is not computed yet" in c.value for c in at.caption)
    assert not [c for c in chart_specs(at) if c["layout"]["title"]["text"].startswith("Loss while training")]
    write_sweep(path, SweepResults(spec, "circles", "f" * 16, 2, {**results, (0, 1): loss_figures(0.7, [0.6, 0.3])}))
    at.file_uploader(key="sweep_upload").upload("sweep.h5", path.read_bytes(), "application/x-hdf5").run()
    curve = next(c for c in chart_specs(at) if c["layout"]["title"]["text"].startswith("Loss while training"))
    assert "σ_w² = 2.5, depth 2" in curve["layout"]["title"]["text"]  # shown once it is in


def test_the_heatmaps_click_layer_has_one_point_at_each_cells_centre():
    spec = SweepSpec(Config(dataset="circles"), (0.5, 1.25, 4.0), (3, 9), 4, 0.05)
    results = {(1, 2): loss_figures(0.8, [0.5, 0.3])}
    figure = sweep_heatmap(spec, results, [0.5, 4.0], [30.0, 12.0], 1.7, picked=(1, 2)).to_plotly_json()
    [outline] = figure["layout"]["shapes"]  # the picked cell's edges: halfway to its neighbours, as wide at the edge
    assert [outline[k] for k in ("x0", "x1", "y0", "y1")] == [2.625, 5.375, 6.0, 12.0]
    [layer] = [t for t in figure["data"] if t["name"] == CELLS_TRACE]
    centres = list(zip(np.asarray(layer["x"]).tolist(), np.asarray(layer["y"]).tolist()))
    assert sorted(centres) == sorted((s, d) for s in spec.sigma_w2 for d in spec.depths)
    texts = dict(zip(centres, layer["customdata"]))
    assert texts[4.0, 9].startswith("train 80.0%") and texts[0.5, 3] == "not computed yet"
    clickable = [t["name"] for t in figure["data"] if t.get("hoverinfo") != "skip"]
    assert clickable == [CELLS_TRACE]  # the theory curves and the heatmap itself take no click
    # what Streamlit reports for a click on the cell at (sigma_w^2 4, depth 9): its (row, column)
    index = centres.index((4.0, 9))
    point = {"x": 4.0, "y": 9, "point_index": index, "curve_number": figure["data"].index(layer)}
    assert clicked_cell(spec, {"selection": {"points": [point]}}) == (1, 2)
    assert clicked_cell(spec, {"selection": {"points": []}}) is None
