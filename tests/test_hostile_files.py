"""Hostile HDF5 files, built here in tmp_path, through every way a file gets in: the page's two uploaders (AppTest),
read_run, `python -m core show` and `--data-dir`. Each must be refused with a message that names the user's file,
shows no byte of a secret planted beside it and no server path, and never takes the process down.

The sandbox itself (core.sandbox) is tested last: a parser that crashes, hangs or eats memory is a message.
"""

from __future__ import annotations

import io
import os
import zipfile
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.state import widget_key
from core import sandbox
from core.cli import main
from core.config import Config
from core.data import DatasetError, UploadedFile, load_course_h5, load_dataset, load_uploaded_files, load_uploaded_h5
from core.record import RunFileError, record
from core.run_reader import read_run, read_uploaded_run
from core.sweep import SweepSpec
from core.sweep_file import SweepResults, read_sweep, read_uploaded_sweep, write_sweep
from core.train import Training
from core.untrusted import ParseLimits, UntrustedFileError
from tests.conftest import shown_text
from tests.sandbox_jobs import crash_job, greedy_job, sleep_job, spin_job

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "page.py")
SECRET_TOKEN = os.urandom(12).hex()  # random per run: it cannot appear in a message unless it was read
SECRET = f"cookie_secret={SECRET_TOKEN};PASSWORD=hunter2-{SECRET_TOKEN}".encode()
M, N = 6, len(SECRET) // 6  # a course-layout train_set_x made of the secret's bytes
SMALL_RUN = Config(dataset="circles", layers=(4,), iterations=20, record_every=5)


# ------------------------------------------------------------------------------------------------ the corpus


@pytest.fixture
def secret(tmp_path) -> dict:
    """The planted secret as a plain file (for external storage) and as an HDF5 file (for links and VDS)."""
    plain = tmp_path / "secret.txt"
    plain.write_bytes(SECRET)
    h5 = tmp_path / "secret.h5"
    with h5py.File(h5, "w") as f:
        f["bytes"] = np.frombuffer(SECRET, np.uint8)
        f["pixels"] = np.frombuffer(SECRET[:M * N], np.uint8).reshape(M, N)
        f["floats"] = np.zeros((M, N))
    return {"plain": str(plain), "h5": str(h5), "dir": tmp_path}


