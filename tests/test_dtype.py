"""A float32 run stays float32 end to end.

NumPy 2 promotes a float32 array combined with a NumPy float64 scalar (``np.sqrt(n)`` returns one) to float64,
and one such scalar makes every later product cast the whole input. These tests watch every array a float32 run
touches: the parameters, each forward cache and backward gradient, the optimiser's state, and every array the
statistics read, through the engine's own entry points.
"""

import numpy as np
import pytest

import core.network
import core.stats
import core.train
from core.config import Config
from core.data import Dataset
from core.train import Training, probe

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear", "elu", "selu", "gelu_tanh", "gelu_erf", "swish")


def dataset(n_classes: int) -> Dataset:
    rng = np.random.default_rng(3)
    return Dataset(name="toy", x_train=rng.normal(size=(6, 40)), y_train=rng.integers(0, n_classes, (1, 40)),
                   x_test=rng.normal(size=(6, 9)), y_test=rng.integers(0, n_classes, (1, 9)),
                   classes=tuple(map(str, range(n_classes))))


class Watch:
    """Wraps the engine's functions and records (where, dtype) of every array they are given or return."""

    def __init__(self, monkeypatch):
        self.seen: list[tuple[str, np.dtype]] = []
        self.optimizers: list[core.train.Optimizer] = []
        for module, name in ((core.train, "forward"), (core.train, "backward"), (core.stats, "summarize"),
                             (core.stats, "moments"), (core.train, "layer_stats"), (core.train, "choose_binning")):
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name)))
        watch = self

        class WatchedOptimizer(core.train.Optimizer):
            def __init__(self, config, params):
                super().__init__(config, params)
                watch.optimizers.append(self)

        monkeypatch.setattr(core.train, "Optimizer", WatchedOptimizer)

    def _wrap(self, name, function):
        def watched(*args, **kwargs):
            self._note(f"{name} argument", (*args, *kwargs.values()))
            result = function(*args, **kwargs)
            if name != "layer_stats":  # its outputs are statistics (float64 summaries), not inputs
                self._note(f"{name} result", result)
            return result

        return watched

    def _note(self, where: str, value) -> None:
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "f":
                self.seen.append((where, value.dtype))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._note(where, item)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            for key, item in vars(value).items():
                if key not in ("lo", "hi", "table"):  # Binning's float64 histogram ranges, not data
                    self._note(f"{where}.{key}", item)

    def floats(self) -> set[str]:
        return {str(dtype) for _, dtype in self.seen}


def assert_all_float32(arrays, what: str) -> None:
    wrong = [(i, a.dtype) for i, a in enumerate(arrays) if a.dtype != np.float32]
    assert not wrong, f"{what}: not float32 at {wrong}"


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("n_classes", [2, 3])  # sigmoid and softmax output
def test_float32_training_touches_only_float32_arrays(monkeypatch, optimizer, n_classes):
    watch = Watch(monkeypatch)
    layers = (5, 4)
    config = Config(layers=layers, init="he_normal",
                    optimizer=optimizer, l2=0.1, iterations=6, record_every=2, batch_size=16, dtype="float32")
    for act in ACTIVATIONS:
        watch.seen.clear()
        run = Training(config.replace(activation=act), dataset(n_classes))
        snapshots = list(run)
        assert run.finished and len(snapshots) == 4
        assert watch.floats() == {"float32"}, [s for s in watch.seen if s[1] != np.float32][:5]
        assert_all_float32([*run.params.W, *run.params.b], f"{act} parameters")
        state = [a for opt in watch.optimizers for group in (opt.velocity or []) + (opt.square or [])
                 for a in group]
        assert_all_float32(state, f"{act} optimiser state")
    assert len(watch.seen) > 50  # the wrappers did see the run


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_float32_normalised_residual_training_touches_only_float32_arrays(monkeypatch, norm):
    watch = Watch(monkeypatch)
    config = Config(layers=(5, 5, 5), activation="tanh", norm=norm, residual=True, residual_scale=0.5,
                    optimizer="adam", l2=0.1, iterations=6, record_every=2, batch_size=16, dtype="float32")
    run = Training(config, dataset(3))
    snapshots = list(run)
    assert run.finished and len(snapshots) == 4
    assert watch.floats() == {"float32"}, [s for s in watch.seen if s[1] != np.float32][:5]
    p = run.params
    assert_all_float32([*p.W, *p.b, *p.gamma, *p.beta, *p.running_mean, *p.running_var], "parameters")


def test_float32_probe_and_lsuv_stay_float32(monkeypatch):
    watch = Watch(monkeypatch)
    net, params, snapshot = probe(Config(layers=(7, 7), activation="selu", init="lsuv", dtype="float32"),
                                  dataset(2))
    assert watch.floats() == {"float32"}
    assert_all_float32([*params.W, *params.b], "parameters")
    assert np.isfinite(snapshot.stats["z_std"]).all()


def test_the_watch_catches_a_float64_scalar(monkeypatch):
    """The test above can fail: one NumPy float64 scalar in the forward pass is reported."""
    watch = Watch(monkeypatch)
    forward = core.network.forward

    def promoting_forward(net, params, x, **options):
        return forward(net, params, x * np.sqrt(np.float64(1.0)), **options)

    monkeypatch.setattr(core.train, "forward", watch._wrap("forward", promoting_forward))
    list(Training(Config(layers=(3,), iterations=1, dtype="float32"), dataset(2)))
    assert "float64" in watch.floats()


def test_float32_and_float64_runs_agree():
    data = dataset(2)
    config = Config(layers=(5, 4), activation="tanh", init="xavier_normal", iterations=20, record_every=20)
    single = list(Training(config.replace(dtype="float32"), data))[-1]
    double = list(Training(config, data))[-1]
    assert single.loss == pytest.approx(double.loss, rel=1e-4)
    np.testing.assert_allclose(single.stats["z_std"], double.stats["z_std"], rtol=1e-4)
