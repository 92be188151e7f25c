"""Run files: an exact round trip of every snapshot, the three ways a run ends, a killed writer's .partial, and
one clear RunFileError for every file that is not a run this Init Lab can read."""

import io
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.cli import main
from core.config import Config
from core.data import load_dataset
from core.record import FORMAT_VERSION, RunFileError, RunRecorder, params_every, partial_path, record
from core.run_reader import read_run
from core.train import Training

REPO = Path(__file__).resolve().parents[1]
SMALL = Config(dataset="circles", layers=(10, 5), iterations=60, record_every=7, seed=4)


def same_float(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


def assert_same_snapshots(recorded, engine):
    assert len(recorded) == len(engine)
    for r, e in zip(recorded, engine):
        assert (type(r.step), r.step) == (type(e.step), e.step)
        for name in ("loss", "train_accuracy", "test_accuracy"):
            assert same_float(getattr(r, name), getattr(e, name)), (e.step, name)
        assert list(r.stats) == list(e.stats) and list(r.edges) == list(e.edges)
        for mine, theirs in ((r.stats, e.stats), (r.edges, e.edges)):
            for key in theirs:
                assert mine[key].dtype == theirs[key].dtype and mine[key].shape == theirs[key].shape, key
                np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"step {e.step} {key}")


def assert_same_params(a, b):
    assert len(a.W) == len(b.W) and a.lsuv_iterations == b.lsuv_iterations
    assert [len(x) for x in (a.gamma, a.beta, a.running_mean, a.running_var)] == \
        [len(y) for y in (b.gamma, b.beta, b.running_mean, b.running_var)]
    for x, y in zip(a.W + a.b + a.gamma + a.beta + a.running_mean + a.running_var,
                    b.W + b.b + b.gamma + b.beta + b.running_mean + b.running_var):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("config", [
    SMALL,
    SMALL.replace(dataset="digits", activation="tanh", dtype="float32", optimizer="adam", lr=0.01),  # softmax
    SMALL.replace(init="lsuv", batch_size=64, bins=5),
    SMALL.replace(layers=(6, 6, 6), activation="tanh", norm="batch", residual=True, residual_scale=0.5,
                  optimizer="adam", lr=0.01),
    SMALL.replace(dataset="digits", layers=(6, 6), norm="layer", dtype="float32"),
])
def test_round_trip_gives_back_every_array(tmp_path, config):
    dataset = load_dataset(config.dataset)
    initial = Training(config, dataset).params.copy()  # drawn independently of the recorded run
    run = Training(config, dataset)
    snapshots = list(record(run, tmp_path / "run.h5"))
    assert (tmp_path / "run.h5").exists() and not partial_path(tmp_path / "run.h5").exists()

    back = read_run(tmp_path / "run.h5")
    assert back.config == config and back.complete and back.stopped_reason is None
    assert back.dataset_name == config.dataset and back.dataset_fingerprint == dataset.fingerprint()
    assert back.network_dims == run.network.dims and back.activations == run.network.activations
    assert [s.step for s in back.snapshots] == [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    assert_same_snapshots(back.snapshots, snapshots)
    assert_same_params(back.initial_params, initial)
    assert_same_params(back.final_params, run.params)
    assert back.versions["numpy"] == np.__version__ and back.versions["h5py"] == h5py.__version__
    assert len(back.seconds) == len(back.snapshots) and list(back.seconds) == sorted(back.seconds)
    assert back.seconds[0] >= 0


def test_a_read_without_the_weights_gives_the_same_statistics_and_no_weights(tmp_path):
    config = SMALL.replace(layers=(6, 6, 6), norm="batch")
    run = Training(config, load_dataset(config.dataset))
    snapshots = list(record(run, tmp_path / "run.h5"))
    back = read_run(tmp_path / "run.h5", weights=False)
    assert back.complete and back.config == config and back.network_dims == run.network.dims
    assert_same_snapshots(back.snapshots, snapshots)
    assert back.seconds == read_run(tmp_path / "run.h5").seconds
    assert back.initial_params is None and back.final_params is None and back.step_params == ()


def test_a_file_from_before_the_seconds_column_still_reads(tmp_path):
    write_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as f:  # what files written before it looked like
        del f["run/seconds"]
    back = read_run(tmp_path / "run.h5")
    assert back.complete and back.seconds is None and [s.step for s in back.snapshots][-1] == 60


def test_a_2d_run_keeps_the_weights_of_every_snapshot_for_its_boundary(tmp_path):
    run = Training(SMALL, load_dataset("circles"))
    seen = [(snapshot.step, run.params.copy()) for snapshot in record(run, tmp_path / "run.h5")]
    back = read_run(tmp_path / "run.h5")
    assert [step for step, _ in back.step_params] == [step for step, _ in seen] == [0, 7, 14, 21, 28, 35, 42, 49, 56,
                                                                                    60]
    for (_, got), (_, want) in zip(back.step_params, seen):
        assert_same_params(got, want)


def test_a_file_from_before_the_kept_weights_has_the_initial_and_final_ones(tmp_path):
    write_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as f:  # what files written before they were kept looked like
        del f["params/steps"]
    back = read_run(tmp_path / "run.h5")
    assert [step for step, _ in back.step_params] == [0, 60]
    assert_same_params(back.step_params[0][1], back.initial_params)
    assert_same_params(back.step_params[1][1], back.final_params)


@pytest.mark.parametrize("layers, every", [((10, 5), 7), ((100, 100), 7 * 3)])
def test_only_2d_runs_keep_weights_and_big_ones_fewer(layers, every):
    config = SMALL.replace(layers=layers, iterations=2000)  # 287 snapshots of 10,701 float64 weights: 2.9 x 8 MB
    assert params_every((2, *layers, 1), config) == every
    assert params_every((3, *layers, 1), config) == 0


def test_a_file_of_format_1_reads_as_a_plain_stack(tmp_path):
    """Files written before normalisation and residual blocks: format 1, and a config without those settings."""
    path = write_run(tmp_path / "run.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        f.attrs["config"] = json.dumps({k: v for k, v in json.loads(f.attrs["config"]).items()
                                        if k not in ("norm", "residual", "residual_scale", "zero_init_residual")})
    back = read_run(path)
    assert back.config == SMALL and back.config.norm == "none" and not back.config.residual
    assert back.final_params.gamma == [] and "gamma_mean" not in back.snapshots[-1].stats


