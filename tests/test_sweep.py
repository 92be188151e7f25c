"""The trainability sweep (core/sweep.py, `python -m core sweep`): on a 2-worker LocalCluster and on a real
`dask scheduler` + two `dask worker` processes on loopback (started once for the module, as the dashboard starts
them), the cache, Stop, a worker killed mid-sweep, mistakes, and the sweep file. Grids are a few cells of tiny
networks: what is tested is the machinery, not training."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import time

import numpy as np
import pytest

from app.serving import cluster
from core import sweep_cli
from core.cli import main
from core.config import Config
from core.criticality import critical_line
from core.data import load_dataset
from core.record import RunFileError
from core.sweep import SweepRun, SweepSpec, cell_key, critical_sigma_w2, parse_axis, task_key
from core.sweep_file import SweepResults, read_sweep, read_uploaded_sweep, write_sweep
from tests.serving import free_port

GRID = ["--dataset", "circles", "--activation", "tanh", "--sigma-w2", "0.5,2", "--depth", "1,3", "--width", "8",
        "--sigma-b2", "0.05", "--steps", "60", "--lr", "0.1", "--batch-size", "0", "--json"]


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def without_seconds(result: dict) -> list[dict]:
    return [{k: v for k, v in cell.items() if k != "seconds"} for cell in result["cells"]]


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    started = cluster.start_local(workers=2, memory_mb=1024, folder=tmp_path_factory.mktemp("dask"))
    yield started
    started.close()


@pytest.fixture(scope="module")
def circles():
    return load_dataset("circles")


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The small grid on the command's own 2-worker LocalCluster: (cache folder, sweep file, JSON, stderr)."""
    folder = tmp_path_factory.mktemp("local")
    code, out, err = run_cli("sweep", *GRID, "--workers", "2", "--cache", str(folder / "cells"),
                             "--out", str(folder / "sweep.h5"))
    assert code == 0, err
    return folder / "cells", folder / "sweep.h5", json.loads(out), err


def slow_spec(seed: int, depths=(2,), columns=4) -> SweepSpec:
    """Cells of about a second each on an idle machine (600 full-batch steps of a 16-wide net on circles)."""
    base = Config(dataset="circles", activation="tanh", iterations=600, lr=0.05, seed=seed)
    return SweepSpec(base, tuple(np.linspace(1, 2, columns)), depths, 16, 0.05)


def test_a_local_cluster_and_a_real_scheduler_compute_the_same_sweep(local_sweep, real_cluster, tmp_path):
    cache, sweep_file, local, err = local_sweep
    assert len(local["cells"]) == 4 and len(err.strip().splitlines()) == 4 and "ETA" in err
    assert {(c["sigma_w2"], c["depth"]) for c in local["cells"]} == {(s, d) for s in (0.5, 2.0) for d in (1, 3)}
    address = real_cluster.client.scheduler.address
    code, out, err = run_cli("sweep", *GRID, "--scheduler", address, "--cache", str(tmp_path / "cells"),
                             "--out", str(tmp_path / "sweep.h5"))
    assert code == 0, err
    assert without_seconds(json.loads(out)) == without_seconds(local)
    # each cell trained into the cache: a run file (the engine's own) beside its figures
    assert len(list((tmp_path / "cells").glob("*.h5"))) == 4 and len(list(cache.glob("*.json"))) == 4


def test_cells_in_the_cache_are_not_trained_again(local_sweep, circles, tmp_path):
    cache, _, local, _ = local_sweep
    # every cell cached: no cluster is needed, so a scheduler nobody runs does not matter
    code, out, err = run_cli("sweep", *GRID, "--scheduler", f"tcp://127.0.0.1:{free_port()}", "--cache", str(cache),
                             "--out", str(tmp_path / "again.h5"))
    assert code == 0, err
    assert json.loads(out)["cells"] == local["cells"]  # the very figures, seconds too: read, not recomputed
    spec = SweepSpec(Config(dataset="circles", activation="tanh", iterations=60, lr=0.1, batch_size=0),
                     (0.5, 2.0), (1, 3), 8, 0.05)
    forgotten = cell_key(spec.cell_config(1, 0), circles.fingerprint())
    (cache / f"{forgotten}.json").unlink()
    missing = SweepRun(spec, circles, None, cache).find_cached()
    assert [(row, column) for row, column, _ in missing] == [(1, 0)]


def test_stop_cancels_the_cells_not_started(real_cluster, circles, tmp_path):
    spec = slow_spec(seed=11, columns=8)
    sweep = SweepRun(spec, circles, real_cluster.client, tmp_path)
    sweep.submit(sweep.find_cached())
    next(sweep.completed())
    begun = len(list(tmp_path.glob("*.json"))) + len(list(tmp_path.glob("*.partial")))  # done or computing
    sweep.cancel()
    assert len(list(sweep.completed())) == len(sweep.results) == 1  # nothing more comes after Stop
    client = real_cluster.client
    assert wait_for(lambda: not any(k.startswith("initlab-cell") for keys in client.processing().values()
                                    for k in keys), 10)
    # the cells begun by Stop finish into the cache, and so may one per worker that a worker freed took before the
    # cancel reached the scheduler (seen on a fast machine, and on a loaded one, where more had begun by Stop); the
    # other queued ones never start
    assert wait_for(lambda: not list(tmp_path.glob("*.partial")), 60)
    assert 1 <= len(list(tmp_path.glob("*.json"))) <= min(begun + 2, 7)