def course_file(path: Path, build=None, attrs: dict | None = None) -> Path:
    """A small, valid course-layout file; ``build(f)`` then swaps in the hostile object."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["train_set_x"] = rng.integers(0, 256, (M, N), dtype=np.uint8)
        f["train_set_y"] = np.arange(M) % 2
        f["test_set_x"] = rng.integers(0, 256, (2, N), dtype=np.uint8)
        f["test_set_y"] = np.arange(2) % 2
        if build is not None:
            build(f)
        f.attrs.update(attrs or {})
    return path


def _external_storage(f, secret):
    del f["train_set_x"]
    f.create_dataset("train_set_x", shape=(M, N), dtype=np.uint8, external=[(secret["plain"], 0, M * N)])


def _external_link(f, secret):
    del f["train_set_x"]
    f["train_set_x"] = h5py.ExternalLink(secret["h5"], "pixels")


def _soft_link(f, secret):
    del f["train_set_x"]
    f["hidden"] = np.zeros((M, N))
    f["train_set_x"] = h5py.SoftLink("/hidden")


def _virtual_self(f, secret):  # maps a dataset of this very file in: old h5py reads it, and did
    del f["train_set_x"]
    f["source"] = np.ones((M, N))
    layout = h5py.VirtualLayout(shape=(M, N), dtype="f8")
    layout[:] = h5py.VirtualSource(".", "source", shape=(M, N))
    f.create_virtual_dataset("train_set_x", layout)


def _virtual_secret(f, secret):  # maps the secret file's bytes in
    del f["train_set_x"]
    layout = h5py.VirtualLayout(shape=(M, N), dtype="u1")
    layout[:] = h5py.VirtualSource(secret["h5"], "pixels", shape=(M, N))
    f.create_virtual_dataset("train_set_x", layout)


def _virtual_crash(f, secret):  # a source smaller than mapped: reading it through a file-like object segfaults h5py
    del f["train_set_x"]
    tiny = secret["dir"] / "tiny.h5"
    with h5py.File(tiny, "w") as source:
        source["train_set_x"] = np.zeros(3, np.uint8)
    layout = h5py.VirtualLayout(shape=(M, N), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tiny), "train_set_x", shape=(M, N))
    f.create_virtual_dataset("train_set_x", layout, fillvalue=0)


def _compression_bomb(f, secret):  # the issue's: 99k x 1000 zeros, under 1 MB on disk, 0.8 GB as float64
    del f["train_set_x"]
    f.create_dataset("train_set_x", data=np.zeros((99_000, 1000), np.uint8), chunks=(1000, 1000),
                     compression="gzip", compression_opts=9)
    del f["train_set_y"], f["test_set_x"]
    f["train_set_y"] = np.arange(99_000) % 2
    f["test_set_x"] = np.zeros((2, 1000), np.uint8)


def _huge_declared(f, secret):  # declared, never written: a few kB that would read as 100 GB
    del f["train_set_x"]
    f.create_dataset("train_set_x", shape=(M, 10**10), dtype="f8", chunks=(1, 10**6))


def _vlen_strings(f, secret):
    del f["train_set_x"]
    f.create_dataset("train_set_x", data=[b"cat"] * M, dtype=h5py.string_dtype())


def _compound_labels(f, secret):
    del f["train_set_y"]
    f["train_set_y"] = np.zeros(M, dtype=[("label", "i8"), ("weight", "f8")])


def _nan(f, secret):
    del f["train_set_x"]
    x = np.ones((M, N))
    x[2, 3] = np.nan
    f["train_set_x"] = x


def _inf(f, secret):
    del f["train_set_x"]
    x = np.ones((M, N))
    x[1, 1] = np.inf
    f["train_set_x"] = x


def _tiny_pixel_max(f, secret):  # both splits' pixels of 200 would become 2e302 and overflow the first layer
    for key, m in (("train_set_x", M), ("test_set_x", 2)):
        del f[key]
        f[key] = np.full((m, N), 200, np.uint8)
    f.attrs["pixel_max"] = 1e-300


DATASET_CORPUS = {  # file stem -> (what replaces train_set_x or a label column, what the message must say)
    "evil_external_storage": (_external_storage, "external storage"),
    "evil_external_link": (_external_link, "link into another file"),
    "evil_soft_link": (_soft_link, "soft link"),
    "evil_vds_self": (_virtual_self, "virtual dataset"),
    "evil_vds_secret": (_virtual_secret, "virtual dataset"),
    "evil_bomb": (_compression_bomb, "limit"),
    "evil_huge_shape": (_huge_declared, "limit"),
    "evil_vlen_strings": (_vlen_strings, "not numbers"),
    "evil_compound_labels": (_compound_labels, "compound"),
    "evil_nan": (_nan, "NaN"),
    "evil_inf": (_inf, "infinite"),
    "evil_tiny_pixel_max": (_tiny_pixel_max, "pixel_max"),
}


def dataset_corpus(folder: Path, secret: dict) -> dict[str, tuple[Path, str]]:
    folder.mkdir(exist_ok=True)
    return {stem: (course_file(folder / f"{stem}.h5", lambda f, build=build: build(f, secret)), fragment)
            for stem, (build, fragment) in DATASET_CORPUS.items()}


def run_file(path: Path) -> Path:
    for _ in record(Training(SMALL_RUN, load_dataset("circles")), path):
        pass
    return path


def _run_reason_external(f, secret):
    del f["status/stopped_reason"]
    f.create_dataset("status/stopped_reason", shape=(len(SECRET),), dtype=np.uint8,
                     external=[(secret["plain"], 0, len(SECRET))])


def _run_reason_external_link(f, secret):
    del f["status/stopped_reason"]
    f["status/stopped_reason"] = h5py.ExternalLink(secret["h5"], "bytes")


def _run_reason_soft_link(f, secret):
    del f["status/stopped_reason"]
    f["status/stopped_reason"] = h5py.SoftLink("/run/step")


def _run_reason_vds(f, secret):
    del f["status/stopped_reason"]
    layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
    layout[:] = h5py.VirtualSource(secret["h5"], "bytes", shape=(len(SECRET),))
    f.create_virtual_dataset("status/stopped_reason", layout)


def _run_compound_loss(f, secret):
    n = f["run/loss"].shape[0]
    del f["run/loss"]
    f["run/loss"] = np.zeros(n, dtype=[("value", "f8"), ("note", "S8")])


def _run_vlen_reason(f, secret):
    del f["status/stopped_reason"]
    f.create_dataset("status/stopped_reason", data=["diverged"], dtype=h5py.string_dtype())


def _run_bomb(f, secret):  # 2.4 GB of zero weights in a file of a few MB
    del f["params/initial/W1"]
    f.create_dataset("params/initial/W1", shape=(40_000, 8_000), dtype="f8", chunks=(1000, 1000),
                     compression="gzip")


def _run_many_snapshots(f, secret):  # 20,000 snapshots, 90 MB of zeros within the parse limit in a tiny file
    for group in ("stats", "run"):
        for name in list(f[group]):
            old = f[f"{group}/{name}"]
            shape, dtype = (20_000, *old.shape[1:]), old.dtype
            del f[f"{group}/{name}"]
            f.create_dataset(f"{group}/{name}", shape=shape, dtype=dtype, chunks=(1000, *shape[1:]),
                             compression="gzip")


def _run_wrong_shape(f, secret):  # a matrix that is not the network's
    del f["params/initial/W1"]
    f["params/initial/W1"] = np.zeros((3, 3))


RUN_CORPUS = {
    "evil_run_external": (_run_reason_external, "external storage"),
    "evil_run_external_link": (_run_reason_external_link, "link into another file"),
    "evil_run_soft_link": (_run_reason_soft_link, "soft link"),
    "evil_run_vds": (_run_reason_vds, "virtual dataset"),
    "evil_run_compound_loss": (_run_compound_loss, "compound"),
    "evil_run_vlen_reason": (_run_vlen_reason, "numbers"),
    "evil_run_bomb": (_run_bomb, "limit"),
    "evil_run_many_snapshots": (_run_many_snapshots, "20,000 snapshots"),
    "evil_run_wrong_shape": (_run_wrong_shape, "W1"),
}


def run_corpus(folder: Path, secret: dict) -> dict[str, tuple[Path, str]]:
    folder.mkdir(exist_ok=True)
    good = run_file(folder / "good.h5").read_bytes()
    corpus = {}
    for stem, (build, fragment) in RUN_CORPUS.items():
        path = folder / f"{stem}.h5"
        path.write_bytes(good)
        with h5py.File(path, "a") as f:
            build(f, secret)
        corpus[stem] = (path, fragment)
    return corpus


SECRET_FILE = re.compile(r"(?<![\w.-])secret\.(?:txt|h5)")  # the secret's file named on its own or in a path


def assert_clean(text: str, secret: dict) -> None:
    """No byte of the secret, and neither the secret's file nor its folder (a server path), in ``text``."""
    assert SECRET_TOKEN not in text and "hunter2" not in text, text
    assert not SECRET_FILE.search(text), text  # an upload's own name may end in it (evil_vds_secret.h5)
    assert "Traceback" not in text, text


