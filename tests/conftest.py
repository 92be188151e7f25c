"""Shared fixtures: the course's data (from ../shared/data, never copied into the repo), small datasets, and an
in-process Dask cluster for the dashboard's run store."""

import fcntl
import os
import re
from pathlib import Path

import pytest

# The suite runs on two processes (pytest -n 2), beside the servers and browsers its tests start: with OpenBLAS's
# default of a thread per core, each process's BLAS threads spin while waiting for a core the others hold (two seed
# runs side by side took 24-27 s instead of 4.5 s). One BLAS thread per process, set before NumPy loads it; the
# servers and CLIs the tests start inherit it. Benchmarks set their own threads.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

from core.data import load_dataset  # noqa: E402 - after the threads are set
from core.train import Training  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def cat_data():
    if not (SHARED_DATA / "train_catvnoncat.h5").exists():
        pytest.skip(f"the course's cat files are not in {SHARED_DATA}")
    return load_dataset("catvnoncat", SHARED_DATA)


@pytest.fixture(scope="session")
def seed_question_runs(tmp_path_factory) -> Path | None:
    """A run cache folder holding the seed question's two Compare runs on the course's cat files (None without
    them), trained once per test session: the lesson, the browser's Compare tab and the load test all show these
    runs, and each pair of 2,500-step trainings took 30-90 s of CI under load. The folder is shared by the
    session's xdist processes; the first to ask trains, the others wait on the lock and find the files."""
    if not (SHARED_DATA / "train_catvnoncat.h5").exists():
        return None
    from tests.load.load_test import warm_up

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "seed-question-runs"
    folder.mkdir(exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        warm_up(folder, SHARED_DATA)
    return folder


CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)(.*?)(?<!`)\1(?!`)", re.DOTALL)  # shown as typed: no escape, no link


def shown_text(markdown: str) -> str:
    """What a reader sees of Markdown text without syntax: CommonMark drops the backslash before ASCII punctuation
    (outside code spans, which show their content as typed, less one space of padding each side), and the word
    joiner (U+2060) is invisible."""
    out, at = [], 0
    for span in CODE_SPAN.finditer(markdown):
        content = span.group(2)
        if len(content) > 1 and content[0] == content[-1] == " ":
            content = content[1:-1]
        out += [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown[at:span.start()]), content]
        at = span.end()
    out.append(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown[at:]))
    return "".join(out).replace("\u2060", "")


class CountingFactory:
    """A training factory for the run cache that counts how many trainings it was asked to build."""

    def __init__(self):
        self.calls = 0

    def __call__(self, config, dataset):
        self.calls += 1
        return Training(config, dataset)


@pytest.fixture(scope="session")
def dask_client():
    """A Dask cluster in this process (threads, no worker processes: 0.2 s to start), shared by the tests that
    drive the run store or the page. Its runs are Dask tasks as in production; tests/test_compute.py has the real
    scheduler and worker processes."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):  # as the server's own (cluster.py)
        cluster = LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    yield client
    from app.serving.server import close_run_store

    close_run_store()  # the store a test built: its client would try to reach the closed cluster
    client.close()
    cluster.close()
