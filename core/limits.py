"""Caps that keep one run from taking a shared machine down: checked before anything is allocated.

Defaults suit a classroom server; each can be changed by an environment variable (read when an entry point, the CLI
or the server, calls `Limits.from_env`: the engine itself takes its limits as an argument) or, in the CLI, by a flag.
What only a server enforces across runs (trainings at once, seconds per training) is app/serving/limits.py.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .config import Config, ConfigError
from .memory import estimate_bytes, recorded_bytes, snapshot_count, snapshots_bytes
from .network import Network

_ENV = {
    "max_params": "INITLAB_MAX_PARAMS",
    "max_layers": "INITLAB_MAX_LAYERS",
    "max_width": "INITLAB_MAX_WIDTH",
    "max_iterations": "INITLAB_MAX_ITERATIONS",
    "max_memory_mb": "INITLAB_MAX_MEMORY_MB",
    "max_record_mb": "INITLAB_MAX_RECORD_MB",
}


def numbers_from_env(variables: dict[str, str], environ=os.environ) -> dict[str, int]:
    """field -> the whole number (at least 1) its environment variable holds, for the variables that are set.
    Raises ConfigError naming a variable that holds anything else."""
    values = {}
    for name, variable in variables.items():
        raw = environ.get(variable)
        if raw is None:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise ConfigError(f"{variable}={raw!r} must be a whole number") from None
        if values[name] < 1:
            raise ConfigError(f"{variable} must be at least 1, got {raw}")
    return values


@dataclass(frozen=True)
class Limits:
    max_params: int = 20_000_000
    max_layers: int = 100
    max_width: int = 4096
    max_iterations: int = 100_000
    max_memory_mb: int = 2048
    # The snapshots one run records, as a server holds them while its pages show the run (core/memory.py:
    # recorded_bytes): 100,000 steps of a one-layer network recording every step took a server 1 GB.
    max_record_mb: int = 64

    @classmethod
    def from_env(cls, environ=os.environ) -> "Limits":
        return cls(**numbers_from_env(_ENV, environ))


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
    cap = limits.max_record_mb * 2**20
    recorded = recorded_bytes(net, config)
    if recorded > cap:
        raise ConfigError(
            f"recording every {config.record_every:,} of {config.iterations:,} steps keeps {snapshot_count(config):,} "
            f"snapshots of statistics, about {recorded / 2**20:,.0f} MB, over the cap of {limits.max_record_mb:,} MB "
            f"(set by {_ENV['max_record_mb']}); {_fewer_snapshots(net, config, cap)}"
        )


def _fewer_snapshots(net: Network, config: Config, cap: int) -> str:
    """What to change so that a run's snapshots fit in ``cap`` bytes: the smallest record_every that does, if any."""
    most = cap // snapshots_bytes(1, net.depth, config.bins, config.norm)  # snapshots that fit, step 0 and the last
    if most < 2:
        return "use fewer layers or histogram bins"
    every = max(config.record_every, math.ceil(config.iterations / (most - 1)))
    while recorded_bytes(net, config.replace(record_every=every)) > cap:
        every += 1
    return f"record every {every:,} steps or more (the charts draw at most 240 points a curve)"


def network_within_limits(config: Config, dataset, limits: Limits) -> Network:
    """The network a config builds on a dataset; ConfigError naming the cap if it is over one. Allocates nothing.
    The memory estimate is one of the caps: a run that passes fits in a dashboard's worker (app/serving/cluster.py)."""
    net = Network.from_config(config, dataset.n_features, dataset.output_size)
    check_limits(net, config, dataset.x_train.shape[1], dataset.x_test.shape[1], limits)
    return net
