"""The run cache against what it may find on a shared disk, and the disk against the cache: misplaced and foreign
entries, a full disk, fair eviction, compressed weights, and the files a stopped or killed server leaves."""

import asyncio
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.serving.cache import ABANDONED_SECONDS, LIVE_DIR, PRESET_OWNER, RunCache, session_owner
from core.config import Config
from core.data import load_dataset
from core.record import RunWriteError, record
from core.run_reader import read_run
from core.train import Training
from tests.conftest import CountingFactory

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


def small(seed=1, iterations=40, layers=(6, 4)):
    return Config(dataset="circles", layers=layers, seed=seed, iterations=iterations, record_every=10)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- what the cache finds --------------------------------------------------------------------------------------------
def test_a_run_file_copied_to_another_runs_key_is_not_served_as_that_run(tmp_path, circles, caplog):
    cache, factory = RunCache(tmp_path), CountingFactory()
    list(cache.compute(small(seed=1), circles, factory))
    target = cache.path(small(seed=2), circles)
    shutil.copy(cache.path(small(seed=1), circles), target)  # seed 1's run where seed 2's belongs
    assert cache.get(small(seed=2), circles) is None and not target.exists()
    assert target.stem[:16] in caplog.text and str(tmp_path) not in caplog.text  # logged by key, no path
    snapshots = list(cache.compute(small(seed=2), circles, factory))
    assert factory.calls == 2  # trained, not replayed from the other run
    assert [s.loss for s in snapshots] == [s.loss for s in Training(small(seed=2), circles)]
    assert read_run(cache.get(small(seed=2), circles)).config == small(seed=2)


def test_a_run_on_other_data_at_the_key_is_not_served(tmp_path, circles):
    moons = load_dataset("moons")
    cache = RunCache(tmp_path)
    list(cache.compute(small(), moons))
    shutil.copy(cache.path(small(), moons), cache.path(small(), circles))  # the same config, another dataset
    assert cache.get(small(), circles) is None and cache.get(small(), moons) is not None


def test_a_cache_hit_is_read_in_the_parser_process_never_by_the_server_itself(tmp_path, circles, monkeypatch):
    cache = RunCache(tmp_path)
    list(cache.compute(small(), circles))

    def opened_here(*args, **kwargs):
        raise AssertionError("the server process opened a cached run file itself")

    monkeypatch.setattr(h5py, "File", opened_here)  # in this process only: the parser's own h5py is untouched
    run = cache.load(small(), circles)
    assert run is not None and run.config == small() and run.complete


def test_files_where_the_caches_folders_or_an_entry_should_be_are_replaced(tmp_path, circles):
    (tmp_path / ".tmp").write_text("in the way")
    (tmp_path / ".owners").write_text("in the way")
    (tmp_path / ".live").symlink_to(tmp_path.parent)  # the dashboard's runs would be written outside the cache
    cache = RunCache(tmp_path)  # FileExistsError before
    assert cache.tmp.is_dir() and cache.owners.is_dir()
    assert cache.live.is_dir() and not cache.live.is_symlink()
    entry = cache.path(small(), circles)
    entry.mkdir()
    (entry / "x").write_text("a folder at the key")
    snapshots = list(cache.compute(small(), circles))
    assert len(snapshots) == 5 and entry.is_file() and read_run(entry).complete
    assert cache.entries() == [entry]


def test_servers_with_schedulers_of_their_own_write_a_run_apart_and_store_it_whole_for_both(tmp_path, circles,
                                                                                              caplog):
    from app.serving.server import live_folder

    cache = RunCache(tmp_path)
    assert live_folder(cache, shared_cluster=True) == tmp_path / LIVE_DIR  # one scheduler: one task, one file
    apart = [live_folder(cache, shared_cluster=False) for _ in range(2)]
    assert apart[0] != apart[1] and all(folder.parent == tmp_path / LIVE_DIR for folder in apart)
    for folder, owner in zip(apart, ("alice", "bob")):  # both servers trained the config a class asked of both
        path = folder / "run.h5"
        list(record(Training(small(), circles), path))
        cache.store(path, small(), circles, session_owner(owner))
    entry = cache.path(small(), circles)
    assert read_run(entry).complete and cache.entries() == [entry]
    # replaced in place: before, the first was deleted (and untagged) before the second took its name
    assert "removed entry" not in caplog.text
    assert sorted(tag.name for tag in cache.owners.glob(f"{entry.stem}.*")) == sorted(
        f"{entry.stem}.{session_owner(owner)}" for owner in ("alice", "bob"))