# ---------------------------------------------------------------------------------------------- in the engine


def test_every_hostile_dataset_is_refused_as_an_upload_and_as_a_course_file(tmp_path, secret):
    for stem, (path, fragment) in dataset_corpus(tmp_path / "corpus", secret).items():
        with pytest.raises(DatasetError) as upload:
            load_uploaded_h5(path.read_bytes(), name=stem)
        message = str(upload.value)
        assert f"uploaded file {stem!r}" in message and fragment in message, (stem, message)
        assert str(tmp_path) not in message, message  # an upload is named as the user named it
        assert_clean(message, secret)
        with pytest.raises(DatasetError) as named:
            load_course_h5(path)
        assert str(path) in str(named.value) and fragment in str(named.value), (stem, str(named.value))
        assert_clean(str(named.value).replace(str(path), ""), secret)


def test_every_hostile_dataset_is_refused_through_the_multi_file_uploader_alone_and_zipped(tmp_path, secret):
    """The dashboard's uploader takes files or a zip of them: each path ends in the same sandboxed parse."""
    for stem, (path, fragment) in dataset_corpus(tmp_path / "corpus", secret).items():
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(f"{stem}.h5", path.read_bytes())
        for upload in (UploadedFile(f"{stem}.h5", path.read_bytes()), UploadedFile(f"{stem}.zip", archive.getvalue())):
            with pytest.raises(DatasetError) as refused:
                load_uploaded_files([upload])
            message = str(refused.value)
            assert fragment in message and str(tmp_path) not in message, (upload.name, message)
            assert_clean(message, secret)


