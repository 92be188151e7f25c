"""The verdict: every figure in its text comes from the probe's statistics, and it changes with the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.presets import presets
from core.data import load_dataset
from core.measures import baseline, chance_cost
from core.verdict import FLAT_OUTPUT_STD, PROBLEM, compare_line, number, outcome, probe_verdict
from tests.conftest import SHARED_DATA

PRESETS = presets(SHARED_DATA)


def geometric_step(stds) -> float:
    """The mean per-layer ratio of the std of Z, as the mean of the logarithms of consecutive ratios."""
    z = np.asarray(stds, dtype=float)
    return float(np.exp(np.mean(np.log(z[1:] / z[:-1]))))


@pytest.fixture(scope="module")
def seed_question():
    """The seed question: the course's files when present, else the shapes64 stand-in (the preset decides)."""
    config = PRESETS["seed question"].config
    dataset = load_dataset(config.dataset, SHARED_DATA)
    return config, dataset, *probe_verdict(config, dataset)


@pytest.fixture(scope="module")
def circles():
    config = PRESETS["course 2 circles"].config
    return config, load_dataset("circles")


def test_seed_question_names_its_output_std_and_the_majority_class_accuracy(seed_question):
    config, dataset, network, snapshot, v = seed_question
    z = snapshot.stats["z_std"]
    y_train, y_test = dataset.y_train.ravel(), dataset.y_test.ravel()
    majority = np.bincount(y_train).argmax()
    share = np.mean(y_test == majority)
    assert v.severity == PROBLEM and v.headline.startswith("Will predict the majority class")
    assert number(z[-1]) in v.headline and f"{share:.0%}" in v.headline
    output = v.finding("output")
    assert output.values["z_std"] == z[-1] < FLAT_OUTPUT_STD
    assert f"{int(np.sum(y_test == majority))}/{y_test.size}" in output.text
    if dataset.name == "catvnoncat":  # the course's numbers (README's table)
        assert number(z[-1]) == "4.4e-6" and f"{share:.0%}" == "34%" and "non-cat" in output.text


def test_signal_factor_is_the_geometric_mean_of_the_hidden_layers_ratios(seed_question):
    *_, snapshot, v = seed_question
    expected = geometric_step(snapshot.stats["z_std"][:-1])
    signal = v.finding("signal")
    assert signal.values["factor"] == pytest.approx(expected, rel=1e-12)
    assert f"×{number(expected)}" in signal.text and "fades" in signal.text


def test_gradient_finding_quotes_the_first_and_output_layers_dz(seed_question):
    config, _, _, snapshot, v = seed_question
    dz = snapshot.stats["dz_std"]
    gradient = v.finding("gradient")
    assert gradient.text.startswith("Vanishing gradients")
    assert number(dz[0]) in gradient.text and number(dz[-1]) in gradient.text
    assert f"×{number(dz[0] / dz[-1])}" in gradient.text
    # what one GD step does to W^1, from the norms: lr * ||dW|| / ||W||
    assert number(config.lr * snapshot.stats["dw_norm"][0] / snapshot.stats["w_norm"][0]) in gradient.text


def test_the_comparison_probes_xavier_and_he_on_the_same_network(seed_question):
    config, dataset, *_, v = seed_question
    names = [r.init for r in v.references]
    assert names == ["normal ×0.01", "xavier_normal", "he_normal"]
    _, he, _ = probe_verdict(config.replace(init="he_normal"), dataset)
    assert v.references[2].output_z_std == he.stats["z_std"][-1]
    assert number(he.stats["z_std"][-1]) in v.finding("comparison").text
    assert v.references[2].output_z_std > 1000 * v.references[0].output_z_std


def test_zeros_on_circles_never_break_the_symmetry(circles):
    config, dataset = circles
    _, snapshot, v = probe_verdict(config.replace(init="zeros"), dataset)
    assert np.all(snapshot.stats["z_std"] == 0)
    assert v.headline.startswith("Will not learn") and "symmetry is never broken" in v.finding("symmetry").text
    assert v.prognosis == "stuck"
    assert v.finding("symmetry").values["layers"] == [1, 2]
    assert v.finding("gradient").text.startswith("No gradient reaches layer 1")
    assert v.finding("signal") is None  # no ratio of zeros


