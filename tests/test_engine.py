"""The engine against independent references: finite differences, textbook formulas, the course's own code."""

import math
import time

import numpy as np
import pytest

from core.activations import ACTIVATIONS, LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE
from core.config import Config
from core.data import Dataset
from core.initializers import BIAS_INITIALIZERS, INITIALIZERS, TRUNCATED_VARIANCE, InitArgs
from core.network import Cache, Network, Params, backward, cost, forward, initialize, layer_product, targets
from core.stats import NORM_SCALARS, STORED, latest_test_accuracy
from core.theory import predict_for
from core.train import TEST_DENSE_UNTIL, TEST_EVERY, Training, probe


def toy_dataset(n_features=4, m=12, n_classes=2, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        name="toy",
        x_train=rng.normal(size=(n_features, m)),
        y_train=rng.integers(0, n_classes, size=(1, m)),
        x_test=rng.normal(size=(n_features, 5)),
        y_test=rng.integers(0, n_classes, size=(1, 5)),
        classes=tuple(str(k) for k in range(n_classes)),
    )


# --- activations ------------------------------------------------------------------------------------------------
REFERENCE = {  # each activation written out independently, one scalar at a time
    "relu": lambda z: max(z, 0.0),
    "leaky_relu": lambda z: z if z > 0 else LEAKY_SLOPE * z,
    "tanh": math.tanh,
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)),
    "linear": lambda z: z,
    "elu": lambda z: z if z > 0 else math.exp(z) - 1,
    "selu": lambda z: SELU_SCALE * (z if z > 0 else SELU_ALPHA * (math.exp(z) - 1)),
    "gelu_tanh": lambda z: 0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))),
    "gelu_erf": lambda z: z * (1 + math.erf(z / math.sqrt(2))) / 2,  # z * Phi(z)
    "swish": lambda z: z / (1 + math.exp(-z)),
}


def test_every_activation_has_a_reference():
    assert set(REFERENCE) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_and_derivative(name):
    act = ACTIVATIONS[name]
    z = np.array([-4.0, -1.3, -0.2, 0.3, 0.9, 2.5, 6.0])  # no kink at 0 sampled
    a = act.forward(z)
    np.testing.assert_allclose(a, [REFERENCE[name](v) for v in z], rtol=1e-12, atol=1e-15)
    h = 1e-6
    numeric = (np.array([REFERENCE[name](v + h) for v in z]) - np.array([REFERENCE[name](v - h) for v in z])) / (2 * h)
    np.testing.assert_allclose(act.derivative(z, a), numeric, rtol=1e-7, atol=1e-9)


TORCH_GELU = {"gelu_erf": "none", "gelu_tanh": "tanh"}  # torch.nn.functional.gelu's `approximate`


@pytest.mark.parametrize("name", sorted(TORCH_GELU))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gelu_is_pytorchs(name, dtype):
    """Both GELUs and their derivatives against PyTorch's (autograd), in float64 and float32."""
    torch = pytest.importorskip("torch")
    act = ACTIVATIONS[name]
    z = np.linspace(-8.0, 8.0, 2001).astype(dtype)
    t = torch.tensor(z, requires_grad=True)
    expected = torch.nn.functional.gelu(t, approximate=TORCH_GELU[name])
    expected.sum().backward()
    a = act.forward(z)
    assert a.dtype == z.dtype and act.derivative(z, a).dtype == z.dtype
    # Where tanh and erf saturate (z < -7) the derivative is ~1e-15 and each side rounds it differently: an
    # absolute error of a few eps x |z| (PyTorch returns 0 where the true value is -3e-15)
    eps = np.finfo(dtype).eps
    tolerance = dict(rtol=50 * eps, atol=100 * eps)
    np.testing.assert_allclose(a, expected.detach().numpy(), **tolerance)
    np.testing.assert_allclose(act.derivative(z, a), t.grad.numpy(), **tolerance)


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = ACTIVATIONS["sigmoid"].forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(a, [0.0, 0.5, 1.0])


