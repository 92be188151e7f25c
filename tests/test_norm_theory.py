"""The theory of residual and batch-normalised stacks against independent NumPy simulations of wide deep networks
(written here, sharing nothing with core/ but the activation functions), closed forms, and Monte Carlo."""

import json
import math

import numpy as np
import pytest

from core import theory
from core.activations import ACTIVATIONS
from core.config import Config
from core.meanfield import backward_variance, forward_variance
from core.meanfield import TheoryError
from core.normtheory import batchnorm_backward, batchnorm_forward, batchnorm_gradient_factor, gradient_growth
from tests.test_theory import WIDE, cli, gaussian_dataset

EPS = 1e-5  # PyTorch's BatchNorm1d default, which the engine uses


def residual_simulation(activation, width, depth, alpha, sigma_w2, m, seed):
    """E[Z^2] per layer of x -> A^1 = phi(W^1 x), A^l = A^{l-1} + alpha phi(W^l A^{l-1}) on N(0, 1) inputs."""
    rng = np.random.default_rng(seed)
    act = ACTIVATIONS[activation]
    a = rng.standard_normal((width, m), dtype=np.float32)
    z2 = np.empty(depth)
    for layer in range(depth):  # float32: half the time of float64, and far finer than the 10% compared
        w = rng.standard_normal((width, width), dtype=np.float32) * np.float32(math.sqrt(sigma_w2 / width))
        z = w @ a
        a = a + alpha * act.forward(z) if layer else act.forward(z)
        z2[layer] = np.mean(z * z)
    return z2


def residual_prediction(activation, width, depth, alpha, sigma_w2):
    """The same stack through the mean-field maps: a top 'output layer' of fan 1 passing the unit gradient down."""
    skip = np.array([0.0] + [alpha] * (depth - 1) + [0.0])
    sw2 = np.append(np.full(depth, sigma_w2), 1.0)
    fwd = forward_variance(activation, sw2, 0.0, 1.0, 0.0, 0.0, skip)
    dz2, _ = backward_variance([activation] * depth, [width] * (depth + 2), sw2, fwd, (1.0, 0.0), skip)
    return fwd, dz2[:depth]


def test_residual_relu_forward_needs_the_mean_cross_term():
    """Relu's positive mean piles up along the skip: E[(A^l)^2] gains 2 alpha E[A^{l-1}] E[phi(Z^l)] per block.
    With it the prediction is within 10% of the mean of three draws (one draw scatters ~15% at layer 50, as a
    plain relu stack's does); without it (the formula of a zero-mean branch W phi(x)) it is several times off."""
    alpha = 1 / math.sqrt(50)
    measured = np.mean([residual_simulation("relu", 1000, 50, alpha, 2.0, 16, seed) for seed in range(3)], axis=0)
    fwd, _ = residual_prediction("relu", 1000, 50, alpha, 2.0)
    np.testing.assert_allclose(measured, fwd.q[:50], rtol=0.10)
    zero_mean_branch = 2.0 * (1 + alpha**2) ** np.maximum(np.arange(50) - 1, 0)  # q = 2 p, p *= 1 + alpha^2
    assert measured[-1] > 3 * zero_mean_branch[-1]


def test_residual_relu_alpha_one_grows_geometrically_with_depth():
    """He weights, alpha = 1: every block at least doubles E[Z^2] (the branch adds as much as the skip carries)."""
    fwd, _ = residual_prediction("relu", 1000, 50, 1.0, 2.0)
    ratios = fwd.q[2:50] / fwd.q[1:49]
    assert np.all(ratios > 2.0) and fwd.q[49] > 1e15
    bounded, _ = residual_prediction("tanh", 1000, 50, 1 / math.sqrt(50), 1.0)
    assert bounded.q[49] < 3 * bounded.q[0]


