"""The command line: JSON output a script can rely on, and one clear line (exit 2) for every mistake."""

import io
import json
import subprocess
import sys

import pytest

from core.cli import main
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
    (["train", "--dataset", "nosuchset"], "nosuchset"),
    (["train", "--dataset", "gaussian:2000", "--layers", "4000,4000"], "parameters, over the cap"),
    (["probe", "--dataset", "gaussian:1000", "--layers", "1000", "--max-memory-mb", "1"], "over the cap of 1 MB"),
    (["fly"], "invalid choice"),
])
def test_mistakes_give_one_line_and_exit_code_2(argv, fragment):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


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
