"""Training as a stream of snapshots, and the forward-only probe.

``Training(config, dataset)`` builds the network and its initial parameters; iterating over it runs gradient
descent and yields a `Snapshot` at step 0, every ``record_every`` steps, and at the last step. The snapshot at
step k describes the parameters after k updates (so the last one, at step == iterations, is the trained network,
and its accuracies are the course's final train/test accuracies). Close the iterator to stop early; the
snapshots already yielded stay valid. A cost or weight that turns NaN/inf ends the run with ``stopped_reason``
saying where and why (``diverged`` then). A caller that must stop a run promptly whatever its ``record_every`` (a
server's Stop button, its time cap) passes ``should_stop``: called with the step number before every step, it
returns None to go on or a reason; the run then ends at that step with one last snapshot of it, so that a recording
ends at the step where it stopped, and ``stopped_reason``/``stopped_step`` say so.

Test accuracy is a forward pass over the test set (on the course's data, 50 examples against the 209 a step trains
on: about 12% of a step), so a run recording often measures it on its own cadence: at every snapshot up to step
``TEST_DENSE_UNTIL``, then at the first snapshot ``TEST_EVERY`` or more steps after the last one measured, and always
at the last snapshot (the run's end, or where it stopped). Between, a snapshot's ``test_accuracy`` is NaN (as with no
test split). A run with ``record_every >= TEST_EVERY`` (the default is 100) measures it at every snapshot.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numba
import numpy as np

from .config import Config
from .kernels import COMPILED
from .limits import Limits, check_limits
from .network import (Grads, Network, Params, accuracy, backward, cost, forward, initialize, logit_cost_note,
                      probability_cost, targets)
from .normalization import update_running_stats
from .stats import Binning, Snapshot, choose_binning, fill_update_ratio, layer_stats

Array = np.ndarray
FLOAT64_MAX = float(np.finfo(np.float64).max)
# The kernels below return the squared norm of the update, summed in float64. Summed strictly left to right, that
# sum is one chain of dependent additions, several times slower than the update itself (for the course's W^1 it was
# 6% of a float32 step); "reassoc" lets the compiler keep several partial sums in SIMD lanes. Only the order of
# that sum changes (to ~1e-14 relative): there is no contraction, so every parameter is bit for bit what NumPy's
# arithmetic gives (tests/test_kernels.py checks this against NumPy).
UPDATE_MATH = {"reassoc"}
# NumPy's error model: a division by zero gives inf, as NumPy's does, where Python's (numba's default) checks every
# divisor and raises. That check kept Adam's loop from being vectorised: 3.3 ms per million float32 parameters
# instead of 0.45 (tests/benchmarks/bench_batch_norm.py), with every parameter bit for bit the same.
UPDATE_KERNEL = {**COMPILED, "fastmath": UPDATE_MATH, "error_model": "numpy"}
# Test accuracy's cadence (see the module docstring): at TEST_EVERY = 10 it adds ~1% to a step recorded every step
# (tests/benchmarks/bench_train_step.py), and a chart of a run longer than 2,400 steps is as dense as before: the
# charts draw at most 240 points a curve. Dense only to step 10: to step 100, a 400-step float32 seed run recording
# every step made 140 test-set passes instead of 50, and took 1.11-1.19 times the run recording every 100th step
# rather than 1.03-1.08 (one thread; 1.18-1.19 and 1.13-1.16 at two; bench_cli_vs_pytorch.py measures it through
# the CLI).
TEST_DENSE_UNTIL = 10
TEST_EVERY = 10


@numba.njit(**UPDATE_KERNEL)
def _gd(p, g, neg_lr):  # pragma: no cover - compiled
    """p += g * -lr in place; returns the squared norm of the update. Same arithmetic as NumPy's, one pass."""
    total = 0.0
    for r in range(p.shape[0]):
        for c in range(p.shape[1]):
            d = g[r, c] * neg_lr
            p[r, c] += d
            total += np.float64(d) * np.float64(d)
    return total


@numba.njit(**UPDATE_KERNEL)
def _momentum(p, g, v, beta1, one_minus_beta1, neg_lr):  # pragma: no cover - compiled
    total = 0.0
    for r in range(p.shape[0]):
        for c in range(p.shape[1]):
            v[r, c] = v[r, c] * beta1 + one_minus_beta1 * g[r, c]
            d = v[r, c] * neg_lr
            p[r, c] += d
            total += np.float64(d) * np.float64(d)
    return total


@numba.njit(**UPDATE_KERNEL)
def _adam(p, g, v, s, beta1, one_minus_beta1, beta2, one_minus_beta2, step_scale, s_hat_scale, eps):
    total = 0.0
    for r in range(p.shape[0]):
        for c in range(p.shape[1]):
            gi = g[r, c]
            v[r, c] = v[r, c] * beta1 + one_minus_beta1 * gi
            s[r, c] = s[r, c] * beta2 + one_minus_beta2 * (gi * gi)
            d = (v[r, c] * step_scale) / (np.sqrt(s[r, c] * s_hat_scale) + eps)
            p[r, c] += d
            total += np.float64(d) * np.float64(d)
    return total