# --- batch normalisation -----------------------------------------------------------------------------------------
def batchnorm_simulation(activation, width, depth, scale, m, seed):
    """Std of the normalised Z and rms of dZ (at the activation's input) per layer of a batch-normalised stack,
    PyTorch's training-mode BatchNorm1d (gamma 1, beta 0), weights N(0, scale^2 / width), a 10-unit readout with
    N(0, 1) gradients."""
    rng = np.random.default_rng(seed)
    act = ACTIVATIONS[activation]
    a = rng.standard_normal((width, m))
    layers = []
    for _ in range(depth):
        w = rng.standard_normal((width, width)) * scale / math.sqrt(width)
        h = w @ a
        inv_std = 1 / np.sqrt(h.var(axis=1, keepdims=True) + EPS)
        z = (h - h.mean(axis=1, keepdims=True)) * inv_std
        layers.append((w, z, inv_std))
        a = act.forward(z)
    readout = rng.standard_normal((10, width)) / math.sqrt(width)
    grad, dz_rms = readout.T @ rng.standard_normal((10, m)), np.empty(depth)
    for layer in reversed(range(depth)):
        w, z, inv_std = layers[layer]
        g = grad * act.derivative(z, act.forward(z))
        dz_rms[layer] = math.sqrt(np.mean(g * g))
        dh = inv_std * (g - g.mean(axis=1, keepdims=True) - z * np.mean(g * z, axis=1, keepdims=True))
        grad = w.T @ dh
    return np.array([np.std(z) for _, z, _ in layers]), dz_rms


@pytest.mark.parametrize("activation,scale", [("relu", math.sqrt(2)), ("relu", 0.01), ("tanh", 1.0)])
def test_batchnorm_normalises_forward_and_gradients_grow_by_the_predicted_factor(activation, scale):
    """500 units, 30 layers, a batch of 128. Std of Z: 1 whatever the scale (within 1%, where v >> eps). Per-layer
    growth of dZ: within 1% of the prediction (finite batches raise it by O(1/m): measured 0.2% relu, 0.5% tanh);
    dZ itself, 30 layers down: within 15% (that 0.5% per layer, compounded)."""
    width, depth, m = 500, 30, 128
    z_std, dz_rms = batchnorm_simulation(activation, width, depth, scale, m, seed=2)
    sigma_w2 = np.append(np.full(depth, scale**2), 1.0)
    fwd = batchnorm_forward([activation] * depth, sigma_w2[:-1], 1.0, m, EPS)
    dz2, _ = batchnorm_backward([activation] * depth, [width] * (depth + 1) + [10], sigma_w2, fwd, (1.0, 0.0), m,
                                EPS)
    np.testing.assert_allclose(z_std, np.sqrt(fwd.s2), rtol=0.01)
    predicted = np.sqrt(dz2[:depth])
    assert gradient_growth(dz_rms) == pytest.approx(gradient_growth(predicted), rel=0.01)
    np.testing.assert_allclose(dz_rms, predicted, rtol=0.15)
    if scale > 0.1:  # v >> eps: the large-batch factor itself
        assert gradient_growth(predicted) == pytest.approx(batchnorm_gradient_factor(activation), rel=1e-3)


def test_batchnorm_with_weights_below_eps_does_not_normalise():
    """Weights of std 0.0005 on 500 units give a batch variance ~1e-4 v of eps's size: Z's std falls below 1 and
    the gradient shrinks ~9x per layer instead of growing. The prediction follows (eps is in its maps)."""
    z_std, dz_rms = batchnorm_simulation("relu", 500, 30, 0.0005, 128, seed=3)
    fwd = batchnorm_forward(["relu"] * 30, np.full(30, 0.0005**2), 1.0, 128, EPS)
    dz2, _ = batchnorm_backward(["relu"] * 30, [500] * 31 + [10], np.append(np.full(30, 0.0005**2), 1.0), fwd,
                                (1.0, 0.0), 128, EPS)
    # Z's std falls tenfold per layer; like a plain stack's, its ratio to the mean field random-walks with depth
    np.testing.assert_allclose(z_std[:10], np.sqrt(fwd.s2[:10]), rtol=0.02)
    assert gradient_growth(dz_rms) == pytest.approx(gradient_growth(np.sqrt(dz2[:30])), rel=0.01)
    assert gradient_growth(dz_rms) < 0.2


def test_batchnorm_gradient_factor_closed_form_and_monte_carlo():
    """Relu: E[relu'^2] = 1/2 and Var(relu(u)) = (pi - 1) / (2 pi): sqrt(pi / (pi - 1)) (Yang et al. 2019).
    Tanh: against 4 million samples. Linear: 1 (no growth without a nonlinearity, in a large batch)."""
    assert batchnorm_gradient_factor("relu") == pytest.approx(math.sqrt(math.pi / (math.pi - 1)), rel=1e-9)
    u = np.random.default_rng(5).standard_normal(4_000_000)
    t = np.tanh(u)
    assert batchnorm_gradient_factor("tanh") == pytest.approx(math.sqrt(np.mean((1 - t * t) ** 2) / np.var(t)),
                                                              rel=2e-3)
    assert batchnorm_gradient_factor("linear") == pytest.approx(1.0, rel=1e-12)