# --- gradient check ----------------------------------------------------------------------------------------------
def numeric_gradient(net, params, x, y, l2, array, eps=1e-6):
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        plus = cost(net, forward(net, params, x), y, params, l2)
        array[idx] = old - eps
        minus = cost(net, forward(net, params, x), y, params, l2)
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_check(activation, n_classes):
    data = toy_dataset(n_classes=n_classes, seed=len(activation))
    config = Config(layers=(5, 3), activation=activation, init="xavier_normal", bias_init="torch_default",
                    l2=0.1 if n_classes == 3 else 0.0)
    net = Network.from_config(config, data.n_features, data.output_size)
    params = initialize(net, config)
    x, y = data.x_train, data.y_train
    grads = backward(net, params, forward(net, params, x), targets(net, y, np.float64), config.l2)
    for i in range(net.depth):
        for analytic, array in ((grads.dW[i], params.W[i]), (grads.db[i], params.b[i])):
            numeric = numeric_gradient(net, params, x, y, config.l2, array)
            assert relative_error(analytic, numeric) < 1e-6, (activation, i)


def test_cost_is_finite_when_the_output_saturates():
    data = toy_dataset()
    config = Config(layers=(5,), init="normal", init_scale=1000.0)
    net = Network.from_config(config, data.n_features, 1)
    params = initialize(net, config)
    loss = cost(net, forward(net, params, data.x_train), data.y_train)
    assert math.isfinite(loss) and loss > 10  # confidently wrong, not log(0)


def test_cost_stays_finite_when_the_losses_sum_past_float64():
    """Each loss is finite (1e306): their sum overflows, their mean does not."""
    m = 1000
    z = np.where(np.arange(m) % 2 == 0, 1e306, -1e306).reshape(1, m)  # confidently wrong on every other example
    y = np.zeros((1, m), dtype=np.int64)
    net = Network((2, 1), ())
    loss = cost(net, Cache([z], [None, None]), y)
    expected = math.fsum((max(v, 0.0) + math.log1p(math.exp(-abs(v)))) / m for v in z.ravel())  # log(1 + e^z)
    assert loss == pytest.approx(expected, rel=1e-15) and expected == pytest.approx(5e305)


# --- initialisers ------------------------------------------------------------------------------------------------
FAN_IN, FAN_OUT = 600, 400
TEXTBOOK_VARIANCE = {  # Var(W_ij), written from the papers, for a relu layer, scale s = 0.05
    "normal": 0.05**2,
    "uniform": 0.05**2 / 3,
    "truncated_normal": 0.05**2 * 0.7737413,
    "xavier_normal": 2 / (FAN_IN + FAN_OUT),
    "xavier_uniform": 2 / (FAN_IN + FAN_OUT),
    "he_normal": 2 / FAN_IN,
    "he_uniform": 2 / FAN_IN,
    "lecun_normal": 1 / FAN_IN,
    "lecun_uniform": 1 / FAN_IN,
    "course_sqrt": 1 / FAN_IN,
    "course_he": 2 / FAN_IN,
    "orthogonal": 1 / FAN_IN,
    "torch_default": 1 / (3 * FAN_IN),
}


@pytest.mark.parametrize("name", sorted(TEXTBOOK_VARIANCE))
def test_initializer_variance_matches_formula(name):
    init = INITIALIZERS[name]
    args = InitArgs(scale=0.05, mode="fan_in", gain2=ACTIVATIONS["relu"].gain2)
    w = init.sample((FAN_OUT, FAN_IN), np.random.default_rng(7), args)
    expected = TEXTBOOK_VARIANCE[name]
    assert init.variance(FAN_IN, FAN_OUT, args) == pytest.approx(expected, rel=1e-6)
    tolerance = 6 * math.sqrt(2 / w.size)  # six standard errors of a sample variance
    assert w.var() == pytest.approx(expected, rel=tolerance)
    assert abs(w.mean()) < 6 * math.sqrt(expected / w.size)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_a_layers_product_is_w_a_in_every_layout_and_dtype(dtype, order):
    rng = np.random.default_rng(3)
    w64, x64 = rng.normal(size=(7, 300)), rng.normal(size=(300, 41))
    w, x = w64.astype(dtype), np.asarray(x64.astype(dtype), order=order)
    reference = np.einsum("ik,kj->ij", w.astype(np.float64), x.astype(np.float64))  # exact enough to judge rounding
    z = layer_product(w, x)
    assert z.dtype == np.dtype(dtype) and z.flags.c_contiguous  # the statistics kernels read Z flat, without a copy
    tolerance = 30 * np.finfo(dtype).eps * np.abs(w).astype(np.float64) @ np.abs(x).astype(np.float64)
    assert np.all(np.abs(z - reference) <= tolerance)


