"""Batch norm, layer norm and residual blocks against independent references: finite differences of the cost, and
PyTorch's BatchNorm1d / LayerNorm / a residual stack written with torch.nn (forward, backward, running statistics,
and Adam steps)."""

import numpy as np
import pytest

from core.config import Config
from core.data import Dataset
from core.network import Network, backward, cost, forward, initialize, targets
from core.train import Training

COMBINATIONS = [
    dict(norm="batch"),
    dict(norm="layer"),
    dict(residual=True),
    dict(residual=True, residual_scale=0.5, norm="batch"),
    dict(residual=True, norm="layer"),
]
ZERO_INIT = [dict(residual=True, zero_init_residual=True), dict(residual=True, norm="batch", zero_init_residual=True)]


def toy_dataset(n_features=4, m=9, n_classes=3, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(name="toy", x_train=rng.normal(size=(n_features, m)), y_train=rng.integers(0, n_classes, (1, m)),
                   x_test=rng.normal(size=(n_features, 6)), y_test=rng.integers(0, n_classes, (1, 6)),
                   classes=tuple(str(k) for k in range(n_classes)))


def build(config: Config, data: Dataset, perturb: bool = True):
    """The network and parameters of ``config``, with b, gamma and beta moved off 0, 1 and 0 (unless
    zero-initialised, whose zeros are the point), so that their gradients are tested where they matter, and so
    that no relu sits at its kink (an example whose layer-1 units are all negative gives Z = b exactly)."""
    net = Network.from_config(config, data.n_features, data.output_size)
    params = initialize(net, config, data.x_train)
    rng = np.random.default_rng(1)
    if perturb:
        for b in params.b:
            b[...] = rng.uniform(-0.3, 0.3, b.shape)
        for gamma, beta in zip(params.gamma, params.beta):
            gamma[...] = rng.uniform(0.5, 1.5, gamma.shape)
            beta[...] = rng.uniform(-0.5, 0.5, beta.shape)
    return net, params


def finite_difference_error(net, params, x, y, h=1e-6) -> float:
    """Largest difference between backward's gradients of W, b, gamma, beta and central differences of the
    training cost, relative to the largest gradient of each array (at least 1e-3: db under batch norm is 0)."""
    grads = backward(net, params, forward(net, params, x, batch_stats=True), targets(net, y, x.dtype))
    worst = 0.0
    for values, analytic in ((params.W, grads.dW), (params.b, grads.db), (params.gamma, grads.dgamma),
                             (params.beta, grads.dbeta)):
        for p, g in zip(values, analytic):
            numeric = np.zeros_like(p)
            for index in np.ndindex(p.shape):
                kept = p[index]
                p[index] = kept + h
                up = cost(net, forward(net, params, x, batch_stats=True), y)
                p[index] = kept - h
                down = cost(net, forward(net, params, x, batch_stats=True), y)
                p[index] = kept
                numeric[index] = (up - down) / (2 * h)
            worst = max(worst, float(np.max(np.abs(numeric - g)) / max(np.max(np.abs(numeric)), 1e-3)))
    return worst


def name_of(changes: dict) -> str:
    return "+".join(f"{k}={v}" for k, v in changes.items())


# Zero-init with relu is refused by Config (relu'(0) = 0 leaves a zeroed branch without gradient: test_config.py).
GRADIENT_CASES = [(c, a) for c in COMBINATIONS for a in ("relu", "tanh")] + [(c, "tanh") for c in ZERO_INIT]


@pytest.mark.parametrize("changes, activation", GRADIENT_CASES, ids=[f"{name_of(c)}-{a}" for c, a in GRADIENT_CASES])
def test_gradients_match_finite_differences(changes, activation):
    data = toy_dataset()
    config = Config(layers=(5, 5, 5), activation=activation, dtype="float64", **changes)
    net, params = build(config, data, perturb=not changes.get("zero_init_residual"))
    assert len(params.gamma) == (3 if config.norm != "none" else 0)
    assert finite_difference_error(net, params, data.x_train, data.y_train) < 1e-6


def test_zero_init_residual_starts_every_block_as_the_identity():
    data = toy_dataset()
    for changes in ZERO_INIT:
        config = Config(layers=(5, 5, 5), activation="tanh", **changes)
        net, params = build(config, data, perturb=False)
        cache = forward(net, params, data.x_train, batch_stats=True)
        np.testing.assert_array_equal(cache.A[3], cache.A[1])  # blocks 2 and 3 add exactly nothing
        assert not np.array_equal(cache.A[1], 0 * cache.A[1])


# --- PyTorch ------------------------------------------------------------------------------------------------------
def torch_twin(torch, net: Network, params):
    """The same network in torch.nn, holding copies of ``params``: Linear layers, BatchNorm1d / LayerNorm, and
    h + alpha * act(.) for each block; returns its modules and a forward function on (m, n) inputs."""
    nn = torch.nn
    linears = nn.ModuleList()
    for w, b in zip(params.W, params.b):
        layer = nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b[:, 0]))
        linears.append(layer)
    norms = nn.ModuleList()
    for gamma, beta in zip(params.gamma, params.beta):
        n = gamma.shape[0]
        norm = nn.BatchNorm1d(n, dtype=torch.float64) if net.norm == "batch" else nn.LayerNorm(n, dtype=torch.float64)
        with torch.no_grad():
            norm.weight.copy_(torch.from_numpy(gamma[:, 0]))
            norm.bias.copy_(torch.from_numpy(beta[:, 0]))
        norms.append(norm)
    act = {"relu": torch.relu, "tanh": torch.tanh}[net.activations[0]]
    kept = []  # the activations' inputs, with their gradients retained

    def run(x):
        kept.clear()
        h = x
        for i in range(net.depth - 1):
            z = linears[i](h)
            if norms:
                z = norms[i](z)
            if z.requires_grad:
                z.retain_grad()
            kept.append(z)
            h = h + net.residual_scale * act(z) if net.is_block(i) else act(z)
        return linears[-1](h)

    return linears, norms, kept, run