# --- the engine's own networks, probed ---------------------------------------------------------------------------
def worst_error(result, names=("z_std", "a_std", "dz_rms", "dz_std")) -> dict[str, float]:
    """The largest relative error over the layers of each statistic, where the theory predicts one."""
    p = result.prediction
    return {n: float(np.nanmax(np.abs(getattr(result, n) / getattr(p, n) - 1))) for n in names}


def test_engine_residual_tanh_at_width_1000_depth_50_within_ten_percent():
    """Issue 20's acceptance: the engine's residual stack (alpha = 1/sqrt(50), Xavier), one probe: std of Z, A and
    dZ and rms of dZ of every layer within 10% of the prediction (measured: 1.5% at most)."""
    config = Config(layers=(1000,) * 50, activation="tanh", init="xavier_normal", residual=True,
                    residual_scale=1 / math.sqrt(50))
    result = theory.compare(config, gaussian_dataset(1000, 32, classes=10), WIDE)
    errors = worst_error(result)
    assert max(errors.values()) < 0.10, errors
    # the skips carry the gradient down undiminished: it grows towards the input (Yang & Schoenholz 2017)
    assert result.prediction.dz_rms[0] > 1.5 * result.prediction.dz_rms[-2]


def test_engine_batchnorm_rescues_the_forward_of_tiny_weights_and_gradients_grow():
    """randn x 0.01 with batch norm: every hidden Z has std 1 as predicted (within 1%), and dZ grows towards the
    input by the predicted factor per layer (within 1%; sqrt(pi/(pi - 1)) = 1.211 for relu), each layer's dZ
    within 10%."""
    config = Config(layers=(500,) * 30, activation="relu", init="normal", init_scale=0.01, norm="batch")
    result = theory.compare(config, gaussian_dataset(500, 128, classes=10), WIDE)
    p = result.prediction
    np.testing.assert_allclose(result.z_std[:30], p.z_std[:30], rtol=0.01)
    assert np.all(np.abs(p.z_std[:30] - 1) < 0.01)
    assert gradient_growth(result.dz_rms) == pytest.approx(gradient_growth(p.dz_rms), rel=0.01)
    assert gradient_growth(p.dz_rms) == pytest.approx(batchnorm_gradient_factor("relu"), rel=0.01)
    np.testing.assert_allclose(result.dz_rms, p.dz_rms, rtol=0.10)


def test_engine_relu_residual_gradients_are_left_unpredicted_with_the_reason():
    """Relu branches: the forward is predicted, the gradients below the top block are not (nan), and the
    prediction says why; the measurement there is far above the mean-field figure it would have drawn."""
    config = Config(layers=(50,) * 6, activation="relu", init="he_normal", residual=True)
    p = theory.predict_for(config, gaussian_dataset(50, 32, classes=10))
    assert np.all(np.isfinite(p.z_std)) and np.all(np.isnan(p.dz_rms[:-2])) and np.isfinite(p.dz_rms[-2])
    assert "non-zero mean" in p.unpredicted and "1/width" in p.unpredicted
    tanh = theory.predict_for(config.replace(activation="tanh", init="xavier_normal"),
                              gaussian_dataset(50, 32, classes=10))
    assert np.all(np.isfinite(tanh.dz_rms)) and tanh.unpredicted == ""


@pytest.mark.parametrize("settings,words", [(dict(norm="layer"), "layer norm"),
                                            (dict(norm="batch", residual=True), "not both")])
def test_settings_without_a_prediction_are_refused_with_the_reason(settings, words):
    config = Config(layers=(20, 20), **settings)
    with pytest.raises(TheoryError, match=words):
        theory.predict_for(config, gaussian_dataset(20, 16))


def test_cli_theory_prints_batch_norms_growth_and_what_it_leaves_unpredicted():
    code, out, err = cli("theory", "--dataset", "gaussian:64", "--layers", "64x8", "--norm", "batch", "--init",
                         "normal", "--scale", "0.01", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [r["layer"] for r in result["layers"]] == list(range(1, 10))
    assert result["gradient_growth_measured"] == pytest.approx(result["gradient_growth_predicted"], rel=0.05)
    assert all(r["z_std_measured"] == pytest.approx(r["z_std_predicted"], rel=0.02) for r in result["layers"][:8])
    code, out, _ = cli("theory", "--dataset", "gaussian:64", "--layers", "64x6", "--residual")
    assert code == 0 and "nan: no gradient prediction below the top hidden layer" in out
