"""The theory lens against independent references: Monte Carlo, closed forms, known critical points, and probes
of real networks drawn by the engine (the measurement the theory is meant to predict)."""

import io
import json
import math

import numpy as np
import pytest

from core import criticality, meanfield, theory
from core.activations import ACTIVATIONS
from core.cli import main
from core.config import Config
from core.data import Dataset
from core.limits import Limits
from core.network import Network, backward, forward, initialize, targets

WIDE = Limits(max_params=10**8)  # the 30 x 1000 probes are over the classroom server's parameter cap


def gaussian_dataset(dim: int, m: int, seed: int = 0, classes: int = 2) -> Dataset:
    """Standard-normal inputs with random labels; more classes mean more output units to average over."""
    rng = np.random.default_rng(seed)
    return Dataset("probe", rng.standard_normal((dim, m)), rng.integers(0, classes, (1, m)), np.zeros((dim, 0)),
                   np.zeros((1, 0), dtype=np.int64), tuple(map(str, range(classes))))


def close_to_monte_carlo(exact: float, samples: np.ndarray) -> bool:
    """Within 1e-3, widened to 4 standard errors where the samples' own spread makes 1e-3 unreachable."""
    return abs(exact - float(samples.mean())) < max(1e-3, 4 * float(samples.std()) / math.sqrt(samples.size))


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


# --- Gaussian expectations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_quadrature_agrees_with_monte_carlo(name):
    z = np.random.default_rng(7).standard_normal(4_000_000)
    act = ACTIVATIONS[name]
    for q in (0.5, 1.0, 2.0):
        u = math.sqrt(q) * z
        a = act.forward(u)
        assert close_to_monte_carlo(float(meanfield.activation_second_moment(name, q)), a * a)
        assert close_to_monte_carlo(float(meanfield.derivative_second_moment(name, q)), act.derivative(u, a) ** 2)


def test_cross_moment_agrees_with_monte_carlo():
    rng = np.random.default_rng(3)
    z1, z2 = rng.standard_normal((2, 2_000_000))
    for name in ("tanh", "relu", "selu", "sigmoid"):
        act = ACTIVATIONS[name]
        for q, c, b in ((1.3, 0.7, 0.0), (0.5, -0.3, 0.0), (2.0, 0.9, 0.4)):
            v = q - b * b
            u1, u2 = b + math.sqrt(v) * z1, b + math.sqrt(v) * (c * z1 + math.sqrt(1 - c * c) * z2)
            q12 = b * b + c * v
            values = act.forward(u1) * act.forward(u2)
            assert close_to_monte_carlo(meanfield.activation_cross_moment(name, q, q12, b), values)
            slopes = act.derivative(u1, act.forward(u1)) * act.derivative(u2, act.forward(u2))
            assert close_to_monte_carlo(meanfield.activation_cross_moment(name, q, q12, b, derivative=True), slopes)


def test_kinked_quadrature_matches_closed_forms():
    # relu through the general (split) quadrature against q/2; elu's E[phi'^2] = 1/2 + e^{2q} erfc(sqrt(2q)) / 2.
    relu = ACTIVATIONS["relu"].forward
    for q in (0.1, 1.0, 7.0):
        assert meanfield._split_expectation(lambda u: relu(u) ** 2, q) == pytest.approx(q / 2, rel=1e-10)
        expected = 0.5 + math.exp(2 * q) * math.erfc(math.sqrt(2 * q)) / 2
        assert float(meanfield.derivative_second_moment("elu", q)) == pytest.approx(expected, rel=1e-9)
    # relu's derivative cross moment through quadrature against the degree-0 arc-cosine kernel (pi - t) / (2 pi)
    for c in (-0.5, 0.2, 0.9):
        expected = (math.pi - math.acos(c)) / (2 * math.pi)
        slope_moment = meanfield.activation_cross_moment("relu", 1.5, 1.5 * c, derivative=True)
        assert slope_moment == pytest.approx(expected, abs=1e-8)