def close(ours, theirs, tol=1e-12) -> bool:
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    ours = ours.reshape(theirs.shape)
    return float(np.max(np.abs(ours - theirs))) <= tol * max(1.0, float(np.max(np.abs(theirs))))


TORCH_CASES = [dict(norm="batch"), dict(norm="layer"), dict(residual=True, residual_scale=0.7),
               dict(residual=True, norm="batch")]


@pytest.mark.parametrize("changes", TORCH_CASES, ids=name_of)
def test_one_pass_agrees_with_pytorch(changes):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for this comparison")
    data = toy_dataset()
    config = Config(layers=(6, 6, 6), activation="tanh", **changes)
    net, params = build(config, data)
    linears, norms, kept, run = torch_twin(torch, net, params)
    x = torch.from_numpy(data.x_train.T.copy())
    logits = run(x)
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.y_train[0].copy())).backward()
    cache = forward(net, params, data.x_train, batch_stats=True)
    grads = backward(net, params, cache, targets(net, data.y_train, np.float64))
    m = data.x_train.shape[1]
    assert close(cache.Z[-1].T, logits)
    for i, z in enumerate(kept):
        assert close(cache.Z[i].T, z) and close(grads.dZ[i].T / m, z.grad)
    for i, layer in enumerate(linears):
        assert close(grads.dW[i], layer.weight.grad) and close(grads.db[i][:, 0], layer.bias.grad)
    for i, norm in enumerate(norms):
        assert close(grads.dgamma[i][:, 0], norm.weight.grad) and close(grads.dbeta[i][:, 0], norm.bias.grad)


@pytest.mark.parametrize("changes", [dict(norm="batch"), dict(residual=True, norm="layer", l2=0.3)],
                         ids=["batch", "residual+layer+l2"])