def test_a_normalised_2d_run_keeps_gamma_beta_and_running_statistics_for_its_boundary(tmp_path):
    config = SMALL.replace(layers=(6, 6), norm="batch", batch_size=32)
    run = Training(config, load_dataset("circles"))
    seen = [(snapshot.step, run.params.copy()) for snapshot in record(run, tmp_path / "run.h5")]
    back = read_run(tmp_path / "run.h5")
    assert [step for step, _ in back.step_params] == [step for step, _ in seen]
    for (_, got), (_, want) in zip(back.step_params, seen):
        assert_same_params(got, want)
    assert not np.array_equal(back.step_params[-1][1].running_mean[0], back.step_params[0][1].running_mean[0])


def test_a_file_from_before_beta1_eps_and_gelu_tanh_still_reads(tmp_path):
    """Written when beta1 was called momentum, eps was fixed and the tanh GELU was called gelu."""
    config = SMALL.replace(activation="gelu_tanh", optimizer="momentum", beta1=0.8)
    list(record(Training(config, load_dataset("circles")), tmp_path / "run.h5"))
    with h5py.File(tmp_path / "run.h5", "a") as f:
        old = {k: v for k, v in json.loads(f.attrs["config"]).items() if k not in ("beta1", "eps")}
        f.attrs["config"] = json.dumps({**old, "momentum": 0.8, "activation": "gelu"})
        f.attrs["activations"] = json.dumps(["gelu", "gelu"])
    back = read_run(tmp_path / "run.h5")
    assert back.config == config and back.config.eps == 1e-8
    assert back.activations == ("gelu_tanh", "gelu_tanh")


def test_diverged_run_is_finished_with_its_reason(tmp_path):
    config = SMALL.replace(layers=(16, 16, 16), activation="linear", init="normal", init_scale=3.0, lr=50.0,
                           iterations=500, record_every=1)
    run = Training(config, load_dataset("circles"))
    snapshots = list(record(run, tmp_path / "run.h5"))
    assert run.stopped_reason and "diverged" in run.stopped_reason
    back = read_run(tmp_path / "run.h5")
    assert back.complete and back.stopped_reason == run.stopped_reason
    assert_same_snapshots(back.snapshots, snapshots)


def test_closing_the_stream_stops_the_run_and_finishes_the_file(tmp_path):
    run = Training(SMALL, load_dataset("circles"))
    stream = record(run, tmp_path / "run.h5")
    taken = list(itertools.islice(stream, 3))
    stream.close()
    back = read_run(tmp_path / "run.h5")
    assert back.complete and back.stopped_reason == "stopped by the user at step 14"
    assert_same_snapshots(back.snapshots, taken)
    assert_same_params(back.final_params, run.params)


def test_a_caller_that_stops_the_run_for_its_own_reason_records_that_reason(tmp_path):
    reason = "stopped at step 14: this server stops a training after 1 s (INITLAB_MAX_TRAINING_SECONDS)"
    stream = record(Training(SMALL, load_dataset("circles")), tmp_path / "run.h5", stop_reason=lambda: reason)
    list(itertools.islice(stream, 3))
    stream.close()
    assert read_run(tmp_path / "run.h5").stopped_reason == reason
    stream = record(Training(SMALL, load_dataset("circles")), tmp_path / "user.h5", stop_reason=lambda: None)
    list(itertools.islice(stream, 3))
    stream.close()  # no reason of the caller's: the user stopped it
    assert read_run(tmp_path / "user.h5").stopped_reason == "stopped by the user at step 14"