def test_the_compression_bomb_is_refused_from_its_declared_size(tmp_path, secret):
    path = dataset_corpus(tmp_path / "corpus", secret)["evil_bomb"][0]
    assert path.stat().st_size < 1_000_000  # the point of a bomb: tiny on disk
    start = time.perf_counter()
    with pytest.raises(DatasetError, match="99,002,000 values together, 755.3 MB as float64"):
        load_uploaded_h5(path.read_bytes(), name="evil_bomb")
    assert time.perf_counter() - start < 20  # refused from its shape, not after decompressing 99 MB


def test_a_tiny_pixel_max_is_refused_and_a_matching_one_still_loads(tmp_path, secret):
    ok = course_file(tmp_path / "ok.h5", attrs={"pixel_max": 255})
    assert np.isfinite(load_course_h5(ok).x_train).all()
    path = dataset_corpus(tmp_path / "corpus", secret)["evil_tiny_pixel_max"][0]
    with pytest.raises(DatasetError, match="above its pixel_max of 1e-300") as info:
        load_course_h5(path)
    assert info.value.key == "pixel_max"


def test_every_hostile_run_file_is_refused_by_read_run(tmp_path, secret):
    for stem, (path, fragment) in run_corpus(tmp_path / "runs", secret).items():
        with pytest.raises(RunFileError) as info:
            read_run(path)
        message = str(info.value)
        assert str(path) in message and fragment in message, (stem, message)
        if stem != "evil_run_wrong_shape":  # a wrong weight is harmless unread; every other trap is refused unread
            with pytest.raises(RunFileError, match=fragment):  # a live run's read, which skips the weights
                read_run(path, weights=False)
        assert_clean(message.replace(str(path), ""), secret)
        with pytest.raises(RunFileError) as uploaded:
            read_uploaded_run(path.read_bytes(), f"{stem}.h5")
        assert f"uploaded file '{stem}.h5'" in str(uploaded.value) and str(tmp_path) not in str(uploaded.value)
        assert "train --out" not in str(uploaded.value)  # the page's words, not the CLI's


def test_the_unmodified_run_file_still_reads(tmp_path):
    run = read_run(run_file(tmp_path / "good.h5"))
    assert run.complete and [s.step for s in run.snapshots] == [0, 5, 10, 15, 20]


def _sweep_external(f, secret):
    f.create_dataset(SWEEP_TARGET, shape=(len(SECRET),), dtype=np.uint8,
                     external=[(secret["plain"], 0, len(SECRET))])


def _sweep_vds(f, secret):
    layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
    layout[:] = h5py.VirtualSource(secret["h5"], "bytes", shape=(len(SECRET),))
    f.create_virtual_dataset(SWEEP_TARGET, layout)


def _sweep_external_link(f, secret):
    f[SWEEP_TARGET] = h5py.ExternalLink(secret["h5"], "bytes")


def _sweep_soft_link(f, secret):
    f[SWEEP_TARGET] = h5py.SoftLink("/cells/done")


def _sweep_bomb(f, secret):  # 2.4 GB of zeros in a file of a few MB
    f.create_dataset(SWEEP_TARGET, shape=(40_000, 8_000), dtype="f8", chunks=(1000, 1000), compression="gzip")


SWEEP_TARGET = "cells/curve_loss"  # the largest array of a sweep file, replaced by each of the hostile kinds
SWEEP_CORPUS = {
    "evil_sweep_external": (_sweep_external, "external storage"),
    "evil_sweep_external_link": (_sweep_external_link, "link into another file"),
    "evil_sweep_soft_link": (_sweep_soft_link, "soft link"),
    "evil_sweep_vds": (_sweep_vds, "virtual dataset"),
    "evil_sweep_bomb": (_sweep_bomb, "limit"),
}


