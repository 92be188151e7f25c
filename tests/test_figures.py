"""Figure functions: what they draw from given statistics (trace counts, axis types, bins), no browser needed."""

from __future__ import annotations

import itertools
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from app.charts import figures, style
from app.charts.training import layer_figures, progress_figures
from core.config import Config
from core.data import load_dataset
from core.train import TEST_DENSE_UNTIL, TEST_EVERY, Training, probe
from tests.colour_vision import hex_rgb, simulate


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
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):  # each row says its layer and reads its share in per cent
        assert axis.title.text in ("L1", "L2") and axis.tickformat == ".0%" and axis.showticklabels is not False
    assert "share of the layer's values per bin" in fig.layout.xaxis2.title.text


def test_deep_nets_are_drawn_as_an_even_selection_that_keeps_first_and_last_layer():
    layers = figures.facet_layers(30)
    assert len(layers) == figures.MAX_FACETS and layers[0] == 0 and layers[-1] == 29
    assert figures.facet_layers(4) == [0, 1, 2, 3]
    fig = figures.layer_histograms(np.tile(np.linspace(0, 1, 9), (30, 1)), np.ones((30, 8)), "t", "A")
    assert len(fig.data) == figures.MAX_FACETS


def test_depth_profile_draws_zeros_on_a_labelled_floor_a_decade_below_the_rest():
    """A std of exactly 0 (zeros init; ×10's saturated output) has no place on a log axis: it used to leave a gap,
    or an empty frame when every value was 0. It sits on a dotted floor line that says what 0 means."""
    fig = figures.depth_profile({"std A": np.array([1.0, 0.0, 1e-3]), "std Z": [0.5, np.nan, 2e-3]}, "t", "std",
                                log_y=True, zero_note="std = 0: all units identical")
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[0].y) == [1.0, 1e-4, 1e-3]  # the floor: a decade below the smallest value, 1e-3
    assert list(fig.data[0].customdata) == [1.0, 0.0, 1e-3]  # the true values, for hover and the CSV
    assert fig.data[1].customdata is None and np.isnan(fig.data[1].y[1])  # NaN stays a gap
    floor = [shape for shape in fig.layout.shapes if shape.y0 == 1e-4]
    assert len(floor) == 1 and floor[0].line.dash == "dot"
    assert [a.text for a in fig.layout.annotations] == ["std = 0: all units identical"]
    assert fig.layout.annotations[0].y == pytest.approx(-4)  # log10 of the floor
    assert figures.depth_profile({"a": [1], "b": [2]}, "t", "y").layout.yaxis.type == "linear"


def test_the_floor_is_labelled_zero_and_no_tick_gives_it_another_value():
    fig = figures.depth_profile({"std Z": [0.0, 0.5, 2244.0]}, "t", "std", log_y=True)
    axis = fig.layout.yaxis
    assert list(axis.tickvals) == [0.05, 1.0, 10.0, 100.0, 1000.0]  # 0.1 would crowd the floor's label
    assert list(axis.ticktext) == ["0", "1", "10", "10<sup>2</sup>", "10<sup>3</sup>"]
    deep = figures.depth_profile({"std Z": [0.0, 4.4e-6, 0.5]}, "t", "std", log_y=True).layout.yaxis
    assert deep.tickvals[0] == pytest.approx(4.4e-7) and deep.ticktext[1] == "10<sup>-5</sup>"


def test_all_zero_charts_draw_the_floor_without_a_misleading_scale():
    fig = figures.depth_profile({"std Z": [0.0, 0.0]}, "t", "std", log_y=True)
    assert list(fig.data[0].y) == [1.0, 1.0] and list(fig.layout.yaxis.ticktext) == ["0"]
    ratios = figures.per_layer_over_steps(np.arange(3), np.zeros((3, 2)), "t", "‖dW‖")
    assert all(list(t.y) == [1.0] * 3 for t in ratios.data) and ratios.layout.shapes[0].y0 == 1.0


def test_a_chart_with_no_finite_value_says_so():
    """zeros init: ‖W‖ = 0, so every update-to-weight ratio is 0/0 or x/0."""
    values = np.array([[np.nan, np.inf]] * 3)
    fig = figures.per_layer_over_steps(np.arange(3), values, "t", "ratio", reference=1e-3,
                                       undefined_note="‖W‖ = 0, the ratio has no value")
    assert "Nothing to draw: ‖W‖ = 0, the ratio has no value" in [a.text for a in fig.layout.annotations]


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
    fig = figures.histogram_heatmaps(np.array([s.step for s in snaps]), counts, edges, "t", "activations A")
    assert len(fig.data) == 4
    assert [fig.layout[f"yaxis{'' if row == 1 else row}"].title.text for row in range(1, 5)] == ["activations A"] * 4
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