# --- the forward map, order and chaos ----------------------------------------------------------------------------
def test_relu_with_sigma_w2_two_keeps_q_constant():
    q = meanfield.forward_variance("relu", np.full(50, 2.0), 0.0, input_q=0.7).q
    np.testing.assert_allclose(q, 1.4, rtol=1e-12)
    shrinking = meanfield.forward_variance("relu", np.full(10, 1.0), 0.0, input_q=0.7).q
    np.testing.assert_allclose(shrinking, 0.7 * 0.5 ** np.arange(10), rtol=1e-12)


def test_tanh_edge_of_chaos_at_zero_bias_is_sigma_w2_one():
    sw2, sb2 = criticality.critical_line("tanh")
    assert sb2[0] == 0.0 and sw2[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(sb2) >= 0) and np.all(np.diff(sw2) >= 0)  # more bias needs larger weights
    below, above = criticality.chi_1("tanh", [0.95, 1.05], 0.0)  # the fixed-point iteration, a separate path
    assert below == pytest.approx(0.95, abs=1e-6) and above > 1.0


def test_points_on_the_critical_line_have_chi_one():
    sw2, sb2 = criticality.critical_line("tanh")
    for i in (60, 100, 160, 199):
        assert float(criticality.chi_1("tanh", sw2[i], sb2[i])) == pytest.approx(1.0, abs=1e-6)


def test_wide_tanh_quadrature_resolves_the_narrow_derivative():
    # E[sech^4(s z)] -> (4/3) / (s sqrt(2 pi)) for large s: a spike Gauss-Hermite's nodes would step over.
    s = 100.0
    assert float(meanfield.derivative_second_moment("tanh", s * s)) == pytest.approx(
        4 / 3 / (s * math.sqrt(2 * math.pi)), rel=1e-3)


def test_relu_critical_point_and_depth_scale():
    sw2, sb2 = criticality.critical_line("relu")
    np.testing.assert_allclose(sw2, 2.0)
    np.testing.assert_allclose(sb2, 0.0, atol=1e-12)
    chi = criticality.phase_grid("relu", np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.1]))
    np.testing.assert_allclose(chi, [[0.5, 1.0, 1.5]] * 2, rtol=1e-9)
    assert criticality.depth_scale(1.0) == math.inf
    assert criticality.depth_scale(math.exp(-0.1)) == pytest.approx(10.0)


def test_mean_field_map_iterated_by_monte_carlo():
    # An independent implementation of the map: sample z, square phi, average.
    z = np.random.default_rng(11).standard_normal(2_000_000)
    q = 1.5 * 1.0 + 0.05
    for got in criticality.mean_field("tanh", 1.5, 0.05, depth=6).q:
        assert got == pytest.approx(q, rel=2e-3)
        q = 1.5 * float(np.mean(np.tanh(math.sqrt(q) * z) ** 2)) + 0.05


# --- fixed points and depth scales (Schoenholz et al. 2017), against an independent quadrature -------------------
_X, _W = np.polynomial.hermite.hermgauss(160)  # physicists' nodes: E[f(z)] = sum w f(sqrt(2) x) / sqrt(pi)


def reference_mean(f, q):
    return float(np.sum(_W * f(math.sqrt(2 * q) * _X)) / math.sqrt(math.pi))


def reference_pair_mean(f, q, c):
    """E[f(u1) f(u2)], u1, u2 ~ N(0, q) with correlation c, by a product rule."""
    z1, z2 = math.sqrt(2) * _X[:, None], math.sqrt(2) * _X[None, :]
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
    return float(np.sum(_W[:, None] * _W[None, :] * f(u1) * f(u2)) / math.pi)


