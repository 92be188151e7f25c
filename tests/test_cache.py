"""The run cache: hits replay the engine's own snapshots, writes are atomic across processes, LRU eviction by size,
damaged entries are recomputed, and runs stopped early are never cached."""

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from app.serving.cache import RunCache, cache_key
from app.serving.pace import ACTIVE_SECONDS, Pace
from core.config import Config
from core.data import load_dataset
from core.record import RunFileError, params_at
from core.run_reader import read_run
from core.train import Training
from tests.conftest import CountingFactory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


def small(seed=1, iterations=40):
    return Config(dataset="circles", layers=(6, 4), seed=seed, iterations=iterations, record_every=10)


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
    from app.serving.cache import RunCache
    from core.config import Config
    from core.data import load_dataset
    from core.train import Training
    config = Config(dataset="circles", layers=(32, 32, 32), iterations=300, record_every=2)

    def training(config, dataset):
        print("trained", flush=True)
        return Training(config, dataset)

    for _ in RunCache(sys.argv[1]).compute(config, load_dataset("circles"), training):
        pass
""")


def test_two_processes_writing_one_key_never_expose_a_partial_file(tmp_path, circles):
    config = Config(dataset="circles", layers=(32, 32, 32), iterations=300, record_every=2)
    target = RunCache(tmp_path).path(config, circles)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        while any(p.poll() is None for p in racers):
            if target.exists():
                try:
                    run = read_run(target)  # a half-written file would be incomplete or raise RunFileError
                except RunFileError:  # gone between the look and the read, or replaced during it by the
                    if not target.exists():  # other racer's whole file (its one rename): then it reads now
                        continue
                    run = read_run(target)
                assert run.complete and run.snapshots[-1].step == 300
            time.sleep(0.005)
    finally:
        for p in racers:
            p.wait(timeout=60)
    assert [p.returncode for p in racers] == [0, 0]
    assert "trained\n" in [p.stdout.read() for p in racers]  # a scheduler, not the cache, shares work
    assert read_run(target).complete
    assert list(tmp_path.glob(".tmp/*")) == []  # both writers cleaned up after their rename
    assert cache_files(tmp_path) == [target.name]


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


# --- the dashboard's run store with the disk cache and the per-process caps --------------------------------------
def test_a_second_server_process_replays_a_run_from_the_shared_cache(tmp_path, circles, dask_client):
    from app.serving.store import FINISHED, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = (RunStore(dask_client, tmp_path / name, cache=cache) for name in ("a", "b"))
    run = first.start(small(), circles, "one", Limits())
    assert first.wait(run.key, 30) and run.status == FINISHED and not run.cached
    replay = second.start(small(), circles, "two", Limits(), instant=True)
    assert replay.cached and replay.status == FINISHED and replay.path == cache.get(small(), circles)
    assert [s.loss for s in replay.snapshots] == [s.loss for s in run.snapshots]
    assert replay.seconds == pytest.approx(run.seconds, abs=0.5)  # the original run's time, from its file
    # the weights the 2-D boundary is drawn from: at every snapshot, the same read back from the file
    assert [step for step, _ in run.step_params] == [s.step for s in run.snapshots] == [0, 10, 20, 30, 40]
    for (step, kept), (back_step, back) in zip(run.step_params, replay.step_params, strict=True):
        assert step == back_step and all(np.array_equal(a, b) for a, b in zip(kept.W + kept.b, back.W + back.b))



def test_a_class_starting_one_config_at_once_shares_one_run_and_one_task(tmp_path, circles, dask_client,
                                                                           monkeypatch):
    """Thirty sessions pressing Train all at the same moment: the first submits the run, the others attach to it
    (before, each looked the run up, found nothing, and sent its own copy of the task and its data)."""
    from concurrent.futures import ThreadPoolExecutor

    from app.serving.store import FINISHED, RunStore
    from core.limits import Limits

    store, submitted, submit = RunStore(dask_client, tmp_path), [], dask_client.get
    monkeypatch.setattr(dask_client, "get", lambda *args, **kw: submitted.append(args) or submit(*args, **kw))
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda i: store.start(small(iterations=300), circles, f"student{i}", Limits()), range(8)))
    assert len(submitted) == 1 and all(run is runs[0] for run in runs)
    assert store.wait(runs[0].key, 60) and runs[0].status == FINISHED

def test_a_task_carries_a_reference_to_a_data_folder_dataset_and_the_arrays_of_an_upload(tmp_path, circles,
                                                                                          dask_client, monkeypatch):
    """The worker loads the data folder's datasets itself (the seed question's 24 MB once per worker process, not
    once per run through the scheduler); an upload, which only the web process has, travels with its task."""
    from app.serving.compute import FolderDataset
    from app.serving.store import FINISHED, RunStore
    from core.data import Dataset, DatasetError
    from core.limits import Limits

    store, graphs, get = RunStore(dask_client, tmp_path, data_dir=ROOT / "data"), [], dask_client.get
    monkeypatch.setattr(dask_client, "get", lambda graph, *args, **kw: graphs.append(graph) or get(graph, *args, **kw))
    named = store.start(small(), circles, "one", Limits())
    upload = dataclasses.replace(circles, name="mine", x_train=circles.x_train * 2, x_test=circles.x_test * 2)
    uploaded = store.start(small().replace(dataset="upload:mine"), upload, "two", Limits())
    assert store.wait(named.key, 30) and store.wait(uploaded.key, 30)
    assert named.status == uploaded.status == FINISHED
    sources = [next(a for a in task.args if isinstance(a, (Dataset, FolderDataset)))
               for graph in graphs for task in graph.values()]
    assert isinstance(sources[0], FolderDataset) and sources[1] is upload
    assert sources[0].load().fingerprint() == circles.fingerprint()
    elsewhere = FolderDataset("cat", str(tmp_path), False, circles.fingerprint())  # a worker without the files
    with pytest.raises(DatasetError, match="mount its data folder") as caught:
        elsewhere.load()
    assert str(tmp_path) not in str(caught.value)


def test_the_presets_runs_are_computed_in_advance_one_at_a_time_into_the_cache(tmp_path, circles, dask_client):
    from app.serving.cache import PRESET_OWNER
    from app.serving.compute import task_key
    from app.serving.store import RunStore, run_key

    def executing(config) -> tuple[float, float]:
        """When a worker began and ended the preset's task (from its story)."""
        events = dask_client.story(task_key(run_key(config, circles.fingerprint())))
        return (min(e[-1] for e in events if e[0] != "scheduler" and e[3] == "executing"),
                max(e[-1] for e in events if e[0] != "scheduler" and e[2] == "executing"))

    cache = RunCache(tmp_path / "cache")
    presets = [small(seed=seed, iterations=100) for seed in (11, 12, 13)]
    no_pages = Pace(10)  # (the process's own may count the pages of other tests)
    RunStore(dask_client, tmp_path / "live", cache=cache, pages=no_pages).warm_presets(presets, ROOT / "data")
    assert all(cache.get(config, circles, PRESET_OWNER) is not None for config in presets)
    spans = sorted(executing(config) for config in presets)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), \
        "the presets took more than one worker from the students"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_presets_runs_give_way_to_the_pages_and_are_computed_once_none_is_open(tmp_path, circles, dask_client):
    import threading

    from app.serving.cache import PRESET_OWNER
    from app.serving.store import STOPPED, RunStore, run_key

    clock, cache = FakeClock(), RunCache(tmp_path / "cache")
    pages = Pace(10, clock=clock)
    pages.saw("a student")
    store = RunStore(dask_client, tmp_path / "live", cache=cache, pages=pages)
    preset = Config(dataset="circles", layers=(6, 4), seed=21, iterations=60_000, record_every=300)  # seconds
    key = run_key(preset, circles.fingerprint())
    warming = threading.Thread(target=store.warm_presets, args=([preset], ROOT / "data"), daemon=True)
    warming.start()

    def until(condition, seconds: float):
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            time.sleep(0.05)
        return condition()

    time.sleep(1.5)
    assert store.get(key) is None, "a preset's run started while a page was open"
    clock.now += ACTIVE_SECONDS + 1  # the page closed: the preset starts
    assert until(lambda: store.get(key) is not None, 60)
    interrupted = store.get(key)
    pages.saw("another student")  # a page opens while it computes (seconds of it): it gives way
    assert until(lambda: interrupted.done, 10) and interrupted.status == STOPPED
    assert "gives way to the pages" in interrupted.message
    assert not interrupted.snapshots or interrupted.snapshots[-1].step < preset.iterations
    assert cache.get(preset, circles, PRESET_OWNER) is None
    time.sleep(1.5)
    assert store.get(key) is interrupted, "a preset's run started again while a page was open"
    clock.now += ACTIVE_SECONDS + 1  # every page closed: computed again, whole, into the cache
    warming.join(120)
    assert not warming.is_alive()
    recorded = cache.load(preset, circles, PRESET_OWNER)
    assert recorded is not None and recorded.snapshots[-1].step == preset.iterations


