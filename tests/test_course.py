"""The course's published results (shared/reference/course-numbers.md), reproduced by the engine."""

import numpy as np
import pytest

from core.config import Config
from core.datasets import load_dataset
from core.train import Training, probe

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
@pytest.mark.parametrize("init, scale, train, test", [
    ("zeros", 0.0, 0.50, 0.50),
    ("normal", 10.0, 0.83, 0.86),
    ("he_normal", 0.0, 0.993, 0.96),
])
def test_initialization_exercise(init, scale, train, test):
    config = Config(dataset="circles", layers=(10, 5), activation="relu", init=init, init_scale=scale, lr=0.01,
                    iterations=15000, seed=3, rng="legacy", record_every=15000)
    final = run(config, load_dataset("circles"))[15000]
    assert final.train_accuracy == pytest.approx(train, abs=0.005)
    assert final.test_accuracy == pytest.approx(test, abs=0.005)
