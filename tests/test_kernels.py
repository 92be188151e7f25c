"""The compiled one-pass kernels against NumPy written out the plain way."""

import math

import numpy as np
import pytest

from core.config import Config
from core.network import Params
from core.network import Grads
from core.stats import moments, summarize
from core.train import ADAM_EPSILON, Optimizer


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summarize_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((37, 53)) * 2 + 0.3).astype(dtype)
    x[0, :4] = [np.inf, -np.inf, 10.0, -10.0]
    x[1, :3] = [-3.0, 3.0, np.nextafter(dtype(-3.0), dtype(0))]  # lo is in, hi is out
    finite = x[np.isfinite(x)].astype(np.float64)
    s = summarize(x[2:], -3.0, 3.0, 12)
    rest = x[2:].astype(np.float64)
    assert s.mean == pytest.approx(rest.mean(), rel=1e-12)
    assert s.var == pytest.approx(rest.var(), rel=1e-12)
    assert s.sum_sq == pytest.approx(float(np.sum(rest * rest)), rel=1e-12)
    full = summarize(x, -3.0, 3.0, 12)
    counts, _ = np.histogram(finite[(finite >= -3.0) & (finite < 3.0)], np.linspace(-3.0, 3.0, 13))
    np.testing.assert_array_equal(full.counts, counts)
    assert full.under == np.count_nonzero(x < -3.0)  # -inf included
    assert full.over == np.count_nonzero(x >= 3.0)
    assert math.isnan(full.mean)


def test_nan_counts_as_over_and_all_values_are_counted():
    x = np.array([[np.nan, 0.5, -2.0, 7.0, 0.0]])
    s = summarize(x, -1.0, 1.0, 4)
    assert (s.under, s.over, int(s.counts.sum())) == (1, 2, 2)


def test_moments_fall_back_where_the_mean_dominates():
    x = 1e8 + np.arange(1000.0)  # E[x^2] - E[x]^2 would lose every digit
    mean, var, sum_sq = moments(x)
    assert mean == pytest.approx(x.mean(), rel=1e-15)
    assert var == pytest.approx(x.var(), rel=1e-9)
    assert sum_sq == pytest.approx(float(np.dot(x, x)), rel=1e-12)


def numpy_update(kind, p, g, v, s, lr, b1, b2, t):
    """The course's update rules in NumPy, one operation at a time."""
    if kind == "gd":
        delta = g * -lr
    else:
        v *= b1
        v += (1.0 - b1) * g
        if kind == "momentum":
            delta = v * -lr
        else:
            s *= b2
            s += (1.0 - b2) * (g * g)
            delta = (v * (-lr * (1.0 / (1.0 - b1**t)))) / (np.sqrt(s * (1.0 / (1.0 - b2**t))) + ADAM_EPSILON)
    p += delta
    return delta


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["gd", "momentum", "adam"])
def test_optimizer_is_bitwise_the_numpy_update(kind, dtype):
    rng = np.random.default_rng(1)
    shapes = [(6, 4), (3, 6)]
    params = Params([rng.standard_normal(sh).astype(dtype) for sh in shapes],
                    [rng.standard_normal((sh[0], 1)).astype(dtype) for sh in shapes])
    config = Config(optimizer=kind, lr=0.05, momentum=0.8, beta2=0.99)
    optimizer = Optimizer(config, params)
    reference = params.copy()
    v = [np.zeros_like(a) for a in reference.W + reference.b]
    s = [np.zeros_like(a) for a in reference.W + reference.b]
    for t in (1, 2, 3):
        grads = Grads([], [rng.standard_normal(sh).astype(dtype) for sh in shapes],
                      [rng.standard_normal((sh[0], 1)).astype(dtype) for sh in shapes])
        norms = optimizer.step(params, grads)
        deltas = [numpy_update(kind, p, g, vi, si, 0.05, 0.8, 0.99, t)
                  for p, g, vi, si in zip(reference.W + reference.b, grads.dW + grads.db, v, s)]
        for ours, theirs in zip(params.W + params.b, reference.W + reference.b):
            assert ours.dtype == dtype
            np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_allclose(norms, [np.linalg.norm(d.astype(np.float64)) for d in deltas[:2]], rtol=1e-12)
