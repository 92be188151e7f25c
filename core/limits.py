"""Caps that keep one run from taking a shared machine down: checked before anything is allocated.

Defaults suit a classroom server; each can be changed by an environment variable (read when `Limits.from_env`
is called, by the CLI and the dashboard: the engine itself only checks the limits it is given) or, in the CLI, by a
flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np

from .config import Config, ConfigError
from .network import Network

_ENV = {
    "max_params": "INITLAB_MAX_PARAMS",
    "max_layers": "INITLAB_MAX_LAYERS",
    "max_width": "INITLAB_MAX_WIDTH",
    "max_iterations": "INITLAB_MAX_ITERATIONS",
    "max_memory_mb": "INITLAB_MAX_MEMORY_MB",
    "max_concurrent_trainings": "INITLAB_MAX_CONCURRENT_TRAININGS",
    "max_training_seconds": "INITLAB_MAX_TRAINING_SECONDS",
}


@dataclass(frozen=True)
class Limits:
    max_params: int = 20_000_000
    max_layers: int = 100
    max_width: int = 4096
    max_iterations: int = 100_000
    max_memory_mb: int = 2048
    # per server process, enforced where the dashboard starts trainings (app/runs.py), not by the engine
    max_concurrent_trainings: int = 8  # distinct runs training or queued at once; more are refused
    max_training_seconds: int = 600  # a run still training after this long is stopped

    @classmethod
    def from_env(cls, environ=os.environ) -> "Limits":
        values = {}
        for f in fields(cls):
            raw = environ.get(_ENV[f.name])
            if raw is None:
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(f"{_ENV[f.name]}={raw!r} must be a whole number") from None
            if values[f.name] < 1:
                raise ConfigError(f"{_ENV[f.name]} must be at least 1, got {raw}")
        return cls(**values)


def estimate_bytes(net: Network, config: Config, m_train: int, m_test: int) -> int:
    """Peak bytes a run needs: parameters with gradients and optimiser state, and Z, A, dZ for a batch.

    The data itself (already loaded) is counted once more for a float32 run, which keeps a cast copy.
    """
    item = np.dtype(config.dtype).itemsize
    copies = {"gd": 2, "momentum": 3, "adam": 4}[config.optimizer]  # W, dW, then velocity / both moments
    params = net.n_params * copies
    batch = config.batch_size or m_train
    units = sum(net.dims[1:])
    passes = 3 * units * batch  # Z, A and dZ of every layer
    evaluation = 2 * units * max(m_train if config.batch_size else 0, m_test)
    data = net.dims[0] * (m_train + m_test) if config.dtype == "float32" else 0
    return (params + passes + evaluation + data) * item


def check_limits(net: Network, config: Config, m_train: int, m_test: int, limits: Limits) -> None:
    """Raise ConfigError naming the cap a run would exceed and the variable that sets it, before any work starts."""
    if net.depth > limits.max_layers:
        raise ConfigError(
            f"{net.depth:,} layers ({net.depth - 1:,} hidden and the output) is over the cap of {limits.max_layers:,} "
            f"layers (set by {_ENV['max_layers']}); use at most {limits.max_layers - 1:,} hidden layers"
        )
    widest = max(net.dims[1:])
    if widest > limits.max_width:
        raise ConfigError(f"a layer of {widest:,} units is over the cap of {limits.max_width:,} "
                          f"(set by {_ENV['max_width']}); use narrower layers")
    if net.n_params > limits.max_params:
        raise ConfigError(
            f"the network has {net.n_params:,} parameters, over the cap of {limits.max_params:,} "
            f"(set by {_ENV['max_params']}); use fewer or narrower layers"
        )
    if config.iterations > limits.max_iterations:
        raise ConfigError(
            f"{config.iterations:,} iterations is over the cap of {limits.max_iterations:,} "
            f"(set by {_ENV['max_iterations']}); use fewer iterations"
        )
    need = estimate_bytes(net, config, m_train, m_test)
    if need > limits.max_memory_mb * 2**20:
        raise ConfigError(
            f"this run needs about {need / 2**20:,.0f} MB, over the cap of {limits.max_memory_mb:,} MB; "
            "use a smaller network or batch, or raise the cap (INITLAB_MAX_MEMORY_MB / --max-memory-mb)"
        )