def reference_fixed_point(phi, sw2, sb2, lo, hi):
    """Plain bisection of sigma_w^2 E[phi^2] + sigma_b^2 - q on a bracket chosen by hand."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if sw2 * reference_mean(lambda u: phi(u) ** 2, mid) + sb2 - mid > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def tanh_slope(u):
    return 1 / np.cosh(u) ** 2


def test_relu_fixed_point_is_the_closed_form_and_none_past_the_critical_line():
    q = 1.0
    for _ in range(100_000):  # the map itself, iterated: it contracts by 0.9995 per step
        q = 1.999 * q / 2 + 0.1
    assert float(criticality.fixed_point("relu", 1.999, 0.1)) == pytest.approx(200.0, rel=1e-12)
    assert q == pytest.approx(200.0, rel=1e-12)
    assert float(criticality.fixed_point("leaky_relu", 1.5, 0.2)) == pytest.approx(0.2 / (1 - 1.5 * (1 + 0.01**2) / 2))
    assert float(criticality.fixed_point("linear", 0.5, 0.3)) == pytest.approx(0.6)
    assert float(criticality.fixed_point("relu", 2.0, 0.1)) == math.inf  # q grows by 0.1 per layer for ever
    assert float(criticality.fixed_point("relu", 2.5, 0.0)) == math.inf
    c = criticality.criticality("relu", 2.0, 0.1)
    assert c.q_star == math.inf and math.isnan(c.xi_q) and math.isnan(c.xi_c)


def test_tanh_at_the_critical_point_has_q_star_zero_and_infinite_depth_scales():
    c = criticality.criticality("tanh", 1.0, 0.0)
    assert (c.q_star, c.chi_1, c.phase, c.c_star) == (0.0, 1.0, "critical", 1.0)
    assert c.xi_q == c.xi_c == c.trainable_depth == math.inf
    below = criticality.criticality("tanh", 0.999, 0.0)  # ordered: q decays to 0, chi_1 = sigma_w^2 phi'(0)^2
    assert below.q_star == 0.0 and below.chi_1 == pytest.approx(0.999) and below.phase == "ordered"
    assert below.xi_c == pytest.approx(-1 / math.log(0.999))


def test_tanh_just_past_the_critical_point_is_chaotic():
    c = criticality.criticality("tanh", 1.002, 0.0)
    q_star = reference_fixed_point(np.tanh, 1.002, 0.0, 1e-9, 1.0)
    assert c.q_star == pytest.approx(q_star, rel=1e-9)
    chi = 1.002 * reference_mean(lambda u: tanh_slope(u) ** 2, q_star)
    assert c.chi_1 == pytest.approx(chi, abs=1e-12) and round(c.chi_1, 7) == 1.0000013 and c.phase == "chaotic"
    # tanh is odd and there is no bias: the correlation map's stable fixed point is c* = 0, slope sigma_w^2 E[phi']^2
    assert c.c_star == pytest.approx(0.0, abs=1e-9)
    assert c.chi_c == pytest.approx(1.002 * reference_mean(tanh_slope, q_star) ** 2, abs=1e-12)


@pytest.mark.parametrize("name,phi,sw2,sb2", [("tanh", np.tanh, 1.5, 0.05), ("tanh", np.tanh, 2.5, 0.1),
                                              ("tanh", np.tanh, 4.0, 0.3), ("sigmoid", ACTIVATIONS["sigmoid"].forward,
                                                                            3.0, 0.2)])
def test_fixed_point_and_depth_scales_against_the_iterated_maps(name, phi, sw2, sb2):
    c = criticality.criticality(name, sw2, sb2)
    q_star = reference_fixed_point(phi, sw2, sb2, 0.0, 50.0)
    assert c.q_star == pytest.approx(q_star, rel=1e-8)
    # xi_q: the rate at which the map's iterates approach q*, measured on one step from 1e-4 away
    start = q_star * (1 + 1e-4)
    rate = (sw2 * reference_mean(lambda u: phi(u) ** 2, start) + sb2 - q_star) / (start - q_star)
    assert c.xi_q == pytest.approx(-1 / math.log(rate), rel=1e-3)
    # xi_c: iterate the correlation map from 0.99 to its stable fixed point, then its slope there
    corr = 0.99
    for _ in range(500):  # slopes <= 0.94 here: 500 steps leave less than 1e-13
        corr = (sw2 * reference_pair_mean(phi, q_star, corr) + sb2) / q_star
    derivative = ACTIVATIONS[name]
    slope = sw2 * reference_pair_mean(lambda u: derivative.derivative(u, phi(u)), q_star, corr)
    assert c.c_star == pytest.approx(min(corr, 1.0), abs=1e-7)
    chi_c = slope if corr < 1 - 1e-6 else c.chi_1
    assert c.chi_c == pytest.approx(chi_c, rel=1e-7) and c.xi_c == pytest.approx(-1 / math.log(chi_c), rel=1e-5)
    assert c.phase == ("chaotic" if c.chi_1 > 1 else "ordered") and (c.c_star < 1) == (c.phase == "chaotic")


def test_cli_map_reports_the_fixed_point_or_its_absence():
    code, out, _ = cli("theory", "--activation", "relu", "--sigma-w2", "1.999", "--sigma-b2", "0.1", "--json")
    assert code == 0 and json.loads(out)["q_star"] == pytest.approx(200.0)
    code, out, _ = cli("theory", "--activation", "relu", "--sigma-w2", "2", "--sigma-b2", "0.1", "--json")
    assert code == 0 and json.loads(out)["q_star"] is None
    code, out, _ = cli("theory", "--activation", "relu", "--sigma-w2", "2", "--sigma-b2", "0.1")
    assert "no finite fixed point (q grows without bound)" in out
    code, out, _ = cli("theory", "--activation", "tanh", "--sigma-w2", "1", "--json")
    r = json.loads(out)
    assert (r["q_star"], r["chi_1"], r["phase"], r["xi_q"], r["xi_c"]) == (0.0, 1.0, "critical", "inf", "inf")
    code, out, _ = cli("theory", "--activation", "tanh", "--sigma-w2", "1")
    assert "critical" in out and "xi_c = ∞ layers" in out and "6 xi_c = ∞" in out
    code, out, _ = cli("theory", "--activation", "tanh", "--sigma-w2", "1.002", "--json")
    r = json.loads(out)
    assert round(r["chi_1"], 7) == 1.0000013 and r["phase"] == "chaotic" and 0 < r["xi_c"] < math.inf


# --- a real network against the prediction -----------------------------------------------------------------------
# Orthogonal is narrower only because 30 QR decompositions of 1000 x 1000 take too long for a unit test.
@pytest.mark.parametrize("init,scale,width", [("xavier_normal", 0.01, 1000), ("lecun_uniform", 0.01, 1000),
                                              ("he_normal", 0.01, 1000), ("normal", 0.05, 1000),
                                              ("orthogonal", 0.01, 400)])
def test_wide_deep_tanh_probe_matches_forward_prediction(init, scale, width):
    """30 tanh layers: sigma_w^2 = 1 (critical, q decays), 25/9 and 2.5 (q settles at q*), on N(0, 1) inputs.

    Ten classes give ten output units: one unit's second moment over m examples would scatter by sqrt(2/m).
    """
    config = Config(layers=(width,) * 30, activation="tanh", init=init, init_scale=scale)
    result = theory.compare(config, gaussian_dataset(width, 100, classes=10), WIDE)
    p = result.prediction
    np.testing.assert_allclose(result.z_rms[:30] ** 2, p.z_rms[:30] ** 2, rtol=0.10)
    np.testing.assert_allclose(result.z_std[:30] ** 2, p.z_std[:30] ** 2, rtol=0.10)
    # The 10-unit readout sees the last layer through a rank-100 sample: its second moment scatters ~12%
    # between draws (measured over seeds), so it gets a looser bound.
    assert result.z_rms[30] ** 2 == pytest.approx(p.z_rms[30] ** 2, rel=0.3)


def measured_over_draws(config: Config, data: Dataset, draws: int = 3) -> dict[str, np.ndarray]:
    """What the app's charts draw, per layer, averaged over `draws` weight draws (seeds 1, 2, ...): the std of Z, of
    A and of dZ over each layer's n x m values, and the rms of dZ. Forward and backward passes of the engine
    itself, without the probe's histograms (tests/test_stats.py checks the probe's statistics against these)."""
    net = Network.from_config(config, data.n_features, data.output_size)
    y = targets(net, data.y_train, np.float64)
    seen = []
    for seed in range(1, draws + 1):
        params = initialize(net, config.replace(seed=seed))
        cache = forward(net, params, data.x_train)
        dz = backward(net, params, cache, y).dZ
        seen.append({"z_std": [np.std(z) for z in cache.Z], "a_std": [np.std(a) for a in cache.A[1:]],
                     "dz_std": [np.std(g) for g in dz], "dz_rms": [np.sqrt(np.mean(g * g)) for g in dz]})
    return {k: np.mean([d[k] for d in seen], axis=0) for k in seen[0]}


WIDE_DEEP_PHASES = {  # 30 layers of 1000 units; sigma_w^2 of the hidden layers
    "tanh ordered": (dict(activation="tanh", init="normal", init_scale=math.sqrt(0.7 / 1000)), "ordered"),  # 0.7
    "tanh critical": (dict(activation="tanh", init="xavier_normal"), "critical"),  # 1
    "tanh chaotic": (dict(activation="tanh", init="he_normal"), "chaotic"),  # 25/9
    "relu He": (dict(activation="relu", init="he_normal"), "critical"),  # 2
}


@pytest.mark.parametrize("phase", list(WIDE_DEEP_PHASES))
def test_every_drawn_prediction_is_within_ten_percent_on_wide_deep_networks(phase):
    """Issue 15's acceptance: std of Z, A, dZ and rms of dZ, predicted against the mean of three draws.

    Ten classes: ten output units. Relu's forward stds random-walk with depth (Hanin & Nica 2019: the spread of
    log q grows like depth / width, and relu's non-zero mean correlates the examples, so the batch does not average
    it away): over 24 draws the prediction is unbiased (mean ratio 0.98 at layer 29) but one draw scatters by 14%
    there, so the mean of three is within 10% only about half the time; it gets 15%. Everything else: 10%.
    """
    settings, expected_phase = WIDE_DEEP_PHASES[phase]
    config = Config(layers=(1000,) * 30, **settings)
    data = gaussian_dataset(1000, 100, classes=10)
    p = theory.predict_for(config, data)
    assert criticality.criticality(settings["activation"], float(p.sigma_w2[1]), 0.0).phase == expected_phase
    measured = measured_over_draws(config, data)
    for name in ("z_std", "a_std", "dz_std", "dz_rms"):
        predicted = getattr(p, name)
        drawn = np.isfinite(predicted)  # a softmax output has no elementwise std of A
        tolerance = 0.15 if phase == "relu He" and name in ("z_std", "a_std") else 0.10
        np.testing.assert_allclose(predicted[drawn], measured[name][drawn], rtol=tolerance, err_msg=name)


def test_a_one_unit_output_is_predicted_as_the_probe_measures_it():
    """One sigmoid unit on top of 30 relu layers: the examples reach it nearly parallel (relu's correlations grow
    with depth), so its values over the batch spread far less than sqrt(q) (the population std over weight draws,
    which the old prediction drew: 5x the measurement here). The probe's spread is what the app draws."""
    config = Config(layers=(1000,) * 30, activation="relu", init="he_normal")
    data = gaussian_dataset(1000, 100, classes=2)
    p = theory.predict_for(config, data)
    measured = measured_over_draws(config, data)
    assert p.z_std[-1] < 0.5 * p.z_rms[-1]
    # a single unit's spread over a batch of nearly parallel inputs scatters by ~25% per draw: the mean of three
    for name in ("z_std", "a_std", "dz_std", "dz_rms"):
        assert getattr(p, name)[-1] == pytest.approx(measured[name][-1], rel=0.25), name


