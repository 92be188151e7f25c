"""The compiled one-pass kernels against NumPy written out the plain way."""

import dataclasses
import math

import numba
import numpy as np
import pytest

from core.activations import ACTIVATIONS
from core.config import Config
from core.data import Dataset, load_dataset
from core.kernels import CHUNK
from core.network import Grads, Params, backward, forward, targets
from core.stats import choose_binning, layer_stats, moments, overflow_note, summarize
from core.train import Optimizer, Training


# Arrays within one of `scan`'s chunks, of exactly two, and of many with a last one part full, of a size that is and
# one that is not a multiple of the counter sets (the remainder counted on its own).
@pytest.mark.parametrize("shape", [(37, 53), (64, CHUNK // 64 * 2), (132, 256), (133, 255)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summarize_matches_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.3).astype(dtype)
    x[0, :5] = [np.inf, -np.inf, 10.0, -10.0, np.nan]
    x[1, :3] = [-3.0, 3.0, np.nextafter(dtype(-3.0), dtype(0))]  # lo is in, hi is out
    x[-1, -3:] = [-3.0, np.nextafter(dtype(3.0), dtype(0)), 3.0]  # the same at the end, in the last chunk
    finite = x[np.isfinite(x)].astype(np.float64)
    s = summarize(x[2:], -3.0, 3.0, 12)
    rest = x[2:].astype(np.float64)
    assert s.mean == pytest.approx(rest.mean(), rel=1e-12)
    assert s.var == pytest.approx(rest.var(), rel=1e-12)
    assert s.std == math.sqrt(s.var)
    assert s.norm == pytest.approx(math.sqrt(np.sum(rest * rest)), rel=1e-12)
    full = summarize(x, -3.0, 3.0, 12)
    counts, _ = np.histogram(finite[(finite >= -3.0) & (finite < 3.0)], np.linspace(-3.0, 3.0, 13))
    np.testing.assert_array_equal(full.counts, counts)
    assert full.under == np.count_nonzero(x < -3.0)  # -inf included
    assert full.over == np.count_nonzero(x >= 3.0) + 1  # and the NaN
    assert math.isnan(full.mean)


def test_nan_counts_as_over_and_all_values_are_counted():
    x = np.array([[np.nan, 0.5, -2.0, 7.0, 0.0]])
    s = summarize(x, -1.0, 1.0, 4)
    assert (s.under, s.over, int(s.counts.sum())) == (1, 2, 2)


def test_moments_fall_back_where_the_mean_dominates():
    x = 1e8 + np.arange(1000.0)  # E[x^2] - E[x]^2 would lose every digit
    mean, var, std, norm = moments(x)
    assert mean == pytest.approx(x.mean(), rel=1e-15)
    assert var == pytest.approx(x.var(), rel=1e-9)
    assert norm == pytest.approx(math.sqrt(np.dot(x, x)), rel=1e-12)


def decimal_reference(x):
    """Mean, std and root sum of squares in plain NumPy on the values divided by a power of ten (so nothing
    overflows, and rounded differently from the kernels' power-of-two scaling), multiplied back."""
    x = x.astype(np.float64).reshape(-1)
    c = 10.0 ** math.floor(math.log10(np.abs(x).max()))
    y = x / c
    return y.mean() * c, y.std() * c, math.sqrt(math.fsum(y * y)) * c


@pytest.mark.parametrize("exponent", [150, 200, 300])
def test_moments_of_values_whose_squares_overflow(exponent):
    """E[x^2] - E[x]^2 was inf - inf = NaN past |x| ~ 1.3e154: finite values must give finite statistics."""
    rng = np.random.default_rng(exponent)
    x = (rng.standard_normal(5000) + 0.7) * 10.0**exponent
    x[3] = 3 * 10.0**(exponent + 5)  # squares overflow whatever the exponent; a variance past 1.8e308 is inf
    mean, var, std, norm = moments(x)
    ref_mean, ref_std, ref_norm = decimal_reference(x)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-12)
    assert norm == pytest.approx(ref_norm, rel=1e-12)
    assert var == (pytest.approx(ref_std**2, rel=1e-12) if ref_std < 1e154 else math.inf)
    s = summarize(x, -1.0, 1.0, 4)
    assert (s.mean, s.var, s.std, s.norm) == (mean, var, std, norm)


def test_moments_are_nan_only_for_nan_values_and_infinite_only_for_infinite_ones():
    x = np.linspace(-1e200, 1e200, 101)
    mean, var, std, norm = moments(x)
    assert math.isfinite(mean) and math.isfinite(std) and math.isfinite(norm) and var == math.inf  # var ~ 3e399
    x[7] = np.inf
    mean, var, std, norm = moments(x)
    assert mean == math.inf and var == std == norm == math.inf
    x[8] = np.nan
    assert all(math.isnan(v) for v in moments(x))


def test_probe_of_values_past_1e154_matches_a_rescaled_reference():
    """The issue's probe: relu, 40 layers of 500, weights N(0, 1000^2). Z reaches 1e168, dW 1e165: every statistic
    finite (variances past 1.8e308 excepted) and equal to NumPy's on the values divided by a power of ten."""
    run = Training(Config(dataset="gaussian:500", layers=(500,) * 40, activation="relu", init="normal",
                          init_scale=1000.0), load_dataset("gaussian:500"))
    net, params = run.network, run.params
    cache = forward(net, params, run.x)
    grads = backward(net, params, cache, targets(net, run.y, run.x.dtype))
    s = layer_stats(net, params, cache, grads, choose_binning(net, cache, grads, 64))
    assert overflow_note(s) is None
    for i in range(net.depth):
        for h, values in (("z", cache.Z[i]), ("a", cache.A[i + 1]), ("dz", grads.dZ[i]), ("dw", grads.dW[i]),
                          ("w", params.W[i])):
            mean, std, norm = decimal_reference(values)
            assert s[f"{h}_std"][i] == pytest.approx(std, rel=1e-12), (h, i)
            if f"{h}_mean" in s:
                assert s[f"{h}_mean"][i] == pytest.approx(mean, rel=1e-9, abs=1e-12 * std), (h, i)
            if f"{h}_norm" in s:
                assert s[f"{h}_norm"][i] == pytest.approx(norm, rel=1e-12), (h, i)
    assert np.abs(cache.Z[-2]).max() > 1e160 and np.abs(grads.dW[0]).max() > 1e160  # the case the test is about


def test_statistics_say_which_values_overflowed():
    """NaN statistics only where the values are NaN, infinite ones where they are infinite, and a note that says
    which and why."""
    rng = np.random.default_rng(2)
    data = Dataset(name="toy", x_train=rng.normal(size=(5, 40)), y_train=rng.integers(0, 2, (1, 40)),
                   x_test=rng.normal(size=(5, 4)), y_test=rng.integers(0, 2, (1, 4)), classes=("0", "1"))
    run = Training(Config(layers=(8, 6), activation="tanh", init="xavier_normal"), data)
    net, params = run.network, run.params
    cache = forward(net, params, run.x)
    grads = backward(net, params, cache, targets(net, run.y, run.x.dtype))
    binning = choose_binning(net, cache, grads, 16)
    assert overflow_note(layer_stats(net, params, cache, grads, binning)) is None
    cache.Z[0][2, 3] = np.inf
    grads.dW[1][0, 0] = np.nan
    stats = layer_stats(net, params, cache, grads, binning)
    assert stats["z_std"][0] == math.inf and math.isnan(stats["dw_std"][1])
    finite = [stats[k][i] for k in ("z_std", "a_std", "dz_std", "dw_std", "w_std") for i in range(net.depth)
              if (k, i) not in (("z_std", 0), ("dw_std", 1))]
    assert np.all(np.isfinite(finite))
    note = overflow_note(stats)
    assert "Z holds infinite values in layer 1" in note and "dW is NaN in layer 2" in note and "smaller" in note


def test_histogram_edges_stay_finite_next_to_float64s_largest_value():
    """A layer holding 1.7e308: 1.05 x the largest value would overflow, and so would hi - lo."""
    rng = np.random.default_rng(5)
    data = Dataset(name="toy", x_train=rng.normal(size=(3, 20)), y_train=rng.integers(0, 2, (1, 20)),
                   x_test=rng.normal(size=(3, 4)), y_test=rng.integers(0, 2, (1, 4)), classes=("0", "1"))
    run = Training(Config(layers=(6,), activation="tanh", init="xavier_normal"), data)
    net, params = run.network, run.params
    cache = forward(net, params, run.x)
    grads = backward(net, params, cache, targets(net, run.y, run.x.dtype))
    cache.Z[0][:] *= 1e307 / np.abs(cache.Z[0]).max()
    cache.Z[0][0, 0] = 1.7e308
    binning = choose_binning(net, cache, grads, 16)
    edges = binning.edges()["z"][0]
    assert np.all(np.isfinite(edges)) and edges[-1] > 1e307
    stats = layer_stats(net, params, cache, grads, binning)
    assert stats["z_hist"][0].sum() + stats["z_outside"][0].sum() == cache.Z[0].size
    assert math.isfinite(stats["z_std"][0]) and overflow_note(stats) is None


def numpy_update(kind, p, g, v, s, lr, b1, b2, eps, t):
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
            delta = (v * (-lr * (1.0 / (1.0 - b1**t)))) / (np.sqrt(s * (1.0 / (1.0 - b2**t))) + eps)
    p += delta
    return delta


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["gd", "momentum", "adam"])
def test_optimizer_is_bitwise_the_numpy_update(kind, dtype):
    rng = np.random.default_rng(1)
    shapes = [(6, 4), (3, 6), (5, 1031)]  # the last one long enough for the compiled loop's SIMD body and tail
    params = Params([rng.standard_normal(sh).astype(dtype) for sh in shapes],
                    [rng.standard_normal((sh[0], 1)).astype(dtype) for sh in shapes])
    config = Config(optimizer=kind, lr=0.05, beta1=0.8, beta2=0.99, eps=1e-3)  # none of them the default
    optimizer = Optimizer(config, params)
    reference = params.copy()
    v = [np.zeros_like(a) for a in reference.W + reference.b]
    s = [np.zeros_like(a) for a in reference.W + reference.b]
    for t in (1, 2, 3):
        grads = Grads([], [rng.standard_normal(sh).astype(dtype) for sh in shapes],
                      [rng.standard_normal((sh[0], 1)).astype(dtype) for sh in shapes])
        norms = optimizer.step(params, grads)
        deltas = [numpy_update(kind, p, g, vi, si, 0.05, 0.8, 0.99, 1e-3, t)
                  for p, g, vi, si in zip(reference.W + reference.b, grads.dW + grads.db, v, s)]
        for ours, theirs in zip(params.W + params.b, reference.W + reference.b):
            assert ours.dtype == dtype
            np.testing.assert_array_equal(ours, theirs)
        expected = [np.linalg.norm(d.astype(np.float64)) for d in deltas[:len(shapes)]]  # the weights' updates
        np.testing.assert_allclose(norms, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_layer_stats_match_numpy_written_out(activation, dtype):
    """The one compiled call per layer gives what the plain NumPy expressions give (np.histogram, mean, var, std,
    norms: no kernel of Init Lab's as the reference), saturation bounds compared in the data's dtype (as NumPy
    compares an array with a Python float) and values on them included."""
    rng = np.random.default_rng(4)
    data = Dataset(name="toy", x_train=rng.normal(size=(9, 60)) * 3, y_train=rng.integers(0, 2, (1, 60)),
                   x_test=rng.normal(size=(9, 5)), y_test=rng.integers(0, 2, (1, 5)), classes=("0", "1"))
    run = Training(Config(layers=(12, 6), activation=activation, init="he_normal", dtype=np.dtype(dtype).name),
                   data)
    net, params = run.network, run.params
    cache = forward(net, params, run.x)
    grads = backward(net, params, cache, targets(net, run.y, run.x.dtype))
    act = ACTIVATIONS[activation]
    if act.saturation is not None:  # values exactly on, and just inside, the saturation bounds
        low, high = (dtype(b) for b in act.saturation)
        cache.A[1][0, :4] = [low, high, np.nextafter(low, dtype(0)), np.nextafter(high, dtype(0))]
    wide = choose_binning(net, cache, grads, 16)  # a quarter of the step-0 ranges, so values fall outside too
    binning = dataclasses.replace(wide, lo={h: lo / 4 for h, lo in wide.lo.items()},
                                  hi={h: hi / 4 for h, hi in wide.hi.items()})
    stats = layer_stats(net, params, cache, grads, binning)
    for i in range(net.depth):
        a = cache.A[i + 1]
        for h, values in (("z", cache.Z[i]), ("a", a), ("dz", grads.dZ[i]), ("dw", grads.dW[i])):
            x = values.astype(np.float64).ravel()
            lo, hi = binning.lo[h][i], binning.hi[h][i]
            counts, _ = np.histogram(x[(x >= lo) & (x < hi)], np.linspace(lo, hi, 17))  # [lo, hi): hi is "over"
            np.testing.assert_array_equal(stats[f"{h}_hist"][i], counts)
            assert tuple(stats[f"{h}_outside"][i]) == (np.count_nonzero(x < lo), np.count_nonzero(~(x < hi)))
        for key, values in (("z", cache.Z[i]), ("a", a), ("dz", grads.dZ[i]), ("dw", grads.dW[i]), ("w", params.W[i])):
            x = values.astype(np.float64)
            rms = np.sqrt(np.mean(x * x))  # sums in another order than NumPy's (SIMD lanes): equal to rounding
            if key != "w":  # W's mean is not a statistic
                assert stats[f"{key}_mean"][i] == pytest.approx(x.mean(), rel=1e-12, abs=1e-12 * rms)
            assert stats[f"{key}_std"][i] == pytest.approx(x.std(), rel=1e-10)
        for key, values in (("z", cache.Z[i]), ("a", a)):
            assert stats[f"{key}_var"][i] == pytest.approx(values.astype(np.float64).var(), rel=1e-10)
        assert stats["dw_norm"][i] == pytest.approx(np.sqrt(np.sum(grads.dW[i].astype(np.float64) ** 2)), rel=1e-12)
        assert stats["db_norm"][i] == pytest.approx(np.sqrt(np.sum(grads.db[i].astype(np.float64) ** 2)), rel=1e-12)
        assert stats["w_norm"][i] == pytest.approx(np.sqrt(np.sum(params.W[i].astype(np.float64) ** 2)), rel=1e-12)
        layer_act = ACTIVATIONS.get(net.layer_activation(i))
        dead = np.count_nonzero(a == 0) / a.size if layer_act is not None and layer_act.can_die else 0.0
        assert stats["dead_fraction"][i] == dead
        if layer_act is not None and layer_act.saturation is not None:
            low, high = layer_act.saturation
            assert stats["saturated_fraction"][i] == np.count_nonzero((a < low) | (a > high)) / a.size
        else:
            assert stats["saturated_fraction"][i] == 0.0


def test_a_new_depth_compiles_nothing():
    """The statistics kernel's types do not depend on the network's depth: a kernel taking a tuple of arrays per
    network (a tuple's length is part of its type) compiled anew for each depth, 4 s the first time."""
    from core import kernels
    from core.train import probe

    rng = np.random.default_rng(0)
    data = Dataset(name="toy", x_train=rng.normal(size=(3, 8)), y_train=rng.integers(0, 2, (1, 8)),
                   x_test=rng.normal(size=(3, 2)), y_test=rng.integers(0, 2, (1, 2)), classes=("0", "1"))
    compiled_kernels = {name: f for name, f in vars(kernels).items()
                        if isinstance(f, numba.core.registry.CPUDispatcher)}
    probe(Config(layers=(4,)), data)
    assert "layer_kernel" in compiled_kernels
    compiled = {name: len(f.signatures) for name, f in compiled_kernels.items()}
    for depth in (2, 5, 9):
        probe(Config(layers=(4,) * depth), data)
    assert {name: len(f.signatures) for name, f in compiled_kernels.items()} == compiled


WARM_CHECK = """
import json, numba, numpy as np
from core import kernels, train
from core.config import DTYPES, OPTIMIZERS, Config
from core.data import Dataset
from core.train import Training, probe
from core.warm import warm_kernels

def signatures():
    return {f"{module.__name__}.{name}": len(f.signatures) for module in (kernels, train)
            for name, f in vars(module).items() if isinstance(f, numba.core.registry.CPUDispatcher)}

warm_kernels()
warmed = signatures()
rng = np.random.default_rng(1)
data = Dataset(name="toy", x_train=rng.normal(size=(5, 40)), y_train=rng.integers(0, 3, (1, 40)),
               x_test=rng.normal(size=(5, 9)), y_test=rng.integers(0, 3, (1, 9)), classes=("0", "1", "2"))
for dtype in DTYPES:
    for optimizer in OPTIMIZERS:
        for batch in (0, 16):
            list(Training(Config(layers=(6, 4), activation="tanh", iterations=3, record_every=2, dtype=dtype,
                                 optimizer=optimizer, batch_size=batch), data))
    list(Training(Config(layers=(6,), activation="gelu_erf", iterations=1, dtype=dtype), data))
probe(Config(layers=(30,) * 30, init="normal", init_scale=1e6), data)  # squares past float64's range
print(json.dumps({name: n for name, n in signatures().items() if n != warmed[name]}))
"""


def test_warm_kernels_compiles_every_signature_a_run_uses():
    """After `warm_kernels`, runs of every dtype, optimiser and batch mode, and statistics of values whose squares
    overflow, compile nothing more (in a fresh interpreter, so that no earlier test has compiled them first)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", WARM_CHECK], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert json.loads(done.stdout) == {}


def test_importing_the_engine_compiles_nothing(tmp_path):
    """A fresh install's first command compiles only what its run uses: the exact GELU's error function, compiled
    when `core` was imported, was 1.1 CPU-s of every first run (numba writes what it compiles to its cache)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import core.cli, core.warm"], env=env, timeout=120, check=True,
                   cwd=Path(__file__).resolve().parents[1])
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


WARM_FOR_CHECK = """
import json, numba, numpy as np
from core import kernels, train
from core.config import Config
from core.data import Dataset
from core.train import Training
from core.warm import warm_for

def loaded():
    return {f"{module.__name__}.{name}": len(f.overloads) for module in (kernels, train)
            for name, f in vars(module).items() if isinstance(f, numba.core.registry.CPUDispatcher)}

config = Config(layers=(30, 9, 4), activation="tanh,relu,gelu_erf", dtype="float32", optimizer="momentum",
                iterations=3, record_every=1)
warm_for(config)
warmed = loaded()
rng = np.random.default_rng(1)
data = Dataset(name="toy", x_train=rng.normal(size=(40, 60)), y_train=rng.integers(0, 2, (1, 60)),
               x_test=rng.normal(size=(40, 9)), y_test=rng.integers(0, 2, (1, 9)), classes=("0", "1"))
list(Training(config, data))
print(json.dumps({name: n for name, n in loaded().items() if n != warmed[name]}))
"""


def test_warm_for_loads_every_kernel_its_run_uses():
    """The CLI calls `warm_for` before it starts its clock: afterwards the run itself compiles or loads no kernel
    (loading a run's kernels from numba's cache took 0.3-1 CPU-s, counted in the CLI's seconds of training)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", WARM_FOR_CHECK], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert json.loads(done.stdout) == {}