def test_a_run_that_fails_leaves_an_incomplete_partial(tmp_path):
    run = Training(SMALL, load_dataset("circles"))
    with pytest.raises(RuntimeError):
        with RunRecorder(tmp_path / "run.h5", run) as recorder:
            taken = list(itertools.islice(run, 4))
            for snapshot in taken:
                recorder.add(snapshot)
            raise RuntimeError("the run broke")
    assert not (tmp_path / "run.h5").exists()
    back = read_run(partial_path(tmp_path / "run.h5"))
    assert not back.complete and back.final_params is None and back.stopped_reason is None
    assert_same_snapshots(back.snapshots, taken)


WRITER = """
import sys
from core.config import Config
from core.data import load_dataset
from core.record import record
from core.train import Training
config = Config.from_json(sys.argv[1])
for _ in record(Training(config, load_dataset(config.dataset)), sys.argv[2], flush_seconds=0.05):
    pass
"""


def test_a_writer_killed_mid_run_leaves_a_readable_partial(tmp_path):
    config = SMALL.replace(iterations=100_000, record_every=50)
    partial = partial_path(tmp_path / "run.h5")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, config.to_json(), str(tmp_path / "run.h5")], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while seen < 30 and time.monotonic() < deadline and writer.poll() is None:
            time.sleep(0.05)
            try:
                seen = len(read_run(partial).snapshots)  # read live, as a dashboard would
            except RunFileError:
                pass  # not created yet
        assert seen >= 30, "the writer never flushed 30 steps"
    finally:
        writer.kill()  # SIGKILL: no clean-up runs
        writer.wait()
    back = read_run(partial)
    assert not back.complete and back.final_params is None and back.config == config
    assert len(back.snapshots) >= seen
    fresh = list(itertools.islice(Training(config, load_dataset("circles")), len(back.snapshots)))
    assert_same_snapshots(back.snapshots, fresh)


def write_run(path: Path) -> Path:
    for _ in record(Training(SMALL, load_dataset("circles")), path):
        pass
    return path


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.unlink(), "no run file"),
    (lambda p: p.write_text("step,loss\n0,0.69\n"), "not an HDF5 file"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated or damaged"),
    (lambda p: h5py.File(p, "w").create_dataset("train_set_x", data=np.zeros(3)), "not an Init Lab run file"),
])
def test_unreadable_files_raise_one_clear_error(tmp_path, damage, fragment):
    path = write_run(tmp_path / "run.h5")
    damage(path)
    with pytest.raises(RunFileError, match=fragment):
        read_run(path)


def test_a_newer_format_version_is_refused(tmp_path):
    path = write_run(tmp_path / "run.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(RunFileError, match=f"format {FORMAT_VERSION + 1}, newer than this Init Lab reads"):
        read_run(path)


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_train_out_then_show(tmp_path):
    path = tmp_path / "run.h5"
    code, out, err = run_cli("train", "--dataset", "moons", "--layers", "8,4", "--activation", "tanh",
                             "--init", "normal", "--scale", "0.01", "--iterations", "40", "--record-every", "20",
                             "--out", path)
    assert code == 0, err
    assert f"recorded to {path}" in out
    run = read_run(path)
    assert [s.step for s in run.snapshots] == [0, 20, 40]

    code, out, err = run_cli("show", path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"run file {path}: complete"
    assert Config.from_json(lines[1].removeprefix("config ")) == run.config
    assert "steps recorded: 3 (steps 0 to 40)" in out and "stop reason: none" in out
    last = run.snapshots[-1]
    assert f"cost {last.loss:.6g}, train accuracy {last.train_accuracy:.4f}" in out
    table = lines[lines.index(next(l for l in lines if l.lstrip().startswith("layer"))) + 1:][:3]
    for i, row in enumerate(table):  # layer, units, std Z first, std Z last
        cells = row.split()
        assert int(cells[0]) == i + 1 and int(cells[1]) == run.network_dims[i + 1]
        assert float(cells[2]) == pytest.approx(run.snapshots[0].stats["z_std"][i], rel=1e-3)
        assert float(cells[3]) == pytest.approx(last.stats["z_std"][i], rel=1e-3)


def test_cli_show_reports_bad_files_in_one_line(tmp_path):
    (tmp_path / "notes.h5").write_text("hello")
    for target, fragment in ((tmp_path / "missing.h5", "no run file"), (tmp_path / "notes.h5", "not an HDF5")):
        code, out, err = run_cli("show", target)
        assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err


def test_cli_train_out_to_an_unwritable_place_is_one_line(tmp_path):
    code, _, err = run_cli("train", "--iterations", "5", "--out", tmp_path / "no" / "such" / "dir" / "run.h5")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