def test_adam_steps_and_evaluation_agree_with_pytorch(changes):
    """Training (full batch, Adam, l2 on the weights only) moves W, b, gamma, beta and the running statistics as
    PyTorch does; evaluation, test accuracy included, uses the running statistics as model.eval() does."""
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for this comparison")
    data = toy_dataset()
    config = Config(layers=(6, 6, 6), activation="relu", optimizer="adam", lr=0.01, iterations=4, record_every=4,
                    **changes)
    run = Training(config, data)
    net = run.network
    linears, norms, _, forward_torch = torch_twin(torch, net, run.params.copy())
    m = data.x_train.shape[1]
    if net.norm == "batch":  # the batch mean removes these biases: the engine's gradient for them is exactly 0,
        for layer in linears[:-1]:  # PyTorch's rounding noise, which Adam would divide by its own size
            layer.bias.requires_grad_(False)
    weights = [layer.weight for layer in linears]
    others = [layer.bias for layer in linears if layer.bias.requires_grad] + [p for norm in norms for p in norm.parameters()]
    optimizer = torch.optim.Adam([{"params": weights, "weight_decay": config.l2 / m},
                                  {"params": others, "weight_decay": 0.0}], lr=config.lr, eps=config.eps)
    x, y = torch.from_numpy(data.x_train.T.copy()), torch.from_numpy(data.y_train[0].copy())
    for _ in range(config.iterations):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(forward_torch(x), y).backward()
        optimizer.step()
    snapshots = list(run)
    params = run.params
    for i, layer in enumerate(linears):
        assert close(params.W[i], layer.weight, 1e-11)
        assert close(params.b[i][:, 0], layer.bias, 1e-11)
    for i, norm in enumerate(norms):
        assert close(params.gamma[i][:, 0], norm.weight, 1e-11) and close(params.beta[i][:, 0], norm.bias, 1e-11)
        if net.norm == "batch":
            assert close(params.running_mean[i][:, 0], norm.running_mean)
            assert close(params.running_var[i][:, 0], norm.running_var)
    for module in (*linears, *norms):
        module.eval()
    with torch.no_grad():
        expected = torch.softmax(forward_torch(torch.from_numpy(data.x_test.T.copy())), dim=1)
    assert close(forward(net, params, data.x_test).A[-1].T, expected, 1e-11)
    test_accuracy = float(np.mean(expected.numpy().argmax(axis=1) == data.y_test[0]))
    assert snapshots[-1].test_accuracy == test_accuracy


def test_batch_norm_evaluates_with_running_statistics_not_the_batchs():
    data = toy_dataset()
    config = Config(layers=(6, 6), norm="batch", optimizer="adam", lr=0.01, iterations=3)
    run = Training(config, data)
    list(run)
    net, params = run.network, run.params
    evaluated = forward(net, params, data.x_test).A[-1]
    # One test example alone gives the same output as beside the others: no batch statistics are involved.
    np.testing.assert_allclose(forward(net, params, data.x_test[:, :1]).A[-1][:, 0], evaluated[:, 0], rtol=1e-12)
    assert not np.allclose(forward(net, params, data.x_test, batch_stats=True).A[-1], evaluated)


def test_a_last_minibatch_of_one_example_is_left_out_under_batch_norm():
    data = toy_dataset(m=9)  # batches of 4: 4, 4, 1
    snapshots = list(Training(Config(layers=(5, 5), norm="batch", batch_size=4, iterations=6), data))
    assert all(np.isfinite(s.loss) for s in snapshots)
    with pytest.raises(ValueError, match="at least 2 training examples"):
        Training(Config(layers=(5, 5), norm="batch"), toy_dataset(m=1))


def test_a_probe_reports_the_pre_normalisation_z_gamma_beta_and_a_blocks_own_saturation():
    """Statistics against NumPy on the network rebuilt by hand: layer 1's pre-normalisation Z = W X + b, gamma and
    beta as drawn, and the saturation of a residual block counted in tanh(Z), not in the sum it adds to."""
    from core.train import probe

    data = toy_dataset(m=40)
    config = Config(layers=(6, 6, 6), activation="tanh", norm="batch", residual=True, init="normal", init_scale=3.0)
    net, params, snapshot = probe(config, data)
    stats = snapshot.stats
    x = data.x_train
    z_pre = params.W[0] @ x + params.b[0]
    assert stats["z_pre_std"][0] == pytest.approx(z_pre.std(), rel=1e-12)
    assert stats["z_pre_mean"][0] == pytest.approx(z_pre.mean(), abs=1e-12)
    assert list(stats["gamma_mean"][:3]) == [1.0] * 3 and list(stats["beta_std"][:3]) == [0.0] * 3
    assert np.isnan(stats["gamma_mean"][3])  # the output layer is not normalised
    assert np.all(stats["dgamma_norm"][:3] > 0)
    z1 = (z_pre - z_pre.mean(axis=1, keepdims=True)) / np.sqrt(z_pre.var(axis=1, keepdims=True) + 1e-5)
    a1 = np.tanh(z1)
    z2_pre = params.W[1] @ a1 + params.b[1]
    z2 = (z2_pre - z2_pre.mean(axis=1, keepdims=True)) / np.sqrt(z2_pre.var(axis=1, keepdims=True) + 1e-5)
    assert stats["saturated_fraction"][1] == np.mean(np.abs(np.tanh(z2)) > 0.99)
    assert stats["a_std"][1] == pytest.approx((a1 + np.tanh(z2)).std(), rel=1e-12)  # A is the block's output