def test_the_boundary_is_drawn_from_the_weights_of_the_step_shown():
    training = Training(Config(dataset="circles", layers=(4,), iterations=20, record_every=5), load_dataset("circles"))
    snapshots, kept = [], []
    for snapshot in training:
        snapshots.append(snapshot)
        kept.append((snapshot.step, training.params.copy()))

    def figures_of(step_params, shown=3):
        return layer_figures(snapshots[:shown], training.network, step_params, training.dataset)["boundary"]

    for shown in (1, 3, 5):  # steps 0, 10, 20: each its own weights
        fig = figures_of(kept, shown)
        step, params = kept[shown - 1]
        hidden = np.maximum(params.W[0] @ np.vstack([g.ravel() for g in np.meshgrid(fig.data[0].x, fig.data[0].y)])
                            + params.b[0], 0)
        want = 1 / (1 + np.exp(-(params.W[1] @ hidden + params.b[1])))
        np.testing.assert_allclose(np.asarray(fig.data[0].z).ravel(), want.ravel(), rtol=1e-9, atol=1e-12)
        assert fig.layout.title.text == f"Decision boundary at step {step}"
    old_file = [kept[0], kept[-1]]  # a run file from before the weights were kept: the initial and the final ones
    title = figures_of(old_file, 3).layout.title.text
    assert title.startswith("Decision boundary at step 0<br>") and "the initial weights" in title and "step 10" in title


def test_curves_overlay_one_line_per_name():
    fig = figures.curves({"a": [0, 1], "b": [0, 1, 2]}, {"a": [0.7, 0.6], "b": [0.7, 0.5, 0.1]}, "t", "loss")
    assert [t.name for t in fig.data] == ["a", "b"] and len(fig.data[1].y) == 3


def test_the_test_accuracy_curve_joins_the_steps_that_measured_it():
    """Recording every step, test accuracy is measured on its own cadence (NaN between): its curve must join the
    measured points (a line through NaN gaps would draw nothing past the dense start), the train curve every step."""
    iterations = TEST_DENSE_UNTIL + 3 * TEST_EVERY
    config = Config(dataset="circles", layers=(4,), iterations=iterations, record_every=1, bins=8)
    snapshots = list(Training(config, load_dataset("circles")))
    train, test = progress_figures(snapshots, most=1000)["accuracy"].data
    assert list(train.x) == list(range(iterations + 1))
    measured = [s for s in snapshots if s.step <= TEST_DENSE_UNTIL or s.step % TEST_EVERY == 0]
    assert list(test.x) == [s.step for s in measured]
    assert list(test.y) == [s.test_accuracy for s in measured] and np.isfinite(test.y).all()


def test_probe_histograms_of_a_vanishing_init_collapse_on_the_shared_axis():
    """tanh, std 0.01: the last layer's activations occupy a far narrower x-range than the first's (CS231n)."""
    config = Config(dataset="gaussian:500", layers=(100,) * 6, activation="tanh", init="normal", init_scale=0.01)
    net, _, snap = probe(config, load_dataset("gaussian:500"))
    fig = figures.layer_histograms(snap.edges["z"], snap.stats["z_hist"], "t", "Z")
    spread = [np.average(np.abs(tr.x), weights=tr.y) for tr in fig.data]
    assert spread[-2] < spread[0] * 1e-3


