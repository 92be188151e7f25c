"""Probes: what the pages show of a config at initialisation (`compute.probe_run`: its network, its snapshot at step
0, which layers start as copies of one unit, the note on the course's step-0 cost), computed by the cluster and
kept by this server process (no Streamlit here).

Every page asks for a few: its config's and the two its verdict measures it against (Xavier's and He's on the same
network), and a class asks for the same ones. So a probe is computed once and kept (the last `MAX_PROBES` used);
a page asks for all it lacks at once and waits for them together, not one after another; sessions asking at once
share one computation (in this process, and Dask's one task per key across replicas); and a server warms its
presets' probes at start (server.py), so the first student to pick one finds it ready (the first probe of a new
worker loads its data: a second, which a class of 30 waited for together).

A kept probe is shared by every page that asks: no page changes one (they are read, drawn, and judged).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future
from typing import Iterable

from app.serving import compute
from app.serving.runs import failure_message
from core.config import Config, ConfigError
from core.data import DatasetError
from core.limits import Limits, network_within_limits
from core.measures import reference_configs
from core.sweep import cell_key as run_key
from core.tasks import submit

MAX_PROBES = 256  # about 60 KB each for the presets' networks: a few MB
PROBE_PRIORITY = 10**6  # a page waits for its probe: before every run
PROBE_SECONDS = 300  # a page gives up waiting for a free worker after this long, with a message

log = logging.getLogger(__name__)


class Probes:
    """The probes of ``client``'s cluster, kept here; ``data_dir``: the data folder the workers load named datasets
    from (None: send the arrays); ``worker_mb``: what one worker may use, for messages, if this server knows."""

    def __init__(self, client, data_dir=None, worker_mb: int | None = None, max_probes: int = MAX_PROBES):
        self.client, self.data_dir, self.worker_mb, self.max_probes = client, data_dir, worker_mb, max_probes
        self._kept: OrderedDict[str, tuple] = OrderedDict()
        self._pending: dict[str, Future] = {}  # key -> the probe another call of this process is computing
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def close(self) -> None:
        """The server is stopping: a warm-up in progress ends (its probes' tasks are cancelled with the client)."""
        self._closed.set()

    def kept(self, config: Config, dataset) -> bool:
        """Whether the probe of this config is here already (a page then waits for nothing)."""
        with self._lock:
            return self._key(config, dataset) in self._kept

    def get(self, configs: Iterable[Config], dataset, limits: Limits) -> list[tuple]:
        """The probe of each config, in order; those not kept are computed in workers at once, before every run
        waiting for one (or awaited, where another page of this server asked first). ConfigError if one is over a
        cap, or no worker became free in PROBE_SECONDS, or its worker died; the engine's own errors (a config it
        refuses, a divergence at step 0) as in-process."""
        configs = list(configs)
        keys = [self._key(config, dataset) for config in configs]
        mine: dict[str, Future] = {}  # the probes this call computes, for whoever else asks meanwhile
        with self._lock:
            found = {key: self._kept[key] for key in keys if key in self._kept}
            for key in found:
                self._kept.move_to_end(key)
            others = {key: self._pending[key] for key in keys if key not in found and key in self._pending}
            for key, config in zip(keys, configs):
                if key not in found and key not in others and key not in mine:
                    mine[key] = self._pending[key] = Future()
        try:
            found.update(self._compute({key: configs[keys.index(key)] for key in mine}, dataset, limits))
        except BaseException as error:
            for future in mine.values():
                future.set_exception(error)
            raise
        finally:
            with self._lock:
                for key in mine:
                    del self._pending[key]
                    if key in found:
                        self._kept[key] = found[key]
                while len(self._kept) > self.max_probes:
                    self._kept.popitem(last=False)
        for key, future in mine.items():
            future.set_result(found[key])
        for key, future in others.items():
            found[key] = future.result(timeout=PROBE_SECONDS)
        return [found[key] for key in keys]

    def _compute(self, configs: dict[str, Config], dataset, limits: Limits) -> dict[str, tuple]:
        for config in configs.values():
            network_within_limits(config, dataset, limits)
        futures = {key: submit(self.client, key, PROBE_PRIORITY, compute.probe_run, config,
                               compute.source_of(config, dataset, self.data_dir), limits)
                   for key, config in configs.items()}
        try:
            return {key: self._result(future) for key, future in futures.items()}
        finally:
            for future in futures.values():
                future.release()

    def warm(self, configs: Iterable[Config], dataset_of, limits: Limits) -> None:
        """Compute, in order, the probes every page of these configs asks for (their own and their verdicts'
        references); ``dataset_of(config)`` gives a config's dataset (DatasetError: the config is left out, as is
        one over a cap or diverging at step 0: its page says why)."""
        for config in configs:
            if self._closed.is_set():
                return
            try:
                self.get([config, *reference_configs(config).values()], dataset_of(config), limits)
            except (ConfigError, DatasetError, FloatingPointError) as e:
                log.info("the probes of a %s preset were not computed in advance: %s", config.dataset, e)
            except CancelledError:
                if not self._closed.is_set():
                    raise

    def _result(self, future) -> tuple:
        try:
            return future.result(timeout=PROBE_SECONDS)
        except TimeoutError:
            raise ConfigError(f"every worker of this server has been busy for {PROBE_SECONDS} s: reload the page "
                              "in a minute, when a training has finished") from None
        except Exception as error:
            if type(error).__name__ != "KilledWorker":
                raise
            raise ConfigError(failure_message(error, 0, self.worker_mb)) from None

    @staticmethod
    def _key(config: Config, dataset) -> str:
        return compute.probe_key(run_key(config, dataset.fingerprint()))
