"""The server's probes (app/serving/probes.py): computed once in a worker, kept, asked for together, shared by
sessions asking at once, warmed for the presets."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.serving.probes import Probes
from core.config import Config, ConfigError
from core.data import load_dataset
from core.limits import Limits
from core.measures import reference_configs
from core.train import probe

CONFIG = Config(dataset="circles", layers=(16, 8), init="normal", init_scale=1e-3, seed=7)


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


class CountingClient:
    """Wraps the test cluster's client: counts the probe tasks submitted, and can hold them until released."""

    def __init__(self, client):
        self.client, self.submitted, self.hold = client, [], threading.Event()
        self.hold.set()

    def get(self, graph, key, **kwargs):
        self.submitted.append(key)
        assert self.hold.wait(30)
        return self.client.get(graph, key, **kwargs)


def test_a_verdicts_probes_are_computed_together_once_and_kept(dask_client, circles):
    client = CountingClient(dask_client)
    probes = Probes(client)
    configs = [CONFIG, *reference_configs(CONFIG).values()]
    first = probes.get(configs, circles, Limits())
    assert len(client.submitted) == 3 and len(set(client.submitted)) == 3
    assert all(probes.kept(config, circles) for config in configs)
    again = probes.get(configs, circles, Limits())
    assert len(client.submitted) == 3, "kept probes are not computed again"
    assert [a[1] is b[1] for a, b in zip(first, again)] == [True] * 3
    _, _, here = probe(CONFIG, circles)  # the same probe, computed in this process
    for name in ("z_std", "a_std", "dz_std"):
        assert np.array_equal(first[0][1].stats[name], here.stats[name])


def test_sessions_asking_at_once_share_one_computation(dask_client, circles):
    """A class picking the same preset: one task, and every page gets its result (two pages submitting the same key
    through one client had one's release cancel the other's task)."""
    client = CountingClient(dask_client)
    probes = Probes(client)
    config = CONFIG.replace(seed=8)
    client.hold.clear()  # the first asker's submission waits: the others arrive while it computes
    with ThreadPoolExecutor(6) as pool:
        asked = [pool.submit(probes.get, [config], circles, Limits()) for _ in range(6)]
        threading.Timer(0.5, client.hold.set).start()
        results = [future.result(timeout=60)[0] for future in asked]
    assert client.submitted == [client.submitted[0]]
    assert all(r[1] is results[0][1] for r in results)


def test_a_refused_probe_reaches_every_session_waiting_for_it(dask_client, circles):
    probes = Probes(CountingClient(dask_client))
    huge = CONFIG.replace(layers=(4096, 4096, 4096))
    with ThreadPoolExecutor(3) as pool:
        asked = [pool.submit(probes.get, [huge], circles, Limits(max_params=10_000)) for _ in range(3)]
        for future in asked:
            with pytest.raises(ConfigError):
                future.result(timeout=60)
    assert not probes.kept(huge, circles)


def test_the_oldest_probe_goes_first_past_the_limit(dask_client, circles):
    probes = Probes(CountingClient(dask_client), max_probes=2)
    a, b, c = (CONFIG.replace(seed=s) for s in (20, 21, 22))
    probes.get([a], circles, Limits())
    probes.get([b], circles, Limits())
    probes.get([a], circles, Limits())  # used again: b is now the oldest
    probes.get([c], circles, Limits())
    assert [probes.kept(x, circles) for x in (a, b, c)] == [True, False, True]


def test_warming_skips_a_preset_it_cannot_probe_and_goes_on(dask_client, circles):
    from core.data import DatasetError

    probes = Probes(CountingClient(dask_client))
    missing = CONFIG.replace(dataset="catvnoncat")

    def dataset_of(config):
        if config.dataset == "catvnoncat":
            raise DatasetError("no cat files here")
        return circles

    later = CONFIG.replace(seed=30)
    probes.warm([missing, later], dataset_of, Limits())
    assert probes.kept(later, circles) and all(probes.kept(c, circles) for c in reference_configs(later).values())


def test_a_warm_up_ends_quietly_when_the_server_stops(dask_client, circles):
    client = CountingClient(dask_client)
    probes = Probes(client)
    probes.close()
    probes.warm([CONFIG.replace(seed=40)], lambda config: circles, Limits())
    assert client.submitted == []
