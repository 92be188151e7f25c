"""Figure functions: what they draw from given statistics (trace counts, axis types, bins), no browser needed."""

from __future__ import annotations

import numpy as np
import pytest

from app import figures
from core.config import Config
from core.datasets import load_dataset
from core.train import Training, probe


@pytest.fixture(scope="module")
def circles_run():
    config = Config(dataset="circles", layers=(6, 5, 4), iterations=30, record_every=10, bins=16)
    run = Training(config, load_dataset("circles"))
    return run, list(run)


def test_layer_histograms_draw_each_layers_own_bins_on_one_shared_axis():
    edges = np.array([np.linspace(-1, 1, 5), np.linspace(0, 8, 5)])
    counts = np.array([[1, 2, 3, 4], [0, 0, 5, 5]])
    fig = figures.layer_histograms(edges, counts, "t", "A")
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[0].x, [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(fig.data[1].width, [2, 2, 2, 2])
    np.testing.assert_allclose(fig.data[1].y, [0, 0, 0.5, 0.5])  # share of the layer's values per bin
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"  # shared x


def test_deep_nets_are_drawn_as_an_even_selection_that_keeps_first_and_last_layer():
    layers = figures.facet_layers(30)
    assert len(layers) == figures.MAX_FACETS and layers[0] == 0 and layers[-1] == 29
    assert figures.facet_layers(4) == [0, 1, 2, 3]
    fig = figures.layer_histograms(np.tile(np.linspace(0, 1, 9), (30, 1)), np.ones((30, 8)), "t", "A")
    assert len(fig.data) == figures.MAX_FACETS


def test_depth_profile_uses_a_log_axis_and_leaves_gaps_for_zeros():
    fig = figures.depth_profile({"std A": np.array([1.0, 0.0, 1e-3])}, "t", "std", log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [1, 2, 3]
    assert np.isnan(fig.data[0].y[1]) and fig.data[0].y[2] == 1e-3
    assert figures.depth_profile({"a": [1], "b": [2]}, "t", "y").layout.yaxis.type == "linear"


def test_update_ratio_chart_has_one_line_per_layer_and_the_reference(circles_run):
    run, snaps = circles_run
    t = np.array([s.step for s in snaps])
    ratios = np.stack([s.stats["update_ratio"] for s in snaps])
    fig = figures.per_layer_over_steps(t, ratios, "t", "ratio", reference=figures.UPDATE_RATIO_GUIDE)
    assert len(fig.data) == run.network.depth == 4
    assert list(fig.data[0].x) == [0, 10, 20, 30]
    assert [shape.y0 for shape in fig.layout.shapes] == [1e-3]
    assert fig.layout.yaxis.type == "log"


def test_histogram_heatmaps_put_steps_on_x_and_bin_centres_on_y(circles_run):
    run, snaps = circles_run
    counts = np.stack([s.stats["a_hist"] for s in snaps])  # (T, L, bins)
    edges = snaps[0].edges["a"]
    fig = figures.histogram_heatmaps(np.array([s.step for s in snaps]), counts, edges, "t")
    assert len(fig.data) == 4
    heat = fig.data[1]
    assert np.asarray(heat.z).shape == (16, 4)  # bins x steps
    np.testing.assert_allclose(heat.y, (edges[1][:-1] + edges[1][1:]) / 2)
    np.testing.assert_allclose(heat.z, np.log1p(counts[:, 1, :]).T)


def test_fractions_are_bars_on_a_fixed_zero_to_one_axis():
    fig = figures.layer_fractions(np.array([0.5, 0.25]), np.array([0.0, 0.0]))
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_decision_boundary_has_the_probability_surface_and_one_trace_per_class():
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    prob = np.full((4, 5), 0.5)
    points = np.array([[0.0, 0.5, -0.5], [0.0, 0.5, 0.2]])
    fig = figures.decision_boundary(xs, ys, prob, points, np.array([0, 1, 1]))
    assert [t.type for t in fig.data] == ["contour", "scatter", "scatter"]
    assert len(fig.data[2].x) == 2


def test_curves_overlay_one_line_per_name():
    fig = figures.curves({"a": [0, 1], "b": [0, 1, 2]}, {"a": [0.7, 0.6], "b": [0.7, 0.5, 0.1]}, "t", "loss")
    assert [t.name for t in fig.data] == ["a", "b"] and len(fig.data[1].y) == 3


def test_probe_histograms_of_a_vanishing_init_collapse_on_the_shared_axis():
    """tanh, std 0.01: the last layer's activations occupy a far narrower x-range than the first's (CS231n)."""
    config = Config(dataset="gaussian:500", layers=(100,) * 6, activation="tanh", init="normal", init_scale=0.01)
    net, _, snap = probe(config, load_dataset("gaussian:500"))
    fig = figures.layer_histograms(snap.edges["z"], snap.stats["z_hist"], "t", "Z")
    spread = [np.average(np.abs(tr.x), weights=tr.y) for tr in fig.data]
    assert spread[-2] < spread[0] * 1e-3
