"""The run cache: hits replay the engine's own snapshots, writes are atomic across processes, LRU eviction by size,
damaged entries are recomputed, and runs stopped early are never cached."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.cache import RunCache, cache_key
from core.config import Config
from core.datasets import load_dataset
from core.record import read_run
from core.train import Training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


def small(seed=1, iterations=40):
    return Config(dataset="circles", layers=(6, 4), seed=seed, iterations=iterations, record_every=10)


class CountingFactory:
    def __init__(self):
        self.calls = 0

    def __call__(self, config, dataset):
        self.calls += 1
        return Training(config, dataset)


def test_a_hit_replays_the_engines_snapshots_without_training(tmp_path, circles):
    cache, factory = RunCache(tmp_path), CountingFactory()
    first = list(cache.compute(small(), circles, factory))
    again = list(cache.compute(small(), circles, factory))
    reference = list(Training(small(), circles))  # computed here, outside the cache
    assert factory.calls == 1
    assert [s.step for s in again] == [s.step for s in reference] == [0, 10, 20, 30, 40]
    for got, want in zip(again, reference):
        assert got.loss == want.loss
        np.testing.assert_array_equal(got.stats["a_hist"], want.stats["a_hist"])
    assert [s.loss for s in first] == [s.loss for s in reference]
    assert cache.get(small(), circles) == tmp_path / f"{cache_key(small(), circles.fingerprint())}.h5"


def test_the_key_changes_with_config_and_data(circles):
    moons = load_dataset("moons")
    keys = {cache_key(small(), circles.fingerprint()), cache_key(small(seed=2), circles.fingerprint()),
            cache_key(small(), moons.fingerprint()), cache_key(small(iterations=50), circles.fingerprint())}
    assert len(keys) == 4
    assert cache_key(small(), circles.fingerprint()) == cache_key(small(), load_dataset("circles").fingerprint())


def test_a_run_stopped_early_is_not_cached_and_leaves_no_file(tmp_path, circles):
    cache = RunCache(tmp_path)
    stream = cache.record(Training(small(iterations=200), circles))
    next(stream), next(stream)
    stream.close()
    assert cache.get(small(iterations=200), circles) is None
    assert list(tmp_path.rglob("*.h5*")) == []


def test_a_stopped_run_can_be_kept_outside_the_cache(tmp_path, circles):
    cache = RunCache(tmp_path / "cache")
    kept = tmp_path / "stopped.h5"
    stream = cache.record(Training(small(iterations=200), circles), stopped_path=kept)
    next(stream), next(stream)
    stream.close()
    run = read_run(kept)
    assert run.stopped_reason == "stopped by the user at step 10" and len(run.snapshots) == 2
    assert cache.entries() == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "incomplete"])
def test_a_damaged_entry_is_ignored_and_recomputed(tmp_path, circles, damage):
    cache, factory = RunCache(tmp_path), CountingFactory()
    list(cache.compute(small(), circles, factory))
    path = cache.get(small(), circles)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a run" * 100)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # a .partial left by a killed writer, copied into place by hand
        stream = cache.record(Training(small(), circles))
        next(stream)
        partial = next(tmp_path.glob(".tmp/*.partial"))
        path.write_bytes(partial.read_bytes())
        stream.close()
    assert cache.get(small(), circles) is None
    assert not path.exists()
    snapshots = list(cache.compute(small(), circles, factory))
    assert factory.calls == 2 and len(snapshots) == 5
    assert read_run(cache.get(small(), circles)).complete


def test_eviction_removes_the_least_recently_used_first(tmp_path, circles):
    cache = RunCache(tmp_path)
    for seed in (1, 2, 3):
        list(cache.compute(small(seed), circles))
    paths = {seed: cache.path(small(seed), circles) for seed in (1, 2, 3)}
    now = time.time()
    for age, seed in enumerate((3, 2, 1)):  # written in order 1, 2, 3, a minute apart
        os.utime(paths[seed], (now - 60 * (age + 1), now - 60 * (age + 1)))
    assert cache.get(small(1), circles) is not None  # 1 is now the most recently used
    assert cache.entries() == [paths[2], paths[3], paths[1]]
    list(cache.compute(small(4), circles))  # the default cap holds everything
    paths[4] = cache.path(small(4), circles)
    sizes = {seed: p.stat().st_size for seed, p in paths.items()}
    cache.max_bytes = sum(sizes.values()) - sizes[2]  # exactly one entry too many: the LRU one goes
    assert cache.evict() == [paths[2]]
    cache.max_bytes -= 1  # one byte too many: the next least recently used goes
    assert cache.evict() == [paths[3]]
    assert cache.entries() == [paths[1], paths[4]]


def test_an_entry_larger_than_the_cap_is_kept_until_the_next_write(tmp_path, circles):
    cache = RunCache(tmp_path, max_bytes=1)
    list(cache.compute(small(1), circles))
    assert cache.get(small(1), circles) is not None
    list(cache.compute(small(2), circles))
    assert cache.entries() == [cache.path(small(2), circles)]


def test_from_env(tmp_path):
    assert RunCache.from_env({}) is None
    cache = RunCache.from_env({"INITLAB_CACHE_DIR": str(tmp_path / "c"), "INITLAB_CACHE_MAX_MB": "3"})
    assert cache.directory == tmp_path / "c" and cache.max_bytes == 3 * 2**20 and (tmp_path / "c").is_dir()
    with pytest.raises(ValueError, match="INITLAB_CACHE_MAX_MB"):
        RunCache.from_env({"INITLAB_CACHE_DIR": str(tmp_path), "INITLAB_CACHE_MAX_MB": "lots"})


RACER = textwrap.dedent("""
    import sys
    from core.cache import RunCache
    from core.config import Config
    from core.datasets import load_dataset
    config = Config(dataset="circles", layers=(64, 64, 64), iterations=600, record_every=2)
    for _ in RunCache(sys.argv[1]).compute(config, load_dataset("circles")):
        pass