def test_he_uses_the_activation_gain_and_the_chosen_fan():
    args = InitArgs(mode="fan_out", gain2=ACTIVATIONS["tanh"].gain2)
    w = INITIALIZERS["he_normal"].sample((FAN_OUT, FAN_IN), np.random.default_rng(1), args)
    assert w.var() == pytest.approx((5 / 3) ** 2 / FAN_OUT, rel=6 * math.sqrt(2 / w.size))


def test_course_he_is_2_over_fan_in_whatever_the_activation():
    args = InitArgs(mode="fan_out", gain2=ACTIVATIONS["tanh"].gain2)  # both ignored: the course's formula has neither
    w = INITIALIZERS["course_he"].sample((FAN_OUT, FAN_IN), np.random.default_rng(1), args)
    assert w.var() == pytest.approx(2 / FAN_IN, rel=6 * math.sqrt(2 / w.size))
    assert INITIALIZERS["course_he"].variance(FAN_IN, FAN_OUT, args) == 2 / FAN_IN


def test_uniform_initializers_respect_their_bounds():
    rng = np.random.default_rng(3)
    w = INITIALIZERS["torch_default"].sample((50, 100), rng, InitArgs())
    assert np.abs(w).max() <= 1 / math.sqrt(100)
    w = INITIALIZERS["truncated_normal"].sample((200, 200), rng, InitArgs(scale=0.5))
    assert np.abs(w).max() <= 2 * 0.5
    assert TRUNCATED_VARIANCE == pytest.approx(0.7737413, rel=1e-6)


BIAS_TEXTBOOK = {"zeros": (0.0, 0.0), "constant": (0.0, 0.3), "normal": (0.09, 0.0), "torch_default": (1 / (3 * FAN_IN), 0.0)}  # (Var, mean)


@pytest.mark.parametrize("name", sorted(BIAS_TEXTBOOK))
def test_bias_initializer_draws_what_its_moments_say(name):
    """One spec gives both the draw and the moments the theory uses; each against the textbook's (Var, mean)."""
    spec = BIAS_INITIALIZERS[name]
    variance, mean = BIAS_TEXTBOOK[name]
    b = spec.sample(FAN_IN, 20_000, np.random.default_rng(5), 0.3)
    assert b.shape == (20_000, 1)
    assert spec.moments(FAN_IN, 20_000, 0.3) == pytest.approx((variance, mean), rel=1e-12)
    assert b.var() == pytest.approx(variance, rel=6 * math.sqrt(2 / b.size), abs=1e-300)
    assert b.mean() == pytest.approx(mean, abs=6 * math.sqrt(variance / b.size) + 1e-300)
    if name == "torch_default":
        assert np.abs(b).max() <= 1 / math.sqrt(FAN_IN)


def test_the_theory_takes_the_bias_variance_from_the_same_spec():
    config = Config(layers=(30, 20), bias_init="torch_default", init="xavier_normal")
    sigma_b2 = predict_for(config, toy_dataset()).sigma_b2
    np.testing.assert_allclose(sigma_b2, [1 / (3 * n) for n in (4, 30, 20)], rtol=1e-12)


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40)])
def test_orthogonal_is_orthogonal(shape):
    w = INITIALIZERS["orthogonal"].sample(shape, np.random.default_rng(0), InitArgs())
    small = min(shape)
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


def test_lsuv_reaches_its_tolerance_on_the_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 300)) * 3.0
    config = Config(layers=(64, 64, 64), activation="tanh", init="lsuv", lsuv_tol=0.05)
    net = Network((50, 64, 64, 64, 1), config.hidden_activations)
    params = initialize(net, config, x)
    cache = forward(net, params, x)
    for z in cache.Z:
        assert abs(z.var() - 1.0) < 0.05
    assert len(params.lsuv_iterations) == net.depth and sum(params.lsuv_iterations) > 0