class Optimizer:
    """Plain gradient descent, momentum, or Adam (as in the course's optimisation exercise), applied in place.

    Momentum is the course's average v = beta1 v + (1 - beta1) g, W -= lr v: PyTorch's SGD(momentum=beta1), whose
    v = beta1 v + g, with the learning rate times 1 - beta1 (not its dampening=beta1, which skips the factor at the
    first step). Adam: v and s = beta2 s + (1 - beta2) g^2, bias-corrected, W -= lr v_hat / (sqrt(s_hat) + eps).

    Each parameter is updated in one compiled pass with no temporaries; the scalars are cast to the parameters'
    dtype first, so a float32 run computes exactly what NumPy's float32 arithmetic with Python floats would.
    """

    def __init__(self, config: Config, params: Params):
        self.kind = config.optimizer
        self.lr = config.lr
        self.beta1 = config.beta1
        self.beta2 = config.beta2
        self.eps = config.eps
        self.t = 0
        learnt = (params.W, params.b, params.gamma, params.beta)  # the last two are empty in a plain network
        self.velocity = [[np.zeros_like(p) for p in group] for group in learnt] \
            if self.kind in ("momentum", "adam") else None
        self.square = [[np.zeros_like(p) for p in group] for group in learnt] \
            if self.kind == "adam" else None

    def step(self, params: Params, grads: Grads) -> list[float]:
        """Update the parameters (gamma and beta too, where the network normalises: l2 is in dW alone); return
        the norm of each layer's weight update ||Delta W||."""
        self.t += 1
        norms = []
        for group, (values, gradients) in enumerate(((params.W, grads.dW), (params.b, grads.db),
                                                     (params.gamma, grads.dgamma), (params.beta, grads.dbeta))):
            for i, (p, g) in enumerate(zip(values, gradients)):
                squared = self._update(group, i, p, g)
                if group == 0:
                    norms.append(math.sqrt(squared))
        return norms

    def _update(self, group: int, i: int, p: Array, g: Array) -> float:
        cast = p.dtype.type
        if self.kind == "gd":
            return _gd(p, g, cast(-self.lr))
        v = self.velocity[group][i]
        b1 = (cast(self.beta1), cast(1.0 - self.beta1))
        if self.kind == "momentum":
            return _momentum(p, g, v, *b1, cast(-self.lr))
        step_scale = -self.lr * (1.0 / (1.0 - self.beta1**self.t))
        s_hat_scale = 1.0 / (1.0 - self.beta2**self.t)
        return _adam(p, g, v, self.square[group][i], *b1, cast(self.beta2), cast(1.0 - self.beta2),
                     cast(step_scale), cast(s_hat_scale), cast(self.eps))


