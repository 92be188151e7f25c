"""Theory figures: what each chart contains (traces, axes, one marker per layer), read from the figure objects."""

import numpy as np
import pytest

from app.charts import theory as figures
from app.charts.figures import depth_profile
from core import criticality, theory
from core.config import Config
from core.data import load_dataset
from tests.test_figures import assert_sent_as_plotly_would_validate_it


@pytest.fixture(scope="module")
def course_prediction(cat_data):
    config = Config(dataset="catvnoncat", layers=(20, 7, 5), activation="relu", init="normal", init_scale=0.01)
    return theory.predict_for(config, cat_data)


def test_a_prediction_is_drawn_as_a_dashed_line_per_layer_over_the_measurement():
    config = Config(dataset="circles", layers=(10, 5), activation="tanh", init="xavier_normal")
    p = theory.predict_for(config, load_dataset("circles"))
    fig = depth_profile({"std Z": p.z_std * 1.1}, "t", "std", log_y=True, predicted={"std Z": p.z_std})
    measured, trace = fig.data
    assert trace.line.dash == "dash" and trace.line.color == measured.line.color
    assert list(trace.x) == [1, 2, 3]
    np.testing.assert_allclose(trace.y, p.z_std)


def test_depth_comparison_draws_measured_and_predicted_on_a_log_axis():
    fig = figures.depth_comparison(np.array([0.5, 0.02, 4e-4]), np.array([0.45, 0.0, 3e-4]), "t", "std of Z")
    assert len(fig.data) == 2
    assert fig.layout.yaxis.type == "log"
    measured, predicted = fig.data
    assert measured.line.dash is None and predicted.line.dash == "dash"
    assert predicted.y[1] == 0.02 and np.isnan(measured.y[1])  # a zero is a gap on a log axis, not a crash


def test_phase_diagram_has_one_marker_per_layer_with_its_own_sigma_w2(course_prediction):
    p = course_prediction
    markers = [(f"L{i + 1}", float(p.sigma_w2[i]), 0.0) for i in range(len(p.activations))]
    sw2, sb2 = figures.phase_axes([w for _, w, _ in markers], [0.0] * 3)
    assert sw2[0] <= min(w for _, w, _ in markers) and sw2[-1] >= 8  # every layer of randn * 0.01 is on the chart
    chi = criticality.phase_grid("relu", sw2, sb2)
    fig = figures.phase_diagram("relu", sw2, sb2, chi, criticality.critical_line("relu"), markers)
    heat, edge, layers = fig.data
    assert heat.type == "heatmap" and heat.zmid == 0
    assert fig.layout.xaxis.type == "log"
    assert len(layers.x) == 3 and list(layers.text) == ["L1", "L2", "L3"]
    np.testing.assert_allclose(layers.x, [1.2288, 0.002, 0.0007])  # n_{l-1} * 0.01^2: a different place per layer
    assert list(edge.x) == [2.0] and list(edge.y) == [0.0]  # relu's edge of chaos is one point


def test_phase_diagram_colours_chi_on_a_log_scale_centred_on_one():
    sw2, sb2 = np.array([0.5, 1.0, 2.0]), np.array([0.0])
    chi = criticality.phase_grid("linear", sw2, sb2)
    fig = figures.phase_diagram("linear", sw2, sb2, chi, criticality.critical_line("linear"), [])
    np.testing.assert_allclose(fig.data[0].z, [[-1.0, 0.0, 1.0]])  # log2 chi: chi_1 = sigma_w^2 for linear
    assert len(fig.data[2].x) == 0


def test_phase_diagram_skips_layers_without_random_weights():
    sw2, sb2 = figures.phase_axes([0.0, 1.0], [0.0, 0.0])
    fig = figures.phase_diagram("tanh", sw2, sb2, criticality.phase_grid("tanh", sw2, sb2),
                                criticality.critical_line("tanh"), [("L1", 0.0, 0.0), ("L2", 1.0, 0.0)])
    assert list(fig.data[2].text) == ["L2"]
    assert len(fig.data[1].x) > 10  # tanh's edge of chaos is a curve


def test_jacobian_histogram_one_bar_series_per_initialiser():
    spectra = {"orthogonal": np.ones(64), "normal": np.concatenate([np.geomspace(1e-12, 3.0, 60), np.zeros(4)])}
    fig = figures.jacobian_histogram(spectra)
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert fig.layout.xaxis.type == "log"
    assert fig.data[0].name == "orthogonal"
    assert "4 zero" in fig.data[1].name and "below" in fig.data[1].name
    for trace, values in zip(fig.data, spectra.values()):
        assert sum(trace.y) == pytest.approx(np.count_nonzero(values) / len(values))  # nothing positive lost


def test_theory_figures_are_what_plotly_validation_would_make_them(course_prediction):
    sw2, sb2 = figures.phase_axes([1.2288, 0.002, 0.0007], [0.0] * 3)
    markers = [("L1", 1.2288, 0.0), ("L2", 0.002, 0.0), ("L3", 0.0, 0.0)]
    for activation in ("relu", "tanh"):
        assert_sent_as_plotly_would_validate_it(figures.phase_diagram(
            activation, sw2, sb2, criticality.phase_grid(activation, sw2, sb2), criticality.critical_line(activation),
            markers))
    assert_sent_as_plotly_would_validate_it(figures.depth_comparison(
        course_prediction.z_std, np.array([0.45, 0.0, np.nan, 4e-6]), "t", "std of Z"))
    assert_sent_as_plotly_would_validate_it(figures.depth_comparison(np.ones(1), np.ones(1), "t", "std"))
    assert_sent_as_plotly_would_validate_it(figures.jacobian_histogram({"zeros": np.zeros(8), "one": np.ones(8)}))