def test_depth_profile_overlays_each_prediction_dashed_in_its_series_colour():
    series = {"std Z": [0.5, 0.02, 4e-4], "std A": [0.3, 0.01, 2e-4], "std dZ": [2e-6, 1e-4, 0.5]}
    predicted = {"std Z": [0.53, 0.0, np.inf], "std A": [0.25, -1.0, np.nan], "elsewhere": [1.0, 1.0, 1.0]}
    fig = figures.depth_profile(series, "t", "std", log_y=True, predicted=predicted)
    assert [t.name for t in fig.data] == ["std Z", "std A", "std dZ", "std Z predicted", "std A predicted"]
    colours = {t.name: t.line.color for t in fig.data}
    for trace in fig.data[3:]:
        assert trace.line.dash == "dash" and trace.marker.symbol == "circle-open" and trace.mode == "lines+markers"
        assert trace.line.color == colours[trace.name.removesuffix(" predicted")]
        assert trace.legendgroup == trace.name.removesuffix(" predicted") and not trace.showlegend  # one legend row
        assert list(trace.x) == [1, 2, 3]
    for trace in fig.data[:3]:
        assert trace.line.dash != "dash"  # measured: solid, dotted or dash-dotted, never a prediction's dash
    assert len({(t.line.dash, t.marker.symbol) for t in fig.data[:3]}) == 3  # told apart without colour
    z, a = fig.data[3].y, fig.data[4].y
    assert z[0] == 0.53 and np.isnan(z[1]) and np.isnan(z[2])  # zero and inf: gaps on a log axis
    assert a[0] == 0.25 and np.isnan(a[1]) and np.isnan(a[2])  # negative and NaN: gaps
    assert len(figures.depth_profile(series, "t", "std", log_y=True).data) == 3


def test_depth_profile_keeps_negative_predictions_on_a_linear_axis():
    fig = figures.depth_profile({"mean Z": [0.1, -0.2]}, "t", "mean", predicted={"mean Z": [0.0, -0.1]})
    assert fig.layout.yaxis.type == "linear"
    assert list(fig.data[1].y) == [0.0, -0.1]


def test_per_layer_over_steps_draws_each_layers_prediction_as_a_dashed_segment_in_its_colour(circles_run):
    run, snaps = circles_run
    t = np.array([s.step for s in snaps])
    stds = np.stack([s.stats["a_std"] for s in snaps])
    n = stds.shape[1]
    predicted = np.array([0.8, 0.0, 0.4, 0.5])
    fig = figures.per_layer_over_steps(t, stds, "t", "std A", predicted=predicted)
    measured, dashed = fig.data[:n], fig.data[n:]
    assert len(dashed) == n
    for line, segment in zip(measured, dashed):
        assert line.line.dash != "dash" and segment.line.dash == "dash"
        assert segment.line.color == line.line.color
        assert segment.name == "predicted at init" and not segment.showlegend  # the legend stays one row of layers
        assert segment.legendgroup == line.legendgroup  # shown and hidden with its layer
        assert list(segment.x) == [0, 30]  # across the whole step range
    assert list(dashed[0].y) == [0.8, 0.8]
    assert np.isnan(dashed[1].y).all()  # a zero cannot sit on the log axis: a gap
    assert figures.per_layer_over_steps(t, stds, "t", "std A", log_y=False, predicted=predicted).data[n + 1].y[0] == 0


@pytest.mark.parametrize("n", [5, 11, 30])
def test_more_layers_than_a_legend_row_holds_get_a_colour_bar_of_layers(n):
    """Past LEGEND_MOST names the legend wrapped into the chart's title (seen at 11 layers): the layers' colours get a
    colour bar from layer 1 to n instead, whose ends are the first and last layer's line colours."""
    steps, values = np.arange(0, 100, 10), np.full((10, n), 0.5)
    fig = figures.per_layer_over_steps(steps, values, "t", "std A", predicted=np.full(n, 0.5))
    assert fig.layout.showlegend is False
    lines, scale = fig.data[:n], fig.data[2 * n:]
    assert len(scale) == 1 and scale[0].marker.showscale and scale[0].showlegend is False
    assert (scale[0].marker.cmin, scale[0].marker.cmax) == (1, n)
    stops = scale[0].marker.colorscale
    assert (stops[0][1], stops[-1][1]) == (lines[0].line.color, lines[-1].line.color)
    assert all(v is None for v in scale[0].y)  # it carries the scale, draws nothing


def test_a_legend_row_of_layers_stays_a_legend():
    steps, values = np.arange(0, 100, 10), np.full((10, style.LEGEND_MOST), 0.5)
    fig = figures.per_layer_over_steps(steps, values, "t", "std A")
    assert fig.layout.showlegend is True and fig.layout.legend.orientation == "h"
    assert not any(getattr(t.marker, "showscale", None) for t in fig.data)