""")


def test_two_processes_racing_on_one_key_never_expose_a_partial_file(tmp_path, circles):
    config = Config(dataset="circles", layers=(64, 64, 64), iterations=600, record_every=2)
    target = RunCache(tmp_path).path(config, circles)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path)], env=env, cwd=ROOT) for _ in range(2)]
    try:
        while any(p.poll() is None for p in racers):
            if target.exists():
                run = read_run(target)  # a half-written file would be incomplete or raise RunFileError
                assert run.complete and run.snapshots[-1].step == 600
            time.sleep(0.005)
    finally:
        for p in racers:
            p.wait(timeout=60)
    assert [p.returncode for p in racers] == [0, 0]
    assert read_run(target).complete
    assert list(tmp_path.glob(".tmp/*")) == []  # both writers cleaned up after their rename
    assert cache_files(tmp_path) == [target.name]


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


# --- the dashboard's run store with the disk cache and the per-process caps --------------------------------------
def test_a_second_server_process_replays_a_run_from_the_shared_cache(tmp_path, circles):
    from app.runs import FINISHED, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = RunStore(tmp_path / "a", cache=cache), RunStore(tmp_path / "b", cache=cache)
    run = first.start(small(), circles, "one", Limits())
    assert first.wait(run.key, 30) and run.status == FINISHED and not run.cached
    replay = second.start(small(), circles, "two", Limits())
    assert replay.cached and replay.status == FINISHED and replay.path == cache.get(small(), circles)
    assert [s.loss for s in replay.snapshots] == [s.loss for s in run.snapshots]


def test_the_store_refuses_runs_over_the_concurrency_cap_and_stops_runs_over_the_time_cap(tmp_path, circles):
    from app.runs import STOPPED, RunStore
    from core.config import ConfigError
    from core.limits import Limits

    store = RunStore(tmp_path, cache=RunCache(tmp_path / "cache"))
    endless = Config(dataset="circles", layers=(32, 32), iterations=100_000, record_every=1)
    run = store.start(endless, circles, "one", Limits(max_training_seconds=1))
    with pytest.raises(ConfigError, match="INITLAB_MAX_CONCURRENT_TRAININGS"):
        store.start(endless.replace(seed=2), circles, "two", Limits(max_concurrent_trainings=1))
    assert store.wait(run.key, 30) and run.status == STOPPED
    assert "INITLAB_MAX_TRAINING_SECONDS" in run.message and run.snapshots[-1].step < 100_000
    assert RunCache(tmp_path / "cache").entries() == []  # a run cut short is not the config's run
    assert read_run(run.path).stopped_reason  # but its file is still there to download


def test_the_new_caps_come_from_the_environment():
    from core.limits import Limits

    limits = Limits.from_env({"INITLAB_MAX_CONCURRENT_TRAININGS": "3", "INITLAB_MAX_TRAINING_SECONDS": "90"})
    assert (limits.max_concurrent_trainings, limits.max_training_seconds) == (3, 90)