def test_pooled_variance_is_what_np_var_of_a_layer_averages_to():
    # n units x m examples: h = b + sqrt(v) (sqrt(c) u_unit + sqrt(1 - c) e), a unit's offset u shared by its examples
    rng = np.random.default_rng(8)
    b, v, c = 0.3, 2.0, 0.8
    for n, m, draws in ((1, 50, 20_000), (5, 20, 10_000), (200, 10, 1_000)):
        u = rng.standard_normal((draws, n, 1))
        h = b + math.sqrt(v) * (math.sqrt(c) * u + math.sqrt(1 - c) * rng.standard_normal((draws, n, m)))
        measured = h.reshape(draws, -1).var(axis=1)
        expected = float(meanfield.pooled_variance(b * b + v, b * b + c * v, b, n, m))
        assert close_to_monte_carlo(expected, measured)


def test_softmax_square_sum_against_monte_carlo():
    rng = np.random.default_rng(4)
    for var, k in ((0.01, 2), (1.0, 10), (4.0, 10), (400.0, 3)):
        z = rng.standard_normal((200_000, k)) * math.sqrt(var)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        assert close_to_monte_carlo(theory.softmax_square_sum(var, k), (p * p).sum(axis=1))


def test_course_network_collapse(cat_data):
    config = Config(dataset="catvnoncat", layers=(20, 7, 5), activation="relu", init="normal", init_scale=0.01,
                    rng="legacy")
    p = theory.predict_for(config, cat_data)
    np.testing.assert_allclose(p.sigma_w2, [12288e-4, 20e-4, 7e-4, 5e-4])
    issue = np.array([0.5, 0.02, 4e-4, 5e-6])  # the issue's rounded numbers
    assert np.all(np.abs(np.log(p.z_rms / issue)) < math.log(1.3))
    # The theory predicts the average over weight draws: the 1-unit output layer of one draw varies by 2x
    # (the course's own draw, legacy seed 1, measures 1.2e-5 for rms and 4.4e-6 for std there).
    net = Network.from_config(config, cat_data.n_features, cat_data.output_size)
    draws = [forward(net, initialize(net, config.replace(seed=seed, rng="default")), cat_data.x_train).Z
             for seed in range(100)]
    second = np.mean([[np.mean(z * z) for z in zs] for zs in draws], axis=0)
    var = np.mean([[np.var(z) for z in zs] for zs in draws], axis=0)
    np.testing.assert_allclose(np.sqrt(second), p.z_rms, rtol=0.2)
    # std about the layer's mean: a narrow layer keeps the offsets its units get from correlated inputs
    np.testing.assert_allclose(np.sqrt(var), p.z_std, rtol=0.25)


