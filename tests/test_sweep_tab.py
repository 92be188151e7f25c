"""The Sweep tab in AppTest: a tiny grid run on the page's cluster fills the heatmap with the theory on top, reopens
from its sweep file, and a grid over the server's cap is refused before it runs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.replay import CUSTOM_PRESET
from app.serving import sweeps
from app.state import to_query
from core.config import Config
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
