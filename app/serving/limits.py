"""Caps one server process enforces across the runs of every session, beside each run's own (core.limits.Limits,
which the engine checks): how many trainings compute or wait at once, how long one may train, and how many pages'
live views redraw at their own pace. The run store (store.py) and the pace (pace.py) enforce them;
`ServerLimits.from_env` reads them, as `Limits.from_env` reads the engine's."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.limits import numbers_from_env

ENV = {
    "max_concurrent_trainings": "INITLAB_MAX_CONCURRENT_TRAININGS",
    "max_training_seconds": "INITLAB_MAX_TRAINING_SECONDS",
    "pages_at_full_pace": "INITLAB_PAGES_AT_FULL_PACE",
}


@dataclass(frozen=True)
class ServerLimits:
    max_concurrent_trainings: int = 8  # distinct runs training or queued at once; more are refused
    max_training_seconds: float = 600  # a run still training after this long is stopped
    pages_at_full_pace: int = 10  # open pages whose live views redraw at their own pace; more slow them (pace.py)

    @classmethod
    def from_env(cls, environ=os.environ) -> "ServerLimits":
        """Raises ConfigError naming a variable that does not hold a whole number of at least 1."""
        return cls(**numbers_from_env(ENV, environ))