def test_course_draw_matches_the_mean_field_std_where_one_draw_can(cat_data):
    """The course's own draw (legacy seed 1) against the prediction, within 20%, in the layers of 20 and 7 units.

    The prediction is the mean over draws of what a probe measures; over 200 draws one draw's std scatters by 12%,
    28%, 56% and 86% in the layers of 20, 7, 5 and 1 units (the cat images are so alike that a narrow layer's
    spread over the batch rests on a few random numbers). The course's draw sits high in the last two (3.6e-4 and
    4.4e-6 against the mean over draws 2.7e-4 and 1.9e-6); test_course_network_collapse checks those against the
    mean over draws instead.
    """
    config = Config(dataset="catvnoncat", layers=(20, 7, 5), activation="relu", init="normal", init_scale=0.01,
                    rng="legacy", seed=1)
    result = theory.compare(config, cat_data)
    p = result.prediction
    assert np.all(np.abs(np.log(p.z_std[:2] / result.z_std[:2])) < math.log(1.2)), (p.z_std, result.z_std)
    assert np.all(np.abs(np.log(p.a_std[:2] / result.a_std[:2])) < math.log(1.2)), (p.a_std, result.a_std)
    assert result.z_std[-1] / result.z_std[0] < 1e-4 and p.z_std[-1] / p.z_std[0] < 1e-4  # both show the collapse