def test_many_named_series_put_their_legend_in_a_column_at_the_right():
    """Compare's charts name one series per initialiser, up to 13: past LEGEND_MOST a top legend wraps into the
    title, so the legend becomes a column at the right. Predictions (no legend entry of their own) do not count."""
    names = [f"init {k}" for k in range(style.LEGEND_MOST + 1)]
    fig = figures.curves({k: [0, 1] for k in names}, {k: [0.7, 0.6] for k in names}, "Loss by initialiser", "loss")
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x > 1
    few = figures.curves({k: [0, 1] for k in names[:2]}, {k: [0.7, 0.6] for k in names[:2]}, "t", "loss")
    assert few.layout.legend.orientation == "h"
    depth = figures.depth_profile({k: [0.5, 0.4] for k in names}, "Activation std against depth", "std A", log_y=True)
    assert depth.layout.legend.orientation == "v"
    series = {k: [0.5, 0.4] for k in names[:style.LEGEND_MOST]}
    predicted = figures.depth_profile(series, "t", "std A", log_y=True, predicted=series)
    assert len(predicted.data) == 2 * style.LEGEND_MOST and predicted.layout.legend.orientation == "h"


def assert_sent_as_plotly_would_validate_it(fig: go.Figure) -> None:
    """The figures are built without plotly's validation: a validated copy must build (no misspelt property) and
    be what the unvalidated one sends (no shorthand that only plotly, not plotly.js, understands)."""
    validated = go.Figure(fig.to_dict())
    assert json.dumps(json.loads(fig.to_json()), sort_keys=True) == \
        json.dumps(json.loads(validated.to_json()), sort_keys=True)


