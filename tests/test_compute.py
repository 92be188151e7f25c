"""The compute tier against a real Dask cluster: a `dask scheduler` and two `dask worker` processes on loopback,
started once for the module as the server starts them (app/serving/cluster.py), shared by two run stores with their
own clients, as two app replicas would be. Every wait has a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.serving import cluster
from app.serving.compute import probe_key, task_key
from app.serving.limits import ServerLimits
from app.serving.store import FINISHED, RUNNING, STOPPED, RunStore, run_key
from core.config import Config, ConfigError
from core.data import load_dataset
from core.limits import Limits
from core.measures import identical_units
from core.run_reader import read_run
from core.train import probe

# record_every = 100,000 on steps of about a millisecond: only Stop, the time cap or nobody watching end it early
ENDLESS = Config(dataset="circles", layers=(64, 64), iterations=100_000, record_every=100_000)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    started = cluster.start_local(workers=2, memory_mb=1024, folder=tmp_path_factory.mktemp("dask"))
    started.client.wait_for_workers(2, timeout=120)
    yield started
    started.close()


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


@pytest.fixture
def replicas(real_cluster, tmp_path):
    """Two stores, each with its own client of the shared scheduler and its own pages, recording in one folder (the
    run cache's on a shared volume, in production)."""
    from distributed import Client

    clients = [Client(real_cluster.client.scheduler.address, timeout=30) for _ in range(2)]
    stores = [RunStore(client, tmp_path, policy=ServerLimits(max_training_seconds=600), unwatched_seconds=600)
              for client in clients]
    yield stores
    for store, client in zip(stores, clients):
        store.close()
        client.close()


def wait_for(condition, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


def computing(store: RunStore, run) -> bool:
    """The run's worker has started it (its file exists)."""
    store.get(run.key)
    return not run.queued


def test_two_replicas_asking_for_one_config_share_one_task_and_its_file(replicas, circles, real_cluster):
    first, second = replicas
    config = Config(dataset="circles", layers=(16, 8), iterations=2000, record_every=100)
    a = first.start(config, circles, "alice", Limits())
    b = second.start(config, circles, "bob", Limits())
    assert first.wait(a.key, 60) and second.wait(b.key, 60)
    assert a.status == b.status == FINISHED and a.path == b.path
    assert [s.loss for s in a.snapshots] == [s.loss for s in b.snapshots] and len(a.snapshots) == 21
    # a worker executed the key once, whichever client asked: one transition into "executing" in its story
    story = real_cluster.client.story(task_key(a.key))
    assert sum(1 for event in story if event[0] != "scheduler" and event[3:5] == ("executing", "executing")) == 1


def test_stop_ends_a_run_within_a_second_once_every_watcher_on_every_replica_has_stopped(replicas, circles):
    first, second = replicas
    a = first.start(ENDLESS, circles, "alice", Limits())
    b = second.start(ENDLESS, circles, "bob", Limits())
    assert wait_for(lambda: computing(first, a), 60)
    first.detach(a.key, "alice")
    time.sleep(1.5)
    assert second.get(b.key).status == RUNNING, "bob on the other replica still watches it"
    asked = time.monotonic()
    second.detach(b.key, "bob")
    assert wait_for(lambda: second.get(b.key).done, 5)
    assert time.monotonic() - asked < 1.0 + 0.5  # + 0.5: this test's own polling and the file's last read
    assert b.status == STOPPED and b.message.startswith("stopped by the user at step")
    stopped = read_run(b.path)
    assert stopped.stopped_reason == b.message and 0 < stopped.snapshots[-1].step < ENDLESS.iterations
    assert [s.step for s in b.snapshots] == [0, stopped.snapshots[-1].step]


def test_the_time_cap_stops_a_run_within_a_second_of_it(replicas, circles):
    store = replicas[0]
    store.policy = ServerLimits(max_training_seconds=2)
    run = store.start(ENDLESS.replace(seed=2), circles, "alice", Limits())
    assert wait_for(lambda: computing(store, run), 60)
    assert store.wait(run.key, 2 + 3) and run.status == STOPPED
    assert "INITLAB_MAX_TRAINING_SECONDS" in run.message and run.seconds < 2 + 1
    assert read_run(run.path).stopped_reason == run.message


def test_a_run_no_page_reads_any_more_is_stopped(real_cluster, tmp_path, circles):
    """A closed tab reads its run no more: after unwatched_seconds its replica leaves the run, which stops."""
    store = RunStore(real_cluster.client, tmp_path, policy=ServerLimits(), unwatched_seconds=2)
    try:
        run = store.start(ENDLESS.replace(seed=3), circles, "gone", Limits())
        assert wait_for(lambda: computing(store, run), 60)
        started = time.monotonic()
        assert wait_for(lambda: run.done or run.future.done(), 2 + 2 * 2.0 + 2, step=0.2)  # 2 beats at most
        store.get(run.key)
        assert run.status == STOPPED and time.monotonic() - started >= 1.0
    finally:
        store.close()


def test_a_session_has_one_training_at_a_time_and_a_queued_run_waits_for_a_free_worker(replicas, circles):
    store = replicas[0]
    store.reserve("alice", "training")
    run = store.start(ENDLESS.replace(seed=4), circles, "alice", Limits(), kind="training")
    with pytest.raises(ConfigError, match="already have a training running"):
        store.reserve("alice", "training")
    store.reserve("alice", "comparison")  # one comparison besides
    store.reserve("bob", "training")  # and another student's own
    store.detach(run.key, "alice")
    assert store.wait(run.key, 10)
    store.reserve("alice", "training")  # stopped: the next may start


def began(client, key: str) -> float:
    """When a worker began executing the task ``key``, once only (from the task's story)."""
    (when,) = [event[-1] for event in client.story(key) if event[0] != "scheduler" and event[3] == "executing"]
    return when


def test_a_students_first_run_goes_before_anothers_later_ones_whichever_worker_frees_first(replicas, circles,
                                                                                            real_cluster):
    store = replicas[0]
    blockers = [store.start(ENDLESS.replace(seed=20 + i), circles, f"blocker{i}", Limits()) for i in range(2)]
    assert wait_for(lambda: all(computing(store, run) for run in blockers), 60)
    short = Config(dataset="circles", layers=(8,), iterations=50, record_every=50)
    alices = [store.start(short.replace(seed=30 + i), circles, "alice", Limits()) for i in range(3)]
    bobs_first = store.start(short.replace(seed=40), circles, "bob", Limits())
    store.detach(blockers[0].key, "blocker0")  # one worker frees; later the other
    assert wait_for(lambda: store.get(alices[0].key).done, 30)
    store.detach(blockers[1].key, "blocker1")
    assert all(store.wait(run.key, 60) for run in [*alices, bobs_first])
    order = sorted([*alices, bobs_first], key=lambda run: began(real_cluster.client, task_key(run.key)))
    assert order.index(bobs_first) < order.index(alices[1]) < order.index(alices[2]), "bob's first waited behind alice's"


def test_a_probe_is_computed_once_by_a_worker_for_every_replica_before_queued_runs(replicas, circles, real_cluster):
    from concurrent.futures import ThreadPoolExecutor

    first, second = replicas
    blockers = [first.start(ENDLESS.replace(seed=50 + i), circles, f"blocker{i}", Limits()) for i in range(2)]
    assert wait_for(lambda: all(computing(first, run) for run in blockers), 60)
    queued = first.start(Config(dataset="circles", layers=(8,), iterations=50, record_every=50), circles, "alice",
                         Limits())
    config = Config(dataset="circles", layers=(16, 8), init="normal", init_scale=1e-3, seed=7)
    with ThreadPoolExecutor(2) as pool:
        asked = [pool.submit(lambda store: store.probes.get([config], circles, Limits())[0], store)
                 for store in replicas]
        time.sleep(1.0)  # both waiting for a worker, behind nothing but the blockers
        first.detach(blockers[0].key, "blocker0")
        results = [future.result(timeout=60) for future in asked]
    first.detach(blockers[1].key, "blocker1")
    assert first.wait(queued.key, 60)
    network, snapshot, identical, note = results[0]
    _, params, here = probe(config, circles)  # the same probe, computed in this process
    assert str(network) == str(results[1][0]) and identical == identical_units(params) and note is None
    for name in ("z_std", "a_std", "dz_std"):
        assert np.array_equal(snapshot.stats[name], results[1][1].stats[name])  # one computation for both replicas
        # and the probe computed here, but for the last bit: on an AVX-512 EPYC (OpenBLAS's SkylakeX kernels) the
        # worker's output-layer std differed by 1 ulp in some runs, before this round's changes too
        np.testing.assert_allclose(snapshot.stats[name], here.stats[name], rtol=1e-13, atol=0)
    probe_began = began(real_cluster.client, probe_key(run_key(config, circles.fingerprint())))  # once, for both
    assert probe_began < began(real_cluster.client, task_key(queued.key)), "the page's probe waited behind a run"


def test_a_worker_killed_mid_run_fails_that_run_with_a_message_and_the_others_go_on(replicas, circles, real_cluster):
    store = replicas[0]
    doomed = store.start(ENDLESS.replace(seed=5), circles, "alice", Limits())
    assert wait_for(lambda: computing(store, doomed), 60)
    where = next(worker for worker, keys in real_cluster.client.processing().items() if task_key(doomed.key) in keys)
    pid = real_cluster.client.run(os.getpid, workers=[where])[where]
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer, or the nanny at the memory limit, would
    assert store.wait(doomed.key, 30) and doomed.status == STOPPED
    assert "the worker running it stopped" in doomed.message and "Press Start" in doomed.message
    assert "KilledWorker" not in doomed.message and "/" not in doomed.message
    real_cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    after = store.start(Config(dataset="circles", layers=(8,), iterations=200, record_every=50), circles, "bob",
                        Limits())
    assert store.wait(after.key, 60) and after.status == FINISHED


def test_a_server_starts_several_workers_a_core_as_far_as_the_memory_holds_them_at_their_limits():
    assert cluster.default_workers(cores=2, worker_mb=2816, total_mb=64_000) == 8  # cores bound: 4 a core
    assert cluster.default_workers(cores=2, worker_mb=2816, total_mb=24_000) == 6  # 0.8 × 24 GB / 2816 MB
    assert cluster.default_workers(cores=16, worker_mb=2816, total_mb=2_000) == 1  # never none
    workers, worker_mb = cluster.sizes_from_env({"INITLAB_MAX_MEMORY_MB": "256"})
    assert worker_mb == 256 + cluster.WORKER_HEADROOM_MB and workers >= (os.cpu_count() or 1)
    assert cluster.sizes_from_env({"INITLAB_DASK_WORKERS": "3"})[0] == 3


def test_a_cluster_that_does_not_start_is_a_message_for_the_page_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "dask_command", lambda: "/bin/false")  # a scheduler that exits at once
    with pytest.raises(ConfigError, match="compute workers did not start") as caught:
        cluster.start_local(workers=1, memory_mb=256, folder=tmp_path)
    assert str(tmp_path) not in str(caught.value)


def test_readiness_fails_when_no_worker_can_take_a_run(real_cluster):
    from app.serving import ready
    from tests.serving import free_port

    address = real_cluster.client.scheduler.address
    assert ready.problem(address, {"INITLAB_MAX_MEMORY_MB": "512"}) is None
    # the workers have 1024 MB each: a run the app would accept may need more than any of them has
    assert "INITLAB_MAX_MEMORY_MB" in ready.problem(address, {"INITLAB_MAX_MEMORY_MB": "2048"})
    nobody = ready.problem(f"tcp://127.0.0.1:{free_port()}", {})  # nobody listens there
    assert "cannot be reached" in nobody


ALLOCATION_LOOP = """
import resource, sys
import numpy as np
from app.serving.worker_setup import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else None
a = np.ones(2**18)  # 2 MB: as a step's dW of the seed question
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    a = a * 1.0  # a new 2 MB array each time, the old one freed
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_worker_reuses_freed_arrays_where_dasks_nanny_setting_alone_would_map_them_anew():
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which makes glibc map and zero-fill every freed-and-reallocated
    array; the worker's preload puts the thresholds back: page faults per allocation drop from ~512 to ~0."""
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536", PYTHONPATH=str(ROOT))
    faults = {mode: int(subprocess.run([sys.executable, "-c", ALLOCATION_LOOP, mode], env=env, capture_output=True,
                                       text=True, check=True, timeout=60).stdout) for mode in ("dask", "tuned")}
    assert faults["dask"] > 200 * 100  # the setting's cost, so the comparison below means something
    assert faults["tuned"] < faults["dask"] / 20