def test_global_gain_scales_every_layer():
    data = toy_dataset()
    base = Config(layers=(8, 8), init="lecun_normal")
    net = Network.from_config(base, data.n_features, 1)
    plain, doubled = initialize(net, base), initialize(net, base.replace(init_gain=2.0))
    for w1, w2 in zip(plain.W, doubled.W):
        np.testing.assert_array_equal(w2, 2.0 * w1)


def test_legacy_rng_matches_the_course_code():
    # The course's initialize_parameters_deep, as its notebook writes it.
    layer_dims = [30, 20, 7, 5, 1]
    np.random.seed(1)
    course = [np.random.randn(layer_dims[l], layer_dims[l - 1]) / np.sqrt(layer_dims[l - 1])
              for l in range(1, len(layer_dims))]
    config = Config(layers=(20, 7, 5), init="course_sqrt", rng="legacy", seed=1)
    params = initialize(Network.from_config(config, 30, 1), config)
    for ours, theirs in zip(params.W, course):
        np.testing.assert_array_equal(ours, theirs)


# --- training ----------------------------------------------------------------------------------------------------
def test_same_config_and_seed_give_identical_runs():
    data = toy_dataset(n_features=6, m=40)
    config = Config(layers=(7, 5), init="he_uniform", iterations=30, record_every=10, optimizer="adam",
                    batch_size=16, lr=0.01)
    first, second = list(Training(config, data)), list(Training(config, data))
    assert [s.step for s in first] == [0, 10, 20, 30]
    for a, b in zip(first, second):
        assert a.loss == b.loss
        for key in a.stats:
            np.testing.assert_array_equal(a.stats[key], b.stats[key])
    other = list(Training(config.replace(seed=2), data))
    assert other[0].loss != first[0].loss


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_every_optimizer_lowers_the_cost(optimizer):
    noise = toy_dataset(n_features=4, m=60)
    learnable = Dataset("sign", noise.x_train, (noise.x_train[:1] + noise.x_train[1:2] > 0).astype(np.int64),
                        noise.x_test, noise.y_test, ("-", "+"))
    config = Config(layers=(16,), activation="tanh", init="xavier_normal", optimizer=optimizer,
                    lr=0.01 if optimizer == "adam" else 0.3, iterations=300, record_every=300)
    snaps = list(Training(config, learnable))
    assert snaps[-1].loss < 0.5 * snaps[0].loss
    assert snaps[-1].train_accuracy > 0.9