def _steps_values(n_steps: int, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.geomspace(1.0, 1e-4, n_steps * n_layers).reshape(n_steps, n_layers)
    values[0, 0], values[-1, -1] = 0.0, np.nan
    return np.arange(n_steps) * 25, values


FIGURES = {
    "histograms, 1 layer": lambda: figures.layer_histograms(np.linspace(-1, 1, 9)[None], np.ones((1, 8)), "t", "A"),
    "histograms, 4 layers": lambda: figures.layer_histograms(np.tile(np.linspace(0, 1, 9), (4, 1)),
                                                             np.arange(32).reshape(4, 8), "t", "A"),
    "histograms, 35 layers": lambda: figures.layer_histograms(np.tile(np.linspace(0, 1, 9), (35, 1)),
                                                              np.zeros((35, 8)), "t", "A"),
    "depth, log with gaps and predictions": lambda: figures.depth_profile(
        {"std Z": [0.5, 0.0, np.nan, 5e-6], "std A": [0.3, 0.1, 0.0, 1e-6]}, "t", "std", log_y=True,
        predicted={"std Z": [0.53, 0.0, np.inf, 5e-6]}),
    "depth, 1 layer": lambda: figures.depth_profile({"std A": [0.2]}, "t", "std", log_y=True,
                                                    predicted={"std A": [0.25]}),
    "depth, 30 layers linear": lambda: figures.depth_profile({"mean A": np.linspace(-1, 1, 30)}, "t", "mean"),
    "depth, only zeros on log": lambda: figures.depth_profile({"std A": [0.0, 0.0]}, "t", "std", log_y=True),
    "fractions": lambda: figures.layer_fractions(np.array([0.5, 0.0]), np.array([0.0, 0.1])),
    "curves": lambda: figures.curves({"loss": np.arange(3)}, {"loss": [0.7, 0.6, np.nan]}, "t", "loss", log_y=True),
    "accuracy": lambda: figures.curves({"a": [0], "b": [0]}, {"a": [0.5], "b": [0.4]}, "t", "acc", y_range=(0, 1.02)),
    "per layer, 1 layer": lambda: figures.per_layer_over_steps(*_steps_values(1, 1), "t", "std"),
    "per layer, reference": lambda: figures.per_layer_over_steps(*_steps_values(40, 4), "t", "r", reference=1e-3),
    "per layer, 32 layers predicted": lambda: figures.per_layer_over_steps(
        *_steps_values(40, 32), "t", "std", predicted=np.r_[0.0, np.nan, np.geomspace(1, 1e-6, 30)]),
    "per layer, 11 layers (colour bar)": lambda: figures.per_layer_over_steps(*_steps_values(40, 11), "t", "std"),
    "loss, clipped spike and guide": lambda: figures.curves(
        {"a": np.arange(10), "b": np.arange(10)}, {"a": np.r_[1774.0, np.linspace(0.9, 0.5, 9)], "b": np.full(10, 0.6)},
        "t", "loss", reference=0.693, reference_label="ln 2", clip=True),
    "depth, zeros on a floor": lambda: figures.depth_profile({"std Z": [0.0, 0.0, 2244.0], "std A": [0.0, 1.0, 0.0]},
                                                             "t", "std", log_y=True, zero_note="std = 0"),
    "per layer, all undefined": lambda: figures.per_layer_over_steps(np.arange(3), np.full((3, 2), np.nan), "t", "r",
                                                                    reference=1e-3),
    "histograms, own x-ranges": lambda: figures.layer_histograms(np.tile(np.linspace(0, 1, 9), (4, 1)),
                                                                 np.arange(32).reshape(4, 8), "t", "A", shared_x=False),
    "curves, 6 names": lambda: figures.curves({str(k): [0, 1] for k in range(6)}, {str(k): [1, 0] for k in range(6)},
                                              "t", "loss"),
    "per layer, linear": lambda: figures.per_layer_over_steps(*_steps_values(5, 3), "t", "y", log_y=False,
                                                              reference=0.0, predicted=np.zeros(3)),
    "heatmaps, 1 layer": lambda: figures.histogram_heatmaps(np.arange(3), np.ones((3, 1, 8)),
                                                            np.linspace(0, 1, 9)[None], "t", "A"),
    "heatmaps, 31 layers": lambda: figures.histogram_heatmaps(np.arange(3), np.zeros((3, 31, 8)),
                                                              np.tile(np.linspace(0, 1, 9), (31, 1)), "t", "A"),
    "boundary": lambda: figures.decision_boundary(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4), np.full((4, 5), 0.5),
                                                  np.array([[0.0, 0.5, -0.5], [0.0, 0.5, 0.2]]), np.array([0, 1, 1])),
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_what_plotly_validation_would_make_it(name):
    assert_sent_as_plotly_would_validate_it(FIGURES[name]())


def test_stacked_plots_share_the_bottom_x_axis_and_keep_make_subplots_domains():
    fig = figures.histogram_heatmaps(np.arange(3), np.ones((3, 4, 8)), np.tile(np.linspace(0, 1, 9), (4, 1)), "t",
                                     "A")
    layout = fig.layout
    assert [a.matches for a in (layout.xaxis, layout.xaxis2, layout.xaxis3, layout.xaxis4)] == ["x4"] * 3 + [None]
    assert layout.xaxis4.title.text == "step" and layout.xaxis.showticklabels is False
    np.testing.assert_allclose([layout.yaxis.domain, layout.yaxis4.domain], [[0.8025, 1.0], [0.0, 0.1975]])
    assert [a.text for a in layout.annotations] == ["layer 1", "layer 2", "layer 3", "layer 4"]
    np.testing.assert_allclose([a.y for a in layout.annotations], [1.0, 0.7325, 0.465, 0.1975])  # each row's top
    assert [(t.xaxis, t.yaxis) for t in fig.data] == [("x", "y"), ("x2", "y2"), ("x3", "y3"), ("x4", "y4")]


# --- colours, loss charts (issue 18) ------------------------------------------------------------------------------
def test_the_first_six_series_colours_stay_apart_for_a_deuteranope():
    """The old palette's red and green (normal ×10 and he_normal in Compare) both turned olive: 18 apart of 441."""
    simulated = [simulate(hex_rgb(c)) for c in style.PALETTE[:6]]
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(simulated, 2))
    assert closest > 40


def test_series_differ_in_dash_and_marker_so_greyscale_tells_them_apart():
    names = [f"init {k}" for k in range(4)]
    fig = figures.curves({k: [0, 1, 2] for k in names}, {k: [0.7, 0.6, 0.5] for k in names}, "t", "loss")
    styles = {(t.line.dash, t.marker.symbol) for t in fig.data}
    assert len(styles) == 4 and len({t.line.color for t in fig.data}) == 4


def _grey(colour: str) -> float:
    r, g, b = (float(v) for v in colour[colour.index("(") + 1:-1].split(","))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_layer_colours_are_distinct_and_ordered_by_lightness():
    """Per-layer lines were shades of one blue; now viridis: each layer its own hue, lighter with depth."""
    colours = [style.layer_colour(i, 6) for i in range(6)]
    assert len(set(colours)) == 6
    greys = [_grey(c) for c in colours]
    assert greys == sorted(greys) and greys[-1] - greys[0] > 100