def test_every_hostile_sweep_file_is_refused_as_a_file_and_as_the_sweep_tabs_upload(tmp_path, secret):
    """The Sweep tab's uploader (read_uploaded_sweep) and read_sweep go through the same sandboxed parse as a run."""
    spec = SweepSpec(Config(dataset="circles", iterations=20), (1.0, 2.0), (2, 4), 4, 0.05)
    results = {cell: {"train_accuracy": 0.5, "test_accuracy": 0.5, "diverged": False, "loss": 0.6, "message": None,
                      "steps": [0, 10, 20], "seconds": 0.1, "losses": [0.7, 0.65, 0.6]} for cell in spec.cells()}
    good = tmp_path / "good.h5"
    write_sweep(good, SweepResults(spec, "circles", "f" * 16, 2, results))
    assert sorted(read_sweep(good).results) == sorted(results)  # the file the hostile ones are made from reads
    for stem, (build, fragment) in SWEEP_CORPUS.items():
        path = tmp_path / f"{stem}.h5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "a") as f:
            del f[SWEEP_TARGET]
            build(f, secret)
        with pytest.raises(RunFileError) as named:
            read_sweep(path)
        assert fragment in str(named.value), (stem, str(named.value))
        assert_clean(str(named.value).replace(str(path), ""), secret)
        with pytest.raises(RunFileError) as uploaded:
            read_uploaded_sweep(path.read_bytes(), f"{stem}.h5")
        message = str(uploaded.value)
        assert f"uploaded file '{stem}.h5'" in message and fragment in message, (stem, message)
        assert str(tmp_path) not in message
        assert_clean(message, secret)


# ------------------------------------------------------------------------------------------------- in the CLI


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out, err)
    return code, out.getvalue(), err.getvalue()


def test_show_refuses_every_hostile_run_file_in_one_line(tmp_path, secret):
    for stem, (path, fragment) in run_corpus(tmp_path / "runs", secret).items():
        code, out, err = cli("show", path)
        assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err, (stem, err)
        assert_clean(err.replace(str(path), ""), secret)


def test_data_dir_refuses_every_hostile_course_file_in_one_line(tmp_path, secret):
    for stem, (path, fragment) in dataset_corpus(tmp_path / "corpus", secret).items():
        folder = tmp_path / stem
        folder.mkdir()
        for name in ("train_catvnoncat.h5", "test_catvnoncat.h5"):
            (folder / name).write_bytes(path.read_bytes())
        code, out, err = cli("probe", "--dataset", "catvnoncat", "--data-dir", folder, "--layers", "3")
        assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err, (stem, err)
        assert "train_catvnoncat.h5" in err
        assert_clean(err.replace(str(folder), ""), secret)


# ------------------------------------------------------------------------------------------------ in the page


def page_text(at: AppTest) -> str:
    """Everything the page sends: every element's protobuf, as text."""
    parts = []

    def walk(node) -> None:
        if getattr(node, "proto", None) is not None:
            parts.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    # Shown as the reader sees it: the page escapes Markdown punctuation with backslashes and breaks autolinks with
    # an invisible word joiner (app/markup.py), which would otherwise hide a leaked path or secret from the checks.
    return "\n".join(parts).replace("\\342\\201\\240", "").replace("\u2060", "").replace("\\", "")


@pytest.fixture
def page(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "no-course-files"))
    return AppTest.from_file(APP, default_timeout=120).run()


def test_the_dataset_uploader_refuses_every_hostile_file(page, tmp_path, secret):
    at = page
    for stem, (path, fragment) in dataset_corpus(tmp_path / "corpus", secret).items():
        at.file_uploader(key="dataset_upload").upload(f"{stem}.h5", path.read_bytes(), "application/x-hdf5").run()
        assert not at.exception, (stem, [e.value for e in at.exception])
        errors = [shown_text(e.value) for e in at.sidebar.error]
        assert any(stem in e and fragment in e for e in errors), (stem, errors)
        assert at.session_state.uploaded_dataset is None and not at.session_state.config.dataset.startswith("upload")
        text = page_text(at)
        assert_clean(text, secret)
        assert str(tmp_path) not in text