def test_adam_first_step_matches_its_definition():
    data = toy_dataset()
    config = Config(layers=(3,), optimizer="adam", lr=0.01, iterations=1, record_every=1)
    run = Training(config, data)
    w0 = run.params.W[0].copy()
    cache = forward(run.network, run.params, run.x)
    g = backward(run.network, run.params, cache, targets(run.network, run.y, np.float64)).dW[0]
    list(run)
    # After one step, m_hat = g and v_hat = g^2, so the update is -lr * g / (|g| + eps).
    np.testing.assert_allclose(run.params.W[0], w0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_a_diverging_run_stops_with_its_step_and_reason():
    data = toy_dataset(n_features=4, m=30)
    config = Config(layers=(16, 16, 16), activation="linear", init="normal", init_scale=3.0, lr=50.0,
                    iterations=500, record_every=1)
    run = Training(config, data)
    snaps = list(run)
    assert run.stopped_reason is not None and not run.finished
    assert f"step {run.stopped_step}" in run.stopped_reason
    assert 0 < len(snaps) <= run.stopped_step + 1
    assert all(math.isfinite(s.loss) for s in snaps)


def test_recording_every_step_measures_test_accuracy_on_its_own_cadence_with_unchanged_values():
    """Past TEST_DENSE_UNTIL a run recording every step measures test accuracy every TEST_EVERY steps, and at its
    last step whatever the cadence; each measured value is the one a run recording every TEST_EVERY steps (which
    measures at every snapshot) gives at that step, and the last is the trained weights' own on the test set."""
    data = toy_dataset(n_features=4, m=12)
    iterations = TEST_DENSE_UNTIL + 2 * TEST_EVERY + 3  # the last step is off the cadence
    config = Config(layers=(4,), iterations=iterations, record_every=1)
    run = Training(config, data)
    every_step = list(run)
    measured = {s.step: s.test_accuracy for s in every_step if not math.isnan(s.test_accuracy)}
    assert sorted(measured) == [*range(TEST_DENSE_UNTIL + 1), TEST_DENSE_UNTIL + TEST_EVERY,
                                TEST_DENSE_UNTIL + 2 * TEST_EVERY, iterations]
    sparse = {s.step: s.test_accuracy for s in Training(config.replace(record_every=TEST_EVERY), data)}
    assert all(measured[step] == value for step, value in sparse.items())
    trained = float(np.mean((forward(run.network, run.params, run.x_test).A[-1] > 0.5) == data.y_test))
    assert measured[iterations] == trained
    before_last = every_step[:-1]
    assert latest_test_accuracy(before_last) == measured[TEST_DENSE_UNTIL + 2 * TEST_EVERY]
    assert all(not math.isnan(s.train_accuracy) for s in every_step)


def test_closing_the_stream_stops_early():
    data = toy_dataset()
    stream = iter(Training(Config(layers=(4,), iterations=1000, record_every=1), data))
    steps = [next(stream).step for _ in range(3)]
    stream.close()
    assert steps == [0, 1, 2]
    assert next(stream, None) is None



def test_should_stop_ends_the_run_within_a_second_at_the_step_it_answered_with_a_snapshot_of_it(tmp_path):
    """A server's Stop or time cap must not wait for the next recorded step: with record_every = 100,000 on a run
    whose step takes milliseconds, the run ends within a second of the request, and its file ends at that step."""
    from core.record import record
    from core.run_reader import read_run

    data = toy_dataset(n_features=64, m=256)
    config = Config(layers=(64, 64), iterations=100_000, record_every=100_000)
    asked_at, asked = None, []

    def should_stop(step):
        nonlocal asked_at
        asked.append(step)
        if asked_at is None and time.monotonic() - started > 0.3:
            asked_at = time.monotonic()
        return None if asked_at is None else f"stopped at step {step}"

    run = Training(config, data, should_stop=should_stop)
    started = time.monotonic()
    snapshots = list(record(run, tmp_path / "run.h5"))
    assert asked_at is not None and time.monotonic() - asked_at < 1.0
    stopped = run.stopped_step
    assert asked == list(range(stopped + 1)), "asked before every step, once"
    assert 0 < stopped < config.iterations and not run.finished and not run.diverged
    assert run.stopped_reason == f"stopped at step {stopped}"
    assert [s.step for s in snapshots] == [0, stopped]
    recorded = read_run(tmp_path / "run.h5")
    assert [s.step for s in recorded.snapshots] == [0, stopped] and recorded.stopped_reason == run.stopped_reason
    # the last snapshot describes the weights as they stand: no update was made at the step that stopped
    np.testing.assert_array_equal(recorded.final_params.W[0], run.params.W[0])
    assert snapshots[-1].loss == pytest.approx(cost(run.network, forward(run.network, run.params, run.x), run.y,
                                                    run.params, config.l2), rel=1e-12)

def test_histograms_count_every_value_with_fixed_edges():
    data = toy_dataset(n_features=5, m=50)
    config = Config(layers=(6, 4), activation="tanh", init="xavier_normal", iterations=20, record_every=10, bins=16)
    snaps = list(Training(config, data))
    for s in snaps:
        for h, total in (("z", [6 * 50, 4 * 50, 50]), ("dw", [30, 24, 4])):
            counted = s.stats[f"{h}_hist"].sum(axis=1) + s.stats[f"{h}_outside"].sum(axis=1)
            np.testing.assert_array_equal(counted, total)
        assert s.edges is snaps[0].edges
    np.testing.assert_allclose(snaps[0].edges["a"][0], np.linspace(-1, 1, 17))  # tanh: its own bounds
    # The counts agree with NumPy's own histogram on the same edges, for the values inside them.
    net, params, snap = probe(config, data)
    z = forward(net, params, data.x_train).Z[0]
    reference, _ = np.histogram(z, snap.edges["z"][0])
    np.testing.assert_array_equal(snap.stats["z_hist"][0], reference)


def test_probe_statistics_match_direct_computation():
    data = toy_dataset(n_features=8, m=100)
    config = Config(layers=(10, 10), activation="relu", init="he_normal")
    net, params, snap = probe(config, data)
    cache = forward(net, params, data.x_train)
    grads = backward(net, params, cache, targets(net, data.y_train, np.float64))
    for i in range(net.depth):
        assert snap.stats["z_std"][i] == pytest.approx(cache.Z[i].std(), rel=1e-9)
        assert snap.stats["a_mean"][i] == pytest.approx(cache.A[i + 1].mean(), rel=1e-9)
        assert snap.stats["dz_std"][i] == pytest.approx(grads.dZ[i].std(), rel=1e-9)
        assert snap.stats["dw_norm"][i] == pytest.approx(np.linalg.norm(grads.dW[i]), rel=1e-9)
        assert snap.stats["w_std"][i] == pytest.approx(params.W[i].std(), rel=1e-9)
    assert snap.stats["dead_fraction"][0] == pytest.approx(np.mean(cache.A[1] == 0))
    assert snap.stats["update_ratio"][0] == pytest.approx(
        config.lr * np.linalg.norm(grads.dW[0]) / np.linalg.norm(params.W[0]))


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_each_snapshot_has_its_own_update_ratio_and_the_run_files_key_order(norm):
    """A snapshot's update_ratio is ||W after its step - W before|| / ||W before||, from the weights themselves; the
    statistics arrive in the order a run file stores them."""
    run = Training(Config(layers=(6, 5), activation="tanh", init="xavier_normal", lr=0.3, iterations=3,
                          record_every=1, norm=norm), toy_dataset(m=30))
    weights, ratios = [[w.copy() for w in run.params.W]], []
    for snap in run:  # a snapshot arrives after its step's update
        weights.append([w.copy() for w in run.params.W])
        ratios.append(snap.stats["update_ratio"])
        assert tuple(snap.stats) == STORED + (NORM_SCALARS if norm != "none" else ())
    for step in range(3):
        expected = [np.linalg.norm(after - before) / np.linalg.norm(before)
                    for before, after in zip(weights[step], weights[step + 1])]
        np.testing.assert_allclose(ratios[step], expected, rtol=1e-9)
    assert len({r.tobytes() for r in ratios}) == 4  # the last: the step plain GD would take, not an earlier one's


def test_a_network_names_itself_in_one_short_line_at_any_depth():
    assert str(Network((12288, 20, 7, 5, 1), ("relu",) * 3)) == "[12288, 20, 7, 5, 1] relu×3 -> sigmoid"
    assert str(Network((2, 10, 10, 1), ("relu", "tanh"))) == "[2, 10, 10, 1] relu/tanh -> sigmoid"
    deep = Network((784, *(500,) * 99, 10), ("tanh",) * 99)  # 10 outputs: softmax
    assert str(deep) == "[784, 500×99, 10] tanh×99 -> softmax"


# --- limits -------------------------------------------------------------------------------------------------------
def test_the_engine_checks_the_limits_it_is_given_and_never_reads_the_environment(monkeypatch):
    """A server's caps come from its own settings (the CLI's and the dashboard's `Limits.from_env`), passed in: the
    engine does not pick them up from the environment behind its caller's back."""
    from core.config import ConfigError
    from core.limits import Limits

    rng = np.random.default_rng(0)
    data = Dataset(name="toy", x_train=rng.normal(size=(3, 8)), y_train=rng.integers(0, 2, (1, 8)),
                   x_test=rng.normal(size=(3, 2)), y_test=rng.integers(0, 2, (1, 2)), classes=("0", "1"))
    monkeypatch.setenv("INITLAB_MAX_LAYERS", "1")
    monkeypatch.setenv("INITLAB_MAX_WIDTH", "1")
    Training(Config(layers=(4, 4)), data)  # the environment's caps are not the engine's business
    probe(Config(layers=(4, 4)), data)
    with pytest.raises(ConfigError, match="layers"):
        Training(Config(layers=(4, 4)), data, Limits(max_layers=2))