def test_a_worker_killed_mid_sweep_has_its_cell_computed_again(real_cluster, circles, tmp_path):
    """The dashboard's cluster fails a task whose worker died at once (allowed-failures 0): the sweep retries it."""
    client = real_cluster.client
    spec = slow_spec(seed=12)
    sweep = SweepRun(spec, circles, client, tmp_path)
    sweep.submit(sweep.find_cached())
    keys = {task_key(cell_key(spec.cell_config(0, c), circles.fingerprint())) for c in range(4)}
    assert wait_for(lambda: any(k in keys for ks in client.processing().values() for k in ks), 60)
    where = next(w for w, ks in client.processing().items() if any(k in keys for k in ks))
    os.kill(client.run(os.getpid, workers=[where])[where], signal.SIGKILL)
    assert len(list(sweep.completed())) == 4 and len(sweep.results) == 4
    client.wait_for_workers(2, timeout=60)


def wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("extra, env, fragment", [
    (["--sigma-w2", "1:4:30", "--depth", "1:20:20"], {}, "600 cells, over this server's cap of 400"),
    ([], {"INITLAB_MAX_SWEEP_CELLS": "3"}, "4 cells, over this server's cap of 3 (INITLAB_MAX_SWEEP_CELLS)"),
    (["--depth", "1,200"], {}, "INITLAB_MAX_LAYERS"),
    (["--depth", "1:x:3"], {}, "--depth takes START:STOP:COUNT"),
    (["--sigma-w2", "0,2"], {}, "every value must be a positive number"),
    (["--optimizer", "lbfgs"], {}, "choose sgd, momentum or adam"),
    (["--scheduler", "unreachable"], {}, "cannot reach the Dask scheduler"),
])
def test_a_bad_grid_exits_2_with_one_line(extra, env, fragment, tmp_path, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if extra[-1:] == ["unreachable"]:
        extra = ["--scheduler", f"tcp://127.0.0.1:{free_port()}"]
        monkeypatch.setattr(sweep_cli, "CONNECT_SECONDS", 1.0)  # nobody listens: no need to wait 10 s to know
    code, out, err = run_cli("sweep", *GRID, *extra, "--cache", str(tmp_path), "--out", str(tmp_path / "s.h5"))
    assert code == 2 and out == "" and fragment in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "s.h5").exists()


def test_the_sweep_file_reads_back_what_the_sweep_computed(local_sweep, tmp_path):
    _, sweep_file, local, _ = local_sweep
    sweep = read_sweep(sweep_file)
    assert sweep.spec.sigma_w2 == (0.5, 2.0) and sweep.spec.depths == (1, 3) and sweep.classes == 2
    for cell in local["cells"]:
        figures = sweep.results[sweep.spec.depths.index(cell["depth"]), sweep.spec.sigma_w2.index(cell["sigma_w2"])]
        assert {k: figures[k] for k in cell if k not in ("sigma_w2", "depth")} == {
            k: v for k, v in cell.items() if k not in ("sigma_w2", "depth")}
        assert figures["steps"][0] == 0 and figures["steps"][-1] == 60 and len(figures["losses"]) == 13
    # a partial sweep (Stop) keeps its holes; written again over the file, whole or not at all
    partial = SweepResults(sweep.spec, sweep.dataset_name, sweep.dataset_fingerprint, 2,
                           {(0, 1): sweep.results[0, 1]})
    copy = tmp_path / "partial.h5"
    write_sweep(copy, partial)
    assert read_uploaded_sweep(copy.read_bytes(), "mine.h5").results == partial.results
    broken = SweepResults(sweep.spec, "circles", "", 2, {(0, 0): {"steps": []}})  # fails part way through
    with pytest.raises(KeyError):
        write_sweep(copy, broken)
    assert read_sweep(copy).results == partial.results and [p.name for p in tmp_path.iterdir()] == ["partial.h5"]


def test_a_file_that_is_not_a_sweep_is_refused_by_name(tmp_path):
    code, _, err = run_cli("train", "--dataset", "circles", "--iterations", "5", "--out", str(tmp_path / "run.h5"))
    assert code == 0, err
    with pytest.raises(RunFileError, match="uploaded file 'run.h5' is not an Init Lab sweep file"):
        read_uploaded_sweep((tmp_path / "run.h5").read_bytes(), "run.h5")


def test_the_critical_line_where_the_theory_puts_it():
    assert critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, rel=1e-9)  # tanh'(0)^2 = 1 at q* = 0
    assert critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, rel=1e-9)  # He
    line_w2, line_b2 = critical_line("tanh")  # the same line, parametrised by q* instead
    assert critical_sigma_w2("tanh", 0.05) == pytest.approx(float(np.interp(0.05, line_b2, line_w2)), rel=1e-3)


def test_axes_are_read_as_written():
    assert parse_axis("1:4:4", "x") == (1.0, 2.0, 3.0, 4.0)
    assert parse_axis("5:100:4", "x", whole=True) == (5, 37, 68, 100)
    assert parse_axis("3,1,3", "x", whole=True) == (1, 3)
    assert math.isclose(parse_axis("0.05", "x")[0], 0.05)