def test_the_run_uploader_refuses_every_hostile_file(page, tmp_path, secret):
    at = page
    at.session_state["view"] = "Run file"
    at.run()
    for stem, (path, fragment) in run_corpus(tmp_path / "runs", secret).items():
        at.file_uploader(key="run_upload").upload(f"{stem}.h5", path.read_bytes(), "application/x-hdf5").run()
        assert not at.exception, (stem, [e.value for e in at.exception])
        errors = [shown_text(e.value) for e in at.error]
        assert any(f"{stem}.h5" in e and fragment in e for e in errors), (stem, errors)
        assert all("train --out" not in e for e in errors), errors
        assert at.session_state.replay is None
        at.session_state["view"] = "Training"  # where a replay, and the leaked stop reason, would show
        at.run()
        text = page_text(at)
        assert_clean(text, secret)
        assert str(tmp_path) not in text
        at.session_state["view"] = "Run file"
        at.run()


def test_a_session_keeps_one_uploaded_dataset(page, tmp_path):
    at = page
    for stem in ("first", "second"):
        path = course_file(tmp_path / f"{stem}.h5")
        at.file_uploader(key="dataset_upload").upload(f"{stem}.h5", path.read_bytes(), "application/x-hdf5").run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state.uploaded_dataset.name == "second"
    names = at.sidebar.selectbox(key=widget_key("dataset", at.session_state["widget_generation"]))
    assert [n for n in names.options if n.startswith("upload:")] == ["upload:second"]


PAGE_SURVIVES = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
at.file_uploader(key="dataset_upload").upload("crash.h5", open(sys.argv[2], "rb").read(), "application/x-hdf5").run()
print("ERRORS:", [e.value for e in at.sidebar.error])
"""


def test_the_process_running_the_page_survives_a_vds_that_crashes_h5py(tmp_path, secret):
    path = course_file(tmp_path / "crash.h5", lambda f: _virtual_crash(f, secret))
    crashes = subprocess.run([sys.executable, "-c", "import io, sys, h5py; h5py.File(io.BytesIO(open(sys.argv[1], "
                              "'rb').read()), 'r')['train_set_x'][()]", str(path)], capture_output=True)
    assert crashes.returncode == -11  # the h5py crash this guards against is real on this machine
    done = subprocess.run([sys.executable, "-c", PAGE_SURVIVES, APP, str(path)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "INITLAB_DATA_DIR": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "crash" in done.stdout and "virtual dataset" in done.stdout, done.stdout


# --------------------------------------------------------------------------------------------- the sandbox


def test_a_parser_that_crashes_is_a_message_and_this_process_lives_on():
    with pytest.raises(UntrustedFileError, match=r"'mine.h5' made the HDF5 reader crash \(SIGSEGV\)"):
        sandbox.parse(crash_job, label="'mine.h5'")


@pytest.mark.parametrize("job, fragment", [(spin_job, "more than 1 s of computing"), (sleep_job, "longer than 12 s")])
def test_a_parser_that_never_ends_is_stopped(job, fragment):
    start = time.perf_counter()
    with pytest.raises(UntrustedFileError, match=fragment):
        sandbox.parse(job, label="'slow.h5'", limits=ParseLimits(cpu_seconds=1))
    assert time.perf_counter() - start < 30


def test_a_parser_that_runs_out_of_memory_is_a_message():
    with pytest.raises(UntrustedFileError, match="needs more memory"):
        sandbox.parse(greedy_job, label="'big.h5'", limits=ParseLimits(max_mb=64))


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("INITLAB_MAX_PARSE_MB", "64")
    monkeypatch.setenv("INITLAB_MAX_PARSE_SECONDS", "5")
    assert ParseLimits.from_env() == ParseLimits(max_mb=64, cpu_seconds=5)
    monkeypatch.setenv("INITLAB_MAX_PARSE_MB", "lots")
    with pytest.raises(UntrustedFileError, match="INITLAB_MAX_PARSE_MB"):
        ParseLimits.from_env()