def test_an_ended_run_replays_to_each_watcher_at_its_recorded_pace_from_when_they_started(tmp_path, circles, dask_client):
    from app.serving.store import FINISHED, RUNNING, Replay, RunStore
    from core.limits import Limits

    clock = FakeClock()
    store = RunStore(dask_client, tmp_path, cache=RunCache(tmp_path / "cache"), clock=clock)
    run = store.start(small(iterations=400), circles, "trainer", Limits())
    assert store.wait(run.key, 60) and run.status == FINISHED
    offsets = run.offsets
    assert len(offsets) == len(run.snapshots) == 41 and offsets == sorted(offsets) and offsets[0] >= 0

    first = store.start(small(iterations=400), circles, "one", Limits())
    assert isinstance(first, Replay) and store.get(first.key) is first
    assert first.status == RUNNING and not first.done and first.message is None
    clock.now += offsets[20]
    assert first.snapshots == run.snapshots[:21] and first.status == RUNNING
    assert params_at(first.step_params, first.snapshots[-1].step)[0] == run.snapshots[20].step  # the shown step's
    second = store.start(small(iterations=400), circles, "two", Limits())  # starts later: its own pace
    assert len(second.snapshots) == sum(t <= 0 for t in offsets) < 21
    clock.now += offsets[-1] - offsets[20]
    assert first.done and first.status == FINISHED and first.snapshots == run.snapshots
    assert not second.done and len(second.snapshots) < len(run.snapshots)
    clock.now += offsets[20]
    assert second.done and second.snapshots == run.snapshots
    assert store.wait(second.key, 1)

    instant = store.start(small(iterations=400), circles, "three", Limits(), instant=True)
    assert instant is run and instant.done and len(instant.snapshots) == 41