@pytest.mark.parametrize("name,q,mean", [("relu", 2.0, 0.0), ("tanh", 0.7, 0.0), ("sigmoid", 3.0, 0.5),
                                         ("elu", 1.3, -0.2), ("swish", 0.4, 0.1)])
def test_activation_mean_agrees_with_monte_carlo(name, q, mean):
    z = mean + math.sqrt(q - mean**2) * np.random.default_rng(5).standard_normal(4_000_000)
    assert close_to_monte_carlo(float(meanfield.activation_mean(name, q, mean)), ACTIVATIONS[name].forward(z))


def test_constant_weights_are_refused_with_a_reason():
    config = Config(dataset="gaussian:20", layers=(10,), init="constant", init_scale=0.5)
    with pytest.raises(meanfield.TheoryError, match="not random"):
        theory.predict_for(config, gaussian_dataset(20, 10))


def test_lsuv_prediction_reads_the_drawn_weights():
    config = Config(layers=(50, 50), activation="tanh", init="lsuv")
    ds = gaussian_dataset(30, 200)
    result = theory.compare(config, ds)
    np.testing.assert_allclose(result.z_std[:2] ** 2, 1.0, atol=0.1)  # what LSUV aims at
    np.testing.assert_allclose(result.prediction.z_rms[:2] ** 2, result.z_rms[:2] ** 2, rtol=0.15)