def test_constant_weights_are_identical_units_even_though_their_std_is_not_zero(circles):
    config, dataset = circles
    _, snapshot, v = probe_verdict(config.replace(init="constant", init_scale=0.5), dataset)
    assert snapshot.stats["z_std"][0] > 0
    assert v.finding("symmetry") is not None and v.finding("symmetry").values["layers"] == [1, 2]


def test_times_ten_on_circles_starts_saturated_with_exploding_gradients(circles):
    config, dataset = circles
    _, snapshot, v = probe_verdict(config.replace(init="normal", init_scale=10.0), dataset)
    z, dz = snapshot.stats["z_std"], snapshot.stats["dz_std"]
    assert v.headline.startswith("Starts saturated, so it learns slowly") and number(z[-1]) in v.headline
    assert v.prognosis == "slow"  # the course's ×10 reaches 86% after 15,000 steps: held back, not stuck
    assert compare_line("normal ×10", v, None).startswith("normal ×10: should learn, slowly")
    assert number(snapshot.loss) in v.finding("output").text
    assert v.finding("gradient").text.startswith("Exploding gradients") and f"×{number(dz[0] / dz[-1])}" in \
        v.finding("gradient").text


def test_he_on_circles_is_healthy(circles):
    config, dataset = circles
    _, snapshot, v = probe_verdict(config.replace(init="he_normal"), dataset)  # PyTorch's He (the preset: the course's)
    assert v.severity == "ok" and v.headline.startswith("Healthy")
    assert [r.init for r in v.references] == ["he_normal", "xavier_normal"]  # the chosen one is not probed twice
    assert f"×{number(geometric_step(snapshot.stats['z_std'][:-1]))}" in v.headline


def test_tanh_at_scale_one_saturates_every_hidden_layer():
    config = PRESETS["tanh 10×500"].config.replace(init_scale=1.0)
    _, snapshot, v = probe_verdict(config, load_dataset(config.dataset))
    saturated = v.finding("saturated")
    shares = snapshot.stats["saturated_fraction"][:-1]
    assert saturated.values["layers"] == list(range(1, 11))
    assert saturated.values["fractions"] == pytest.approx(shares)
    assert f"{shares[0]:.0%}" in saturated.text


def test_the_verdict_follows_the_config(circles):
    config, dataset = circles
    texts = [probe_verdict(config.replace(init=name, init_scale=scale), dataset)[2].headline
             for name, scale in (("zeros", 0.01), ("normal", 10.0), ("he_normal", 0.01), ("normal", 0.01))]
    assert len(set(texts)) == 4


def test_outcome_and_compare_lines_read_the_final_accuracy_against_the_baseline(circles, seed_question):
    *_, v = seed_question
    base = v.baseline

    class Final:
        step, loss, train_accuracy = 2500, 0.644, 0.66
        test_accuracy = base.accuracy

    learned = type("Learned", (Final,), {"test_accuracy": base.accuracy + 0.46, "loss": 0.09})
    assert outcome(base, Final, math.log(2)).text.startswith("Learned nothing beyond the class balance")
    assert outcome(base, learned, math.log(2)).text.startswith("Learned:")
    assert "46 points above" in outcome(base, learned, math.log(2)).text
    assert "does not learn" in compare_line("normal ×0.01", v, Final)
    assert "learns (" in compare_line("course_sqrt", v, learned)
    assert compare_line("normal ×0.01", v, None).startswith("normal ×0.01: should not learn")


def test_baseline_uses_the_training_majority_on_the_test_labels():
    dataset = load_dataset("circles")
    base = baseline(dataset)
    majority = np.bincount(dataset.y_train.ravel()).argmax()
    assert base.accuracy == np.mean(dataset.y_test == majority) and base.split == "test"
    assert chance_cost(type("N", (), {"dims": (2, 5, 10)})()) == pytest.approx(math.log(10))