def test_a_cache_hit_replays_at_the_pace_recorded_in_its_file_or_instantly(tmp_path, circles, dask_client):
    from app.serving.store import FINISHED, RUNNING, Replay, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    list(cache.compute(small(iterations=300), circles))
    recorded = read_run(cache.get(small(iterations=300), circles))
    clock = FakeClock()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    paced = RunStore(dask_client, tmp_path / "a", cache=cache, clock=clock).start(small(iterations=300), circles,
                                                                                  "one", Limits())
    assert isinstance(paced, Replay) and paced.cached and paced.status == RUNNING
    assert len(paced.snapshots) < len(recorded.snapshots)
    clock.now += recorded.seconds[-1]
    assert paced.status == FINISHED and [s.loss for s in paced.snapshots] == [s.loss for s in recorded.snapshots]
    whole = RunStore(dask_client, tmp_path / "b", cache=cache).start(small(iterations=300), circles, "two", Limits(),
                                                                     instant=True)
    assert whole.cached and whole.status == FINISHED and len(whole.snapshots) == len(recorded.snapshots)


def test_a_cached_file_without_timings_replays_instantly(tmp_path, circles, dask_client):
    import h5py

    from app.serving.store import FINISHED, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    list(cache.compute(small(), circles))
    with h5py.File(cache.get(small(), circles), "a") as f:  # as written before per-snapshot seconds existed
        del f["run/seconds"]
    run = RunStore(dask_client, tmp_path, cache=cache).start(small(), circles, "one", Limits())
    assert run.cached and run.status == FINISHED and len(run.snapshots) == 5 and run.seconds is None


def test_the_store_refuses_runs_over_the_concurrency_cap_and_stops_runs_over_the_time_cap(tmp_path, circles, dask_client):
    from app.serving.store import STOPPED, RunStore
    from core.config import ConfigError
    from app.serving.limits import ServerLimits
    from core.limits import Limits

    store = RunStore(dask_client, tmp_path, cache=RunCache(tmp_path / "cache"),
                     policy=ServerLimits(max_training_seconds=1))
    endless = Config(dataset="circles", layers=(32, 32), iterations=100_000, record_every=50)
    run = store.start(endless, circles, "one", Limits())
    store.policy = ServerLimits(max_concurrent_trainings=1)
    with pytest.raises(ConfigError, match="INITLAB_MAX_CONCURRENT_TRAININGS"):
        store.start(endless.replace(seed=2), circles, "two", Limits())
    assert store.wait(run.key, 30) and run.status == STOPPED
    assert "INITLAB_MAX_TRAINING_SECONDS" in run.message and run.snapshots[-1].step < 100_000
    assert RunCache(tmp_path / "cache").entries() == []  # a run cut short is not the config's run
    stopped = read_run(run.path)  # but its file is still there to download, saying why it stopped
    assert stopped.complete and stopped.stopped_reason == run.message
    assert stopped.snapshots[-1].step == run.snapshots[-1].step


def test_the_time_cap_is_recorded_without_a_disk_cache_too(tmp_path, circles, dask_client):
    from app.serving.store import STOPPED, RunStore
    from app.serving.limits import ServerLimits
    from core.limits import Limits

    store = RunStore(dask_client, tmp_path, cache=None, policy=ServerLimits(max_training_seconds=0.5))
    endless = Config(dataset="circles", layers=(8,), iterations=100_000, record_every=50)
    run = store.start(endless, circles, "one", Limits())
    assert store.wait(run.key, 30) and run.status == STOPPED
    assert read_run(run.path).stopped_reason == run.message and "INITLAB_MAX_TRAINING_SECONDS" in run.message


def test_the_server_caps_come_from_the_environment():
    from app.serving.limits import ServerLimits
    from core.config import ConfigError

    limits = ServerLimits.from_env({"INITLAB_MAX_CONCURRENT_TRAININGS": "3", "INITLAB_MAX_TRAINING_SECONDS": "90"})
    assert (limits.max_concurrent_trainings, limits.max_training_seconds) == (3, 90)
    with pytest.raises(ConfigError, match="INITLAB_MAX_TRAINING_SECONDS"):
        ServerLimits.from_env({"INITLAB_MAX_TRAINING_SECONDS": "soon"})