# --- the Jacobian ------------------------------------------------------------------------------------------------
def test_orthogonal_linear_network_is_an_isometry():
    sv = theory.jacobian_singular_values("linear", "orthogonal", width=64, depth=40, n_inputs=2)
    assert sv.shape == (128,)
    np.testing.assert_allclose(sv, 1.0, atol=1e-8)


def test_gaussian_linear_network_spreads_the_spectrum():
    sv = theory.jacobian_singular_values("linear", "lecun_normal", width=64, depth=40, n_inputs=2)
    assert sv.max() / sv.min() > 100  # the product of Gaussian matrices is ill-conditioned


def test_jacobian_matches_finite_differences():
    width, depth = 8, 5
    sv = theory.jacobian_singular_values("tanh", "xavier_normal", width, depth, n_inputs=1, seed=4)
    config = Config(layers=(width,) * depth, activation="tanh", init="xavier_normal", seed=4)
    net = Network((width,) * (depth + 2), ("tanh",) * depth)
    x = np.random.default_rng([4, 2]).standard_normal((width, 1))
    params = initialize(net, config, x)

    def f(v):
        for W, b in zip(params.W[:depth], params.b[:depth]):
            v = np.tanh(W @ v + b)
        return v

    h = 1e-6
    jac = np.hstack([(f(x + h * e[:, None]) - f(x - h * e[:, None])) / (2 * h) for e in np.eye(width)])
    np.testing.assert_allclose(np.sort(sv), np.sort(np.linalg.svd(jac, compute_uv=False)), rtol=1e-6, atol=1e-9)


# --- command line ------------------------------------------------------------------------------------------------
def test_cli_map_json():
    code, out, _ = cli("theory", "--activation", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05", "--depth", "20",
                       "--json")
    assert code == 0
    r = json.loads(out)
    assert len(r["q"]) == 20 and r["q"][0] == pytest.approx(1.5 * 1.0 + 0.05)
    assert r["q"][-1] == pytest.approx(r["q_star"], rel=1e-4)
    # ordered: correlations settle to c* = 1 at the rate chi_c* = chi_1
    assert 0 < r["chi_1"] < 1 and r["c_star"] == 1.0 and r["xi_c"] == pytest.approx(-1 / math.log(r["chi_1"]))
    assert r["trainable_depth"] == pytest.approx(6 * r["xi_c"]) and r["phase"] == "ordered"


def test_cli_map_critical_relu_has_infinite_depth_scales():
    # sigma_w^2 = 2, no bias: every q is a fixed point, the one reached is q^1; both maps have slope exactly 1
    code, out, _ = cli("theory", "--activation", "relu", "--sigma-w2", "2", "--depth", "3", "--input-q", "0.3",
                       "--json")
    r = json.loads(out)
    assert code == 0 and r["q"] == pytest.approx([0.6] * 3) and r["q_star"] == pytest.approx(0.6)
    assert r["chi_1"] == 1.0 and r["phase"] == "critical" and r["xi_q"] == r["xi_c"] == "inf"


def test_cli_network_prediction_next_to_probe():
    code, out, _ = cli("theory", "--dataset", "gaussian:64", "--layers", "200x3", "--activation", "tanh",
                       "--init", "xavier_normal", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["layer"] for r in rows] == [1, 2, 3, 4]
    for r in rows[:3]:
        assert r["z_rms_measured"] == pytest.approx(r["z_rms_predicted"], rel=0.15)


@pytest.mark.parametrize("argv,message", [
    (["--sigma-w2", "-1"], "--sigma-w2 must be"),
    (["--sigma-w2", "1", "--activation", "nope"], "not known"),
    (["--sigma-w2", "1", "--depth", "0"], "--depth must be"),
    (["--dataset", "gaussian:8", "--layers", "4", "--init", "constant", "--scale", "0.3"], "not random"),
])
def test_cli_errors_are_one_line(argv, message):
    code, out, err = cli("theory", *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
