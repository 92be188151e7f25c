"""The course's published results (shared/reference/course-numbers.md), reproduced by the engine."""

import math

import numpy as np
import pytest

from app.presets import presets
from core.config import Config
from core.data import load_dataset
from core.network import forward, probability_cost
from core.train import Training, initial_cost_note, probe

SEED_RUN = dict(dataset="catvnoncat", layers=(20, 7, 5), activation="relu", lr=0.0075, iterations=2500, seed=1,
                rng="legacy")


def run(config, data):
    training = Training(config, data)
    snaps = list(training)
    assert training.finished, training.stopped_reason
    return {s.step: s for s in snaps}


def test_course_sqrt_init_reaches_80_percent(cat_data):
    snaps = run(Config(**SEED_RUN, init="course_sqrt", record_every=100), cat_data)
    assert snaps[0].loss == pytest.approx(0.7717493284237686, rel=1e-9)
    assert snaps[2400].loss == pytest.approx(0.09287821526472397, rel=1e-9)
    final = snaps[2500]
    assert round(final.train_accuracy * 209) == 206
    assert final.test_accuracy == pytest.approx(0.80)


def test_small_init_never_leaves_non_cat(cat_data):
    snaps = run(Config(**SEED_RUN, init="normal", init_scale=0.01, record_every=2499), cat_data)
    assert snaps[0].loss == pytest.approx(0.6931489, abs=5e-8)
    assert snaps[2499].loss == pytest.approx(0.643985, abs=5e-6)
    final = snaps[2500]
    assert round(final.train_accuracy * 209) == 137  # the 137 non-cats of the training set
    assert final.test_accuracy == pytest.approx(0.34)  # the 17 non-cats of the test set


def test_two_layer_small_init(cat_data):
    config = Config(**{**SEED_RUN, "layers": (7,)}, init="normal", init_scale=0.01, record_every=2500)
    snaps = run(config, cat_data)
    assert snaps[0].loss == pytest.approx(0.6930497356599888, rel=1e-9)
    assert snaps[2500].train_accuracy == 1.0
    assert snaps[2500].test_accuracy == pytest.approx(0.72)


def test_probe_shows_the_collapse(cat_data):
    small = probe(Config(**SEED_RUN, init="normal", init_scale=0.01), cat_data)[2].stats["z_std"]
    good = probe(Config(**SEED_RUN, init="course_sqrt"), cat_data)[2].stats["z_std"]
    ratios = small[:-1] / small[1:]
    assert np.all((ratios > 20) & (ratios > 0)), small  # ~25-50x smaller every layer
    np.testing.assert_allclose(small, [0.5, 0.02, 4e-4, 5e-6], rtol=0.3)
    assert np.all((good > 0.15) & (good < 0.5)), good


# The course's "Initialization" exercise: circles, [2, 10, 5, 1], relu, lr 0.01, 15000 iterations, weight seed 3.
CIRCLES_RUN = dict(dataset="circles", layers=(10, 5), activation="relu", lr=0.01, iterations=15000, seed=3,
                   rng="legacy")


@pytest.mark.parametrize("init, scale, train, test", [
    ("zeros", 0.0, 0.50, 0.50),
    ("normal", 10.0, 0.83, 0.86),
])
def test_initialization_exercise(init, scale, train, test):
    config = Config(**CIRCLES_RUN, init=init, init_scale=scale, record_every=15000)
    final = run(config, load_dataset("circles"))[15000]
    assert final.train_accuracy == pytest.approx(train, abs=0.005)
    assert final.test_accuracy == pytest.approx(test, abs=0.005)


def test_circles_preset_prints_the_course_he_costs():
    """The preset trains the course's He, randn * sqrt(2 / n_prev) on every layer: its printed costs, exactly."""
    preset = presets()["course 2 circles"].config
    assert preset == Config(**CIRCLES_RUN, init="course_he", record_every=preset.record_every)
    snaps = run(preset.replace(record_every=1000), load_dataset("circles"))  # the course prints every 1000 steps
    assert snaps[0].loss == pytest.approx(0.8830537463419761, rel=1e-9)
    assert snaps[14000].loss == pytest.approx(0.07357895962677366, rel=1e-9)
    assert snaps[15000].train_accuracy == pytest.approx(0.993, abs=0.005)
    assert snaps[15000].test_accuracy == pytest.approx(0.96, abs=0.005)
    assert 14000 % preset.record_every == 0  # the preset's own curve passes through the printed point


def test_he_normal_keeps_pytorchs_gain_1_on_the_output_layer():
    """PyTorch's kaiming_normal_ with calculate_gain('sigmoid') = 1 on the output: a different step-0 cost."""
    data = load_dataset("circles")
    pytorch_style = probe(Config(**CIRCLES_RUN, init="he_normal"), data)
    course = probe(Config(**CIRCLES_RUN, init="course_he"), data)
    for hidden_pytorch, hidden_course in zip(pytorch_style[1].W[:-1], course[1].W[:-1]):
        np.testing.assert_array_equal(hidden_pytorch, hidden_course)  # relu's gain^2 = 2: the same weights
    np.testing.assert_allclose(pytorch_style[1].W[-1] * np.sqrt(2), course[1].W[-1], rtol=1e-15)
    assert pytorch_style[2].loss == pytest.approx(0.8011131481, abs=1e-10)


def test_times_10_costs_inf_in_the_course_and_1773_here():
    """The course computes its cost from the probabilities; with randn * 10 some saturate to exactly 0 or 1 on the
    wrong side and it prints inf at step 0. Init Lab's cost, from the logits, is finite: the preset says both."""
    data = load_dataset("circles")
    run = Training(Config(**CIRCLES_RUN, init="normal", init_scale=10.0), data)
    a3, Y = forward(run.network, run.params, run.x).A[-1], run.y
    with np.errstate(divide="ignore", invalid="ignore"):  # the course's compute_loss, as it is written
        logprobs = np.multiply(-np.log(a3), Y) + np.multiply(-np.log(1 - a3), 1 - Y)
        course = 1.0 / Y.shape[1] * np.nansum(logprobs)
    assert course == np.inf == probability_cost(run.network, a3, Y)
    loss = next(iter(run)).loss
    assert math.isfinite(loss)
    note = initial_cost_note(Training(Config(**CIRCLES_RUN, init="normal", init_scale=10.0), data))
    assert "inf" in note and f"{loss:.6g}" in note
    assert f"{loss:.2f}" in presets()["course 2 circles"].note  # 1773.59


def test_probability_cost_is_the_courses_own_number():
    run = Training(Config(**CIRCLES_RUN, init="course_he"), load_dataset("circles"))
    a3 = forward(run.network, run.params, run.x).A[-1]
    assert probability_cost(run.network, a3, run.y) == pytest.approx(0.8830537463419761, rel=1e-12)
    assert initial_cost_note(run) is None
