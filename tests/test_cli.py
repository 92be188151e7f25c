"""The command line: JSON output a script can rely on, and one clear line (exit 2) for every mistake."""

import io
import json
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from core.cli import main
from core.config import Config
from core.data import load_dataset
from core.stats import latest_test_accuracy
from core.train import Training
from tests.conftest import SHARED_DATA


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_train_json_reports_costs_and_accuracies():
    code, out, err = run_cli("train", "--dataset", "circles", "--layers", "10,5", "--init", "he_normal",
                             "--rng", "legacy", "--seed", "3", "--lr", "0.01", "--iterations", "200",
                             "--record-every", "50", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [step for step, _ in result["costs"]] == [0, 50, 100, 150, 200]
    assert result["costs"][-1][1] < result["costs"][0][1]
    assert 0 <= result["train_accuracy"] <= 1 and 0 <= result["test_accuracy"] <= 1
    assert result["stopped_reason"] is None and result["seconds"] > 0
    assert result["config"]["init"] == "he_normal" and result["network"] == [2, 10, 5, 1]


def test_train_recording_every_step_reports_the_latest_measured_test_accuracy_and_holds_no_snapshots():
    """Test accuracy has its own cadence (core/train.py): a run that diverges between two measurements reports the
    latest measured one, as the engine's own snapshots give it. What the command holds while training does not grow
    with the steps it records: past the JSON's costs, no snapshot is kept (each held 11 kB here)."""
    argv = ["train", "--dataset", "circles", "--layers", "16,16,16", "--activation", "linear", "--init", "normal",
            "--scale", "0.5", "--lr", "0.85", "--iterations", "500", "--record-every", "1", "--json"]
    with np.errstate(all="ignore"):
        code, out, err = run_cli(*argv)
        snapshots = list(Training(Config(dataset="circles", layers=(16, 16, 16), activation="linear", init="normal",
                                         init_scale=0.5, lr=0.85, iterations=500, record_every=1),
                                  load_dataset("circles")))
    assert code == 0, err
    result = json.loads(out)
    assert "diverged" in result["stopped_reason"] and math.isnan(snapshots[-1].test_accuracy)
    assert result["test_accuracy"] == latest_test_accuracy(snapshots)
    assert [step for step, _ in result["costs"]] == [s.step for s in snapshots]

    def held(iterations: int) -> int:
        tracemalloc.start()
        code, out, err = run_cli("train", "--dataset", "circles", "--layers", "8,4", "--iterations", str(iterations),
                                 "--record-every", "1", "--json")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert code == 0, err
        return peak

    held(100)  # the first run of this network loads its kernels: hundreds of kB
    assert held(1100) - held(100) < 1000 * 2_000  # the costs and the JSON: ~0.1 kB a step


def test_adam_settings_are_flags_and_momentum_says_what_it_is():
    code, out, err = run_cli("train", "--dataset", "circles", "--layers", "4", "--optimizer", "adam", "--beta1",
                             "0.8", "--beta2", "0.99", "--eps", "1e-6", "--iterations", "3", "--json")
    assert code == 0, err
    config = json.loads(out)["config"]
    assert (config["beta1"], config["beta2"], config["eps"]) == (0.8, 0.99, 1e-6)
    code, _, err = run_cli("train", "--eps", "0")
    assert code == 2 and "eps must be > 0" in err
    done = subprocess.run([sys.executable, "-m", "core", "train", "--help"], capture_output=True, text=True)
    help_text = " ".join(done.stdout.split())
    assert "v = beta1 v + (1 - beta1) g" in help_text and "learning rate times 1 - beta1" in help_text


def test_train_says_why_the_course_prints_cost_inf_at_step_0():
    code, out, err = run_cli("train", "--dataset", "circles", "--layers", "10,5", "--init", "normal", "--scale", "10",
                             "--rng", "legacy", "--seed", "3", "--iterations", "10", "--record-every", "10")
    assert code == 0, err
    lines = out.splitlines()
    assert float(lines[1].split(":")[1]) == pytest.approx(1773.59, abs=0.005)  # as the issue reports it
    assert lines[2].startswith("note: at step 0 the course's cost") and "is inf here" in lines[2]


def test_probe_json_has_one_row_per_layer():
    code, out, _ = run_cli("probe", "--dataset", "gaussian:100", "--layers", "50,50,50", "--activation", "tanh",
                           "--init", "normal", "--scale", "0.01", "--json")
    result = json.loads(out)
    rows = result["layers"]
    assert code == 0 and len(rows) == 4
    stds = [r["z_std"] for r in rows[:3]]
    assert stds[0] > stds[1] > stds[2]  # a tiny scale shrinks the signal layer after layer
    assert set(rows[0]) >= {"z_mean", "z_std", "a_mean", "a_std", "dz_std", "dw_std", "dead_fraction",
                            "saturated_fraction"}


def test_probe_of_a_huge_initial_scale_prints_numbers_not_nan():
    """Weights N(0, 1000^2) through 40 relu layers of 500: values reach 1e168, their squares overflow. Every
    column is a number; a 76-layer network, whose values do overflow, stops with why."""
    argv = ["probe", "--dataset", "gaussian:500", "--activation", "relu", "--init", "normal", "--scale", "1000"]
    code, out, err = run_cli(*argv, "--layers", "500x40")
    assert code == 0, err
    assert "nan" not in out and "inf" not in out and "note:" not in out
    output_row = next(line for line in out.splitlines() if line.split()[:1] == ["41"])  # the table's output layer
    assert "e+16" in output_row  # its z_std, ~1e171
    code, out, err = run_cli(*argv, "--layers", "500x76")
    assert code == 2 and "at initialisation" in err and "overflowed float64" in err and "smaller initial scale" in err


def test_probe_table_matches_the_readme(cat_data):
    code, out, _ = run_cli("probe", "--dataset", "catvnoncat", "--data-dir", str(SHARED_DATA), "--layers",
                           "20,7,5", "--init", "normal", "--scale", "0.01", "--rng", "legacy", "--json")
    assert code == 0
    result = json.loads(out)
    assert [r["z_std"] for r in result["layers"]] == pytest.approx([0.503, 0.0187, 0.000361, 4.45e-6], rel=0.01)
    assert "4.4e-6" in result["verdict"]["headline"] and "34%" in result["verdict"]["headline"]


def test_probe_table_ends_with_the_verdict():
    code, out, _ = run_cli("probe", "--dataset", "circles", "--layers", "10,5", "--init", "zeros")
    assert code == 0
    verdict = out.split("\n\n", 1)[1]
    assert verdict.startswith("Will not learn") and "symmetry is never broken" in verdict


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--init", "bogus"], "init='bogus' is not known"),
    (["train", "--layers", "0"], "at least 1"),
    (["train", "--layers", "20,x"], "list of whole numbers"),
    (["train", "--lr", "-0.1"], "lr must be > 0"),
    (["train", "--scale", "nan"], "init_scale must be a finite number"),
    (["train", "--iterations", "ten"], "invalid int value"),
    (["train", "--optimizer", "sgdx"], "optimizer='sgdx' is not known"),
    (["train", "--dataset", "catvnoncat", "--data-dir", "/nonexistent"], "--data-dir"),
    (["probe", "--dataset", "catvnoncat", "--data-dir", "~initlab-no-such-user/data"],
     "not in the folder ~initlab-no-such-user/data (which does not exist)"),
    (["train", "--dataset", "nosuchset"], "nosuchset"),
    (["train", "--dataset", "gaussian:2000", "--layers", "4000,4000"], "parameters, over the cap"),
    (["probe", "--dataset", "gaussian:1000", "--layers", "1000", "--max-memory-mb", "1"], "over the cap of 1 MB"),
    (["probe", "--layers", "1x1000"], "1,001 layers (1,000 hidden and the output) is over the cap of 100 layers "
                                      "(set by INITLAB_MAX_LAYERS); use at most 99 hidden layers"),
    (["probe", "--layers", "1x2000"], "at most 1000 hidden layers, and fewer where INITLAB_MAX_LAYERS"),
    (["fly"], "invalid choice"),
    (["train", "--norm", "group"], "norm='group' is not known"),
    (["probe", "--residual", "--layers", "10,5"], "layer 2 has 5 units but adds the output of layer 1"),
    (["train", "--zero-init-residual", "--layers", "8x3", "--activation", "tanh"], "needs residual=true"),
    (["theory", "--norm", "batch", "--sigma-w2", "2"], "--sigma-w2 maps a stack of identical plain layers: --norm"),
    (["theory", "--residual", "--sigma-w2", "2"], "identical plain layers: --residual do not apply"),
    (["theory", "--norm", "layer"], "no mean-field prediction for layer norm"),
])
def test_mistakes_give_one_line_and_exit_code_2(argv, fragment):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("target, fragment", [
    ("folder", "names a folder"),
    ("folder/", "names a folder"),
    ("new-folder/", "names a folder"),
    ("", "needs a file name"),
    ("pipe", "not a regular file"),
    ("missing/run.h5", "the folder"),
    ("plain.txt/run.h5", "is a file, not a folder"),
])
def test_an_out_the_run_cannot_end_in_is_refused_before_training(tmp_path, monkeypatch, target, fragment):
    """The run is written to OUT.partial and renamed to OUT at the end: a folder there gave a traceback after the
    whole training, an empty name recorded nothing without a word, and a pipe (as root, a device) was replaced."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain.txt").write_text("not a folder")
    os.mkfifo(tmp_path / "pipe")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli("train", "--iterations", "1", "--out", target)
    assert code == 2 and out == ""
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "pipe").is_fifo()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder, so none is unwritable here")
def test_an_out_in_a_folder_that_cannot_be_written_is_refused(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    code, _, err = run_cli("train", "--iterations", "1", "--out", str(folder / "run.h5"))
    assert code == 2 and "is not writable" in err and err.count("\n") == 1


def test_a_file_system_error_while_recording_is_one_line(tmp_path, monkeypatch):
    """A file the checks let through can still fail (the disk fills, the folder goes): one line, not a traceback."""
    def full_disk(source, target):
        raise OSError(28, "No space left on device", str(source))
    monkeypatch.setattr("core.record.os.replace", full_disk)
    code, _, err = run_cli("train", "--iterations", "1", "--out", str(tmp_path / "run.h5"))
    assert code == 2 and "No space left on device" in err and err.count("\n") == 1 and "Traceback" not in err


def test_malformed_data_file_is_reported(tmp_path):
    (tmp_path / "train_catvnoncat.h5").write_bytes(b"not an hdf5 file")
    (tmp_path / "test_catvnoncat.h5").write_bytes(b"not an hdf5 file")
    code, _, err = run_cli("train", "--dataset", "catvnoncat", "--data-dir", str(tmp_path))
    assert code == 2 and "train_catvnoncat.h5" in err


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "core", "train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--record-every" in done.stdout
    done = subprocess.run([sys.executable, "-m", "core", "train", "--layers", "-3"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr


def test_theory_map_reads_the_former_gelu_name_as_the_tanh_approximation():
    maps = {}
    for name in ("gelu", "gelu_tanh", "gelu_erf"):
        code, out, err = run_cli("theory", "--activation", name, "--sigma-w2", "1.5", "--sigma-b2", "0.05",
                                 "--depth", "5", "--json")
        assert code == 0, err
        maps[name] = json.loads(out)
    assert maps["gelu"]["q_star"] == maps["gelu_tanh"]["q_star"]
    assert maps["gelu"]["q_star"] != maps["gelu_erf"]["q_star"]


def test_norm_and_residual_flags_reach_the_run_and_the_probe():
    code, out, err = run_cli("train", "--dataset", "circles", "--layers", "8x3", "--activation", "tanh", "--norm",
                             "layer", "--residual", "--residual-scale", "0.5", "--zero-init-residual",
                             "--iterations", "2", "--json")
    assert code == 0, err
    config = json.loads(out)["config"]
    assert (config["norm"], config["residual"], config["residual_scale"], config["zero_init_residual"]) == \
        ("layer", True, 0.5, True)
    code, out, err = run_cli("probe", "--dataset", "circles", "--layers", "8x3", "--norm", "batch", "--json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    assert all(r["z_pre_std"] > 0 and r["dgamma_norm"] > 0 for r in rows[:3])
    assert rows[3]["z_pre_std"] is None  # the output layer is not normalised