SERVER_FOLDER = """import sys, time
from pathlib import Path
from app.serving.cache import RunCache
from app.serving.server import live_folder
print(live_folder(RunCache(Path(sys.argv[1])), shared_cluster=False), flush=True)
time.sleep(600)
"""


def test_a_killed_servers_own_folder_is_removed_by_the_next_server_to_start_and_a_running_ones_kept(tmp_path):
    """A server with a cluster of its own records in .live/server-*, removed when it stops; killed (SIGKILL, out
    of memory), it left the folder in the shared cache for ever, counted towards the cap."""
    from app.serving.server import live_folder

    cache = RunCache(tmp_path)
    servers = [subprocess.Popen([sys.executable, "-c", SERVER_FOLDER, str(tmp_path)], env=ENV, cwd=ROOT,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        folders = [Path(server.stdout.readline().strip()) for server in servers]
        for folder in folders:
            (folder / "run.h5.partial").write_bytes(b"a run being written")
        servers[0].kill()
        servers[0].wait()
        assert folders[0].is_dir()  # no exit hook ran
        unclaimed, young = cache.live / "server-unclaimed", cache.live / "server-young"  # killed before they locked
        unclaimed.mkdir()
        young.mkdir()
        os.utime(unclaimed, (time.time() - 2 * ABANDONED_SECONDS,) * 2)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (cache.live / "server-link").symlink_to(elsewhere, target_is_directory=True)

        mine = live_folder(cache, shared_cluster=False)  # a new server starts
        assert not folders[0].exists() and not unclaimed.exists()
        assert folders[1].is_dir() and (folders[1] / "run.h5.partial").is_file()  # its server still runs
        assert young.is_dir() and mine.is_dir() and (cache.live / "server-link").is_symlink() and elsewhere.is_dir()
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_cache_folder_that_is_a_link_to_the_volume_is_the_operators_and_kept(tmp_path, circles):
    (tmp_path / "volume").mkdir()
    (tmp_path / "cache").symlink_to(tmp_path / "volume")
    (tmp_path / "volume" / ".tmp").symlink_to(tmp_path)  # but a link inside it would send writes elsewhere
    cache = RunCache(tmp_path / "cache")
    list(cache.compute(small(), circles))
    assert (tmp_path / "cache").is_symlink() and not cache.tmp.is_symlink()
    assert [p.name for p in (tmp_path / "volume").glob("*.h5")] == [cache.path(small(), circles).name]


# --- eviction: everything counted, fairly ----------------------------------------------------------------------------
def test_one_sessions_runs_evict_its_own_never_a_presets_or_another_sessions_share(tmp_path, circles):
    cache = RunCache(tmp_path)
    preset, other = small(seed=100), small(seed=200)
    list(cache.record(Training(preset, circles), owner=PRESET_OWNER))
    list(cache.record(Training(other, circles), owner=session_owner("bob")))
    size = cache.path(other, circles).stat().st_size
    cache.max_bytes = cache.path(preset, circles).stat().st_size + int(2.5 * size)  # room for 2.5 session runs
    mine = [small(seed=s) for s in (1, 2, 3, 4)]
    for config in mine:  # the least recently used entries are the preset's and bob's
        list(cache.record(Training(config, circles), owner=session_owner("alice")))
    assert cache.get(preset, circles) is not None and cache.get(other, circles) is not None
    assert [cache.get(c, circles) is not None for c in mine] == [False, False, False, True]


def test_a_preset_tag_from_any_session_keeps_a_run(tmp_path, circles):
    cache = RunCache(tmp_path)
    list(cache.record(Training(small(seed=1), circles), owner=session_owner("alice")))
    assert cache.get(small(seed=1), circles, owner=PRESET_OWNER) is not None  # a preset asked for the same run
    cache.max_bytes = 1
    list(cache.record(Training(small(seed=2), circles), owner=session_owner("alice")))
    assert cache.get(small(seed=1), circles) is not None


def test_temporary_files_count_in_the_cap(tmp_path, circles):
    cache = RunCache(tmp_path)
    list(cache.compute(small(seed=1), circles))
    size = cache.path(small(seed=1), circles).stat().st_size
    cache.max_bytes = 3 * size
    assert cache.evict() == []
    (cache.tmp / "writer.h5.partial").write_bytes(b"\0" * (3 * size))  # a writer's file, in progress
    assert cache.evict() == [cache.path(small(seed=1), circles)]


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_sweeps_cells_count_in_the_cap_and_evict_as_runs_do_while_the_sweep_keeps_them(tmp_path, circles,
                                                                                           dask_client):
    from app.serving.sweeps import DONE, SweepQueue
    from core.limits import Limits
    from core.sweep import SweepSpec, cell_key, train_cell

    spec = SweepSpec(Config(dataset="circles", iterations=20), (1.0, 2.0), (1, 2), 4, 0.05)  # 4 cells
    probe = tmp_path / "probe"
    probe.mkdir()
    train_cell(spec.cell_config(1, 0), circles, Limits(), str(probe))  # a cell's two files, to size the cap
    cell = disk_bytes(probe)
    cache = RunCache(tmp_path / "cache")
    preset, bobs = small(seed=100), small(seed=200, iterations=10, layers=(2,))
    list(cache.record(Training(preset, circles), owner=PRESET_OWNER))
    list(cache.record(Training(bobs, circles), owner=session_owner("bob")))
    bob = cache.path(bobs, circles).stat().st_size
    assert bob <= 2.5 * cell  # so bob is within his share of the room below, and alice is over hers
    cache.max_bytes = disk_bytes(cache.directory) + int(2.5 * cell)  # room for 2.5 of alice's 4 cells
    queue = SweepQueue(lambda: dask_client, cache.sweep_cells, Limits(), cache)
    sweep = queue.submit(spec, circles, session_owner("alice"))
    end = time.monotonic() + 120
    while not sweep.ended and time.monotonic() < end:
        time.sleep(0.05)
    assert sweep.status == DONE and sorted(sweep.results) == sorted(spec.cells())  # all kept, in memory
    assert disk_bytes(cache.directory) <= cache.max_bytes
    assert cache.get(preset, circles) is not None and cache.get(bobs, circles) is not None
    keys = [cell_key(spec.cell_config(row, column), circles.fingerprint()) for row, column in spec.cells()]
    kept = [key for key in keys if (cache.sweep_cells / f"{key}.json").exists()]
    assert 1 <= len(kept) < len(keys)  # alice's oldest cells went, her last stayed
    for key in set(keys) - set(kept):  # an evicted cell leaves neither its run nor its tag behind
        assert not (cache.sweep_cells / f"{key}.h5").exists() and not list(cache.owners.glob(f"{key}.*"))
    assert all((cache.owners / f"{key}.{session_owner('alice')}").exists() for key in kept)
    (cache.sweep_cells / f"{keys[0]}.h5.partial").write_bytes(b"\0" * cache.max_bytes)  # a worker's cell, writing
    cache.evict()
    assert not list(cache.sweep_cells.glob("*.json")) and cache.get(preset, circles) is not None


def test_the_store_tags_presets_runs_and_each_sessions(tmp_path, circles, dask_client):
    from app.serving.store import FINISHED, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    store = RunStore(dask_client, tmp_path, cache=cache, protected={small(seed=1)})
    for config, watcher in ((small(seed=1), "alice"), (small(seed=2), "alice:compare")):
        run = store.start(config, circles, watcher, Limits(), session="alice")
        assert store.wait(run.key, 30) and run.status == FINISHED
    tags = sorted(p.name.split(".", 1)[1] for p in cache.owners.iterdir())
    assert tags == sorted([PRESET_OWNER, session_owner("alice")])


# --- a full disk ------------------------------------------------------------------------------------------------------
class FullDisk:
    """h5py's flush fails as on a full disk from the ``after``-th call on, until `free`."""

    def __init__(self, monkeypatch, after: int):
        self.calls, self.after, self.full = 0, after, True
        real = h5py.File.flush

        def flush(f):
            self.calls += 1
            if self.full and self.calls >= self.after:
                raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28, error "
                                            "message = 'No space left on device', filename = '/srv/secret/x.h5')")
            return real(f)

        monkeypatch.setattr(h5py.File, "flush", flush)

    def free(self):
        self.full = False


def test_a_full_disk_stops_the_recording_cleanly_and_the_next_one_works(tmp_path, circles, monkeypatch):
    disk = FullDisk(monkeypatch, after=3)
    with pytest.raises(RunWriteError, match="disk is full") as raised:
        list(record(Training(small(iterations=400), circles), tmp_path / "run.h5", flush_seconds=0))
    assert raised.value.disk_full and "/" not in str(raised.value)
    assert leftovers(tmp_path) == []  # nothing half-written left, under any name
    disk.free()
    list(record(Training(small(), circles), tmp_path / "run.h5"))
    assert read_run(tmp_path / "run.h5").complete


def test_a_full_cache_disk_stops_the_run_with_a_message_and_the_next_run_trains_once_there_is_room(
        tmp_path, circles, monkeypatch, dask_client):
    from app.serving.store import FINISHED, STOPPED, RunStore
    from core.limits import Limits

    cache = RunCache(tmp_path / "cache")
    (tmp_path / "store").mkdir()
    store = RunStore(dask_client, tmp_path / "store", cache=cache)
    disk = FullDisk(monkeypatch, after=2)  # the first flush after the file was created
    run = store.start(small(iterations=2000), circles, "one", Limits())
    assert store.wait(run.key, 60) and run.status == STOPPED
    assert "disk is full" in run.message and "Press Start" in run.message
    assert "/" not in run.message and "Error" not in run.message  # no path, no exception
    assert leftovers(cache.directory) == [] and not run.path.exists()
    disk.free()
    again = store.start(small(seed=2), circles, "one", Limits())
    assert store.wait(again.key, 60) and again.status == FINISHED
    assert cache.entries() == [again.path] and read_run(again.path).complete


FILL_TINY_DISK = textwrap.dedent("""
    import sys
    from distributed import Client, LocalCluster
    from app.serving.store import RunStore
    from app.serving.cache import RunCache
    from core.config import Config
    from core.data import load_dataset
    from core.limits import Limits

    circles = load_dataset("circles")
    if __name__ == "__main__":
        client = Client(LocalCluster(processes=False, n_workers=1, dashboard_address=None))
    store = RunStore(client, sys.argv[2], cache=RunCache(sys.argv[1]))
    for width in (400, 500, 8):  # runs too big for the disk, then a small one that fits
        config = Config(dataset="circles", layers=(width,) * 3, iterations=100, record_every=1)
        run = store.start(config, circles, "one", Limits())
        store.wait(run.key, 120)
        print(run.status, "|", run.message, flush=True)
""")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB filesystem (tmpfs), or a skip saying why none can be made here."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 3 MB tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_does_not_crash_the_server_and_the_next_run_trains(tiny_disk):
    store = tiny_disk / "store"  # the store's own folder on the full disk too: the runs after the first fail there
    store.mkdir()
    done = subprocess.run([sys.executable, "-c", FILL_TINY_DISK, str(tiny_disk / "cache"), str(store)], env=ENV,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # 139 (a segfault) before
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[-1] == "finished | None"
    for line in lines[:-1]:
        assert line.startswith("stopped |") and "disk is full" in line and str(tiny_disk) not in line
    entries = RunCache(tiny_disk / "cache").entries()
    assert [read_run(p).complete for p in entries] == [True]  # the small run's, whole
    # no half-written file anywhere: the cache holds that entry and its owner's tag, nothing else
    assert [p for p in leftovers(tiny_disk / "cache") if not p.startswith(".owners/")] == [entries[0].name]


# --- files left by a stopped or killed server ------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import signal, sys, threading
    from app.serving.cache import RunCache
    from core.config import Config
    from core.data import load_dataset
    from core.train import Training

    cache = RunCache(sys.argv[1])
    config = Config(dataset="circles", layers=(64, 64), iterations=100_000, record_every=50)
    circles = load_dataset("circles")

    def write():
        for i, _ in enumerate(cache.record(Training(config, circles))):
            if i == 20:
                print("writing", flush=True)

    if sys.argv[2] == "main":  # a script: the cache's code runs on the main thread, SIGTERM's default is to die
        write()
    else:  # as under Streamlit: the work runs on another thread, the server's handler stops it in order
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        threading.Thread(target=write, daemon=True).start()
        stopped.wait()
        print("stopped in order", flush=True)
""")


@pytest.mark.parametrize("where", ["main", "server"])
def test_sigterm_removes_the_files_being_written(tmp_path, where):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), where], env=ENV, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        assert [p.suffix for p in (tmp_path / ".tmp").iterdir()] == [".partial"]
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    if where == "main":
        assert writer.returncode == -signal.SIGTERM  # still ends as SIGTERM's default would
    else:
        assert writer.returncode == 0 and writer.stdout.read() == "stopped in order\n"
    assert leftovers(tmp_path) == []


STREAMLIT_APP = textwrap.dedent("""
    import streamlit as st
    from app.serving.server import run_store
    from core.config import Config
    from core.data import load_dataset
    from core.limits import Limits

    config = Config(dataset="circles", layers=(64, 64), iterations=100_000, record_every=50)
    run_store().start(config, load_dataset("circles"), "one", Limits())
    st.write("started")
""")


@pytest.mark.slow  # a real Streamlit server
def test_a_streamlit_server_stopped_by_sigterm_leaves_no_partial_file(tmp_path):
    from tests.load.protocol import Client
    from tests.serving import STREAMLIT_FLAGS, free_port, healthy, start, stop

    (tmp_path / "server_page.py").write_text(STREAMLIT_APP)
    scratch = tmp_path / "scratch"  # the store's own folder goes here
    scratch.mkdir()
    port = free_port()
    env = {**ENV, "INITLAB_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(scratch), "INITLAB_DASK_WORKERS": "1",
           "INITLAB_PRECOMPUTE_PRESETS": "0"}
    server = start([sys.executable, "-m", "streamlit", "run", str(tmp_path / "server_page.py"), f"--server.port={port}",
                    "--server.address=127.0.0.1", *STREAMLIT_FLAGS], tmp_path / "log", cwd=ROOT, env=env)
    try:
        healthy(server, port, 60)

        async def open_page():
            async with Client(f"http://127.0.0.1:{port}") as page:
                await page.run(timeout=60)

        asyncio.run(open_page())
        end = time.monotonic() + 60
        while not list((tmp_path / "cache" / ".live").rglob("*.partial")) and time.monotonic() < end:
            time.sleep(0.1)
        # the server's worker writes the run (in the server's own folder there: it has a cluster of its own); the
        # server's scheduler and workers keep their files in scratch
        assert list((tmp_path / "cache" / ".live").rglob("*.partial")) and list(scratch.iterdir())
        scheduler = json.loads(next(scratch.glob("initlab-dask-*/scheduler.json")).read_text())["address"]
        server.send_signal(signal.SIGTERM)  # to the server alone, as `docker stop` does
        server.wait(timeout=30)
    finally:
        stop(server)
    assert leftovers(tmp_path / "cache") == [] and list(scratch.iterdir()) == []
    host, port = scheduler.removeprefix("tcp://").rsplit(":", 1)
    with pytest.raises(OSError):  # its scheduler stopped with it (and its workers, which die with their scheduler)
        socket.create_connection((host, int(port)), timeout=2).close()


def test_at_start_the_cache_removes_what_a_killed_writer_left_but_not_a_live_writers_files(tmp_path):
    RunCache(tmp_path)
    old = time.time() - ABANDONED_SECONDS - 5
    killed = tmp_path / ".tmp" / f"{'a' * 64}.123.deadbeef.h5.partial"
    fresh = tmp_path / ".tmp" / f"{'c' * 64}.789.feedfeed.h5.partial"  # written a moment ago
    for path in (killed, fresh):
        path.write_bytes(b"\0" * 1000)
    os.utime(killed, (old, old))
    RunCache(tmp_path)  # a server starting
    assert [p.name for p in (tmp_path / ".tmp").iterdir()] == [fresh.name]


# --- compressed weights ----------------------------------------------------------------------------------------------
def test_weights_are_compressed_and_read_back_bit_identical(tmp_path, circles):
    training = Training(small(layers=(256, 256)), circles)
    initial = training.params.copy()
    list(record(training, tmp_path / "run.h5"))
    run = read_run(tmp_path / "run.h5")
    for got, want in ((run.initial_params, initial), (run.final_params, training.params)):
        for a, b in zip([*got.W, *got.b], [*want.W, *want.b]):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    with h5py.File(tmp_path / "run.h5") as f:
        weights = f["params/initial/W2"]
        assert weights.compression == "gzip" and weights.shuffle
        assert weights.id.get_storage_size() < weights.nbytes  # smaller on disk than in memory
    assert np.any(run.final_params.W[1] != initial.W[1])  # the final weights are their own, not the initial ones