class Training:
    """One run of ``config`` on ``dataset``; iterate to train. See the module docstring."""

    def __init__(self, config: Config, dataset, limits: Limits = Limits(),
                 should_stop: Callable[[int], str | None] | None = None):
        self.config = config
        self.should_stop = should_stop
        self.dataset = dataset
        self.network = Network.from_config(config, dataset.n_features, dataset.output_size)
        check_limits(self.network, config, dataset.x_train.shape[1], dataset.x_test.shape[1], limits)
        dtype = np.dtype(config.dtype)
        self.x = dataset.x_train.astype(dtype, copy=False)
        self.y = dataset.y_train
        self.x_test = dataset.x_test.astype(dtype, copy=False)
        if config.norm == "batch" and self.x.shape[1] < 2:
            raise ValueError("batch norm needs at least 2 training examples (one has no batch variance); "
                             "use norm=layer or more data")
        self.params = initialize(self.network, config, self.x)
        self.stopped_reason: str | None = None
        self.stopped_step: int | None = None
        self.diverged = False  # stopped_reason is a NaN/inf's, not should_stop's
        self.finished = False

    def __iter__(self) -> Iterator[Snapshot]:
        return self._run()

    def _evaluate(self, probabilities_train: Array | None, with_test: bool) -> tuple[float, float]:
        """Train accuracy, and test accuracy if ``with_test`` (else NaN). Batch norm evaluates both with its running
        statistics (as PyTorch's eval()), never the training pass's batch statistics: those make an example's output
        depend on its batch."""
        net = self.network
        if net.norm == "batch":
            probabilities_train = None
        train_p = probabilities_train if probabilities_train is not None else forward(net, self.params, self.x).A[-1]
        test_acc = (accuracy(net, forward(net, self.params, self.x_test).A[-1], self.dataset.y_test)
                    if with_test and self.x_test.shape[1] else math.nan)
        return accuracy(net, train_p, self.y), test_acc

    def _diverged(self, step: int, what: str) -> None:
        self.stopped_step, self.diverged = step, True
        if step == 0 and what == "the cost":  # no update yet: the initial weights alone overflowed
            self.stopped_reason = (
                "diverged at step 0: the cost at initialisation is NaN or infinite, because the forward pass "
                f"overflowed float64 (values past ±{FLOAT64_MAX:.3g} become infinite, and inf − inf is NaN); "
                "use a smaller initial scale or fewer layers"
            )
            return
        self.stopped_reason = (
            f"diverged at step {step}: {what} became NaN or infinite; "
            "try a smaller learning rate or a smaller initial scale"
        )

    def _run(self) -> Iterator[Snapshot]:
        c, net, params = self.config, self.network, self.params
        dtype = np.dtype(c.dtype)
        m = self.x.shape[1]
        full_batch = c.batch_size == 0 or c.batch_size >= m
        y_target = targets(net, self.y, dtype)
        batches = _minibatches(m, c.batch_size, c.seed, 2 if c.norm == "batch" else 1) if not full_batch else None
        optimizer = Optimizer(c, params)
        binning: Binning | None = None
        edges = None
        should_stop = self.should_stop
        last_tested = -TEST_EVERY  # the step of the last snapshot that measured test accuracy
        for step in range(c.iterations + 1):
            stop = should_stop(step) if should_stop is not None and step < c.iterations else None
            if full_batch:
                xb, yb, tb = self.x, self.y, y_target
            else:
                idx = next(batches)
                xb, yb, tb = self.x[:, idx], self.y[:, idx], y_target[:, idx]
            cache = forward(net, params, xb, batch_stats=True)
            loss = cost(net, cache, yb, params, c.l2)
            if not math.isfinite(loss):
                self._diverged(step, "the cost")
                return
            grads = backward(net, params, cache, tb, c.l2)
            record = step % c.record_every == 0 or step == c.iterations or stop is not None
            if record:
                if binning is None:
                    binning = choose_binning(net, cache, grads, c.bins)
                    edges = binning.edges()
                stats = layer_stats(net, params, cache, grads, binning)
                with_test = (step <= TEST_DENSE_UNTIL or step - last_tested >= TEST_EVERY or step == c.iterations
                             or stop is not None)
                if with_test:
                    last_tested = step
                if full_batch:
                    train_acc, test_acc = self._evaluate(cache.A[-1], with_test)
                else:
                    loss = cost(net, forward(net, params, self.x, batch_stats=True), self.y, params, c.l2)
                    train_acc, test_acc = self._evaluate(None, with_test)
            if step < c.iterations and stop is None:
                norms = optimizer.step(params, grads)
                for i, normalized in enumerate(cache.normalized if net.norm == "batch" else ()):
                    update_running_stats(params.running_mean[i], params.running_var[i], normalized)
                if not all(math.isfinite(n) for n in norms):
                    self._diverged(step, "a weight update")
                    return
            else:
                norms = [c.lr * n for n in stats["dw_norm"]]  # no update at the end: the one plain GD would take
            if record:
                fill_update_ratio(stats, norms)
                yield Snapshot(step, loss, train_acc, test_acc, stats, edges)
            if stop is not None:
                self.stopped_reason, self.stopped_step = stop, step
                return
            # Let go of this step's arrays before the next one allocates its own: held through it, they made the
            # peak 1.4-1.55x what the passes need (core/memory.py models what is left).
            del cache, grads, xb, yb, tb
        self.finished = True


def _minibatches(m: int, size: int, seed: int, smallest: int = 1) -> Iterator[Array]:
    """Endless shuffled mini-batches of column indices, reshuffled every epoch; seeded apart from the weights. An
    epoch's last batch is left out when it has fewer than ``smallest`` examples (batch norm needs 2)."""
    rng = np.random.default_rng([seed, 1])
    while True:
        order = rng.permutation(m)
        for start in range(0, m - smallest + 1, size):
            yield order[start:start + size]


def probe(config: Config, dataset, limits: Limits = Limits()) -> tuple[Network, Params, Snapshot]:
    """One forward and one backward pass at initialisation on the training data, no update.

    update_ratio is the one a plain gradient-descent step with the config's learning rate would make.
    """
    run = Training(config.replace(iterations=0, batch_size=0), dataset, limits)
    snapshot = next(iter(run), None)
    if snapshot is None:
        raise FloatingPointError(run.stopped_reason)
    return run.network, run.params, snapshot


def initial_cost_note(run: Training) -> str | None:
    """`logit_cost_note` for the run's weights as they are now (its initial ones, before iterating), on its
    training data: the course's `randn * 10` prints cost inf at step 0 where Init Lab shows a number."""
    net = run.network
    cache = forward(net, run.params, run.x, batch_stats=True)
    return logit_cost_note(probability_cost(net, cache.A[-1], run.y),
                           cost(net, cache, run.y, run.params, run.config.l2))