def test_loss_chart_draws_the_guess_line_and_clips_a_spike_with_a_note():
    """circles ×10 starts at 1774 and drops below 1: drawn in full it flattened He's and zeros' curves."""
    t = np.arange(0, 1000, 100)
    spike = np.r_[1774.0, 40.0, np.linspace(0.9, 0.5, 8)]
    calm = np.linspace(0.8, 0.1, 10)
    fig = figures.curves({"×10": t, "he": t}, {"×10": spike, "he": calm}, "Loss", "cross-entropy",
                         reference=np.log(2), reference_label="ln 2 = 0.693: a guess", clip=True)
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(np.log(2))]
    top = fig.layout.yaxis.range[1]
    assert fig.layout.yaxis.range[0] == 0 and 0.9 < top < 40  # every calm value shows; the spike is off-scale
    notes = [a.text for a in fig.layout.annotations]
    assert "ln 2 = 0.693: a guess" in notes
    assert any("×10 up to 1774 (step 0)" in n for n in notes)
    log = figures.curves({"×10": t, "he": t}, {"×10": spike, "he": calm}, "Loss", "cross-entropy", log_y=True,
                         reference=np.log(2), clip=True)
    assert log.layout.yaxis.type == "log" and log.layout.yaxis.range is None  # log scale shows all of it
    assert log.layout.annotations[0].y == pytest.approx(np.log10(np.log(2)))


def test_a_loss_without_a_spike_keeps_its_full_range():
    t = np.arange(5)
    fig = figures.curves({"a": t}, {"a": [0.77, 0.6, 0.4, 0.2, 0.09]}, "Loss", "loss", reference=np.log(2), clip=True)
    assert fig.layout.yaxis.range is None and [a.text for a in fig.layout.annotations] == ["0.693147"]


def test_a_live_chart_turns_each_figure_into_json_once_however_often_a_timer_redraws_it(monkeypatch):
    from app import live_chart

    sent, encoded, to_json = [], [], live_chart.pio.to_json
    monkeypatch.setattr(live_chart, "_live_chart", lambda key, data: sent.append(data["figure"]))
    monkeypatch.setattr(live_chart.pio, "to_json", lambda fig, **kw: encoded.append(fig) or to_json(fig, **kw))
    first, second = go.Figure(go.Scatter(y=[1, 2])), go.Figure(go.Scatter(y=[3, 4]))
    for fig in (first, first, first, second, second):
        live_chart.live_chart(fig, "loss", {})
    assert encoded == [first, second]  # a new figure (a new snapshot) is encoded anew
    assert [json.loads(spec)["data"][0]["y"] for spec in sent] == [[1, 2]] * 3 + [[3, 4]] * 2


def test_the_charts_plotly_js_is_the_plotly_packages_version_and_registers_the_traces_it_is_trusted_with():
    """app/vendor's bundle is plotly.js of the version the installed plotly builds its figures for (requirements.txt
    pins the two together), and `BUNDLED_TRACES`, which `live_chart` checks every figure against, are the trace
    types the file itself registers."""
    import re

    import plotly.offline

    from app.live_chart import BUNDLED_TRACES, PLOTLY_JS

    text = PLOTLY_JS.read_text()
    assert re.search(r"plotly\.js \(cartesian - minified\) v([\d.]+)", text[:300])[1] == \
        plotly.offline.get_plotlyjs_version()
    assert set(re.findall(r'moduleType:"trace",name:"(\w+)"', text)) == BUNDLED_TRACES


def test_a_live_chart_refuses_a_trace_its_plotly_js_would_leave_out(monkeypatch):
    from app import live_chart

    monkeypatch.setattr(live_chart, "_live_chart", lambda key, data: pytest.fail("sent to the page"))
    with pytest.raises(ValueError, match="scatter3d is not in"):
        live_chart.live_chart(go.Figure(go.Scatter3d(x=[1], y=[2], z=[3])), "surface", {})


def test_a_log_axis_over_sixty_decades_keeps_at_most_a_few_labels():
    from app.charts.style import value_axis

    wide = value_axis("std", True, [np.logspace(-65, 10, 51)])
    narrow = value_axis("std", True, [np.array([0.01, 0.5, 3.0])])
    assert 75 / wide["dtick"] <= 9 and narrow["dtick"] == 1  # a label every ten decades; every decade when few
