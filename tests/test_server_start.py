"""The server's GET /ready against a shared Dask scheduler (as deploy/compose.yaml runs it): a real `dask scheduler`,
a `dask worker` started and the scheduler stopped while one `streamlit run app/main.py` answers. The server starting
its own cluster before any page opens is checked in tests/test_browser.py, whose server is that one."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from app.serving import cluster
from tests import serving

pytestmark = pytest.mark.slow


def answer(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, type(e).__name__


def answers(url: str, expected: tuple[int, str], timeout: float) -> tuple[int, str]:
    """Poll ``url`` until it answers ``expected`` (status, start of the body); the last answer."""
    end = time.monotonic() + timeout
    while True:
        status, body = answer(url)
        if (status == expected[0] and body.startswith(expected[1])) or time.monotonic() > end:
            return status, body
        time.sleep(0.25)


def test_ready_answers_503_with_the_reason_until_a_worker_can_take_a_run(tmp_path):
    env = {**os.environ, **cluster.worker_environment(tmp_path)}
    common = dict(cwd=serving.ROOT, env=env, stdin=subprocess.DEVNULL)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = serving.start([cluster.dask_command(), "scheduler", "--scheduler-file", str(scheduler_file),
                               "--host", "127.0.0.1", "--port", "0", "--no-dashboard"], tmp_path / "scheduler.log",
                              cwd=serving.ROOT, env=env)
    worker = app = None
    try:
        cluster.wait_for_file(scheduler_file, scheduler)
        address = json.loads(scheduler_file.read_text())["address"]
        port = serving.free_port()
        app = serving.start_app(port, tmp_path / "app.log", {
            **os.environ, cluster.SCHEDULER_ENV: address, "INITLAB_CACHE_DIR": str(tmp_path / "cache"),
            "INITLAB_PRECOMPUTE_PRESETS": "0", "INITLAB_MAX_MEMORY_MB": "256"})
        ready = f"http://127.0.0.1:{port}/ready"
        status, body = answers(ready, (503, "not ready: the Dask scheduler has no worker"), 60)
        assert (status, body) == (503, "not ready: the Dask scheduler has no worker"), body
        worker = subprocess.Popen([cluster.dask_command(), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--memory-limit", "512MiB", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT, start_new_session=True, **common)
        assert answers(ready, (200, "ready"), 60) == (200, "ready")
        serving.stop(scheduler)
        status, body = answers(ready, (503, "not ready: the Dask scheduler cannot be reached"), 60)
        assert status == 503 and body.startswith("not ready: the Dask scheduler cannot be reached"), body
        assert "\n" not in body.strip() and address.split("//")[1] not in body  # one line, no server address
        assert answer(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok")  # liveness: the web server answers
    finally:
        for process in (app, worker, scheduler):
            if process is not None:
                serving.stop(process)


def test_the_server_loads_the_pages_modules_without_running_the_page():
    """What `load_page` does at the server's start, in a fresh interpreter: the sidebar, the tabs and the charts are
    imported (the first page then finds them loaded), and the page itself is not run outside Streamlit (its first
    call, st.set_page_config, is counted)."""
    script = ("import sys\n"
              "import streamlit as st\n"
              "runs = []\n"
              "st.set_page_config = lambda *args, **kwargs: runs.append(1)\n"
              "from app.serving.server import load_page\n"
              "wanted = ('app.tabs.init', 'app.charts.figures', 'app.sidebar')\n"
              "before = sorted(m for m in wanted if m in sys.modules)\n"
              "load_page()\n"
              "print(before, sorted(m for m in wanted if m in sys.modules), len(runs))\n")
    assert serving.fresh_python(script).strip() == "[] ['app.charts.figures', 'app.sidebar', 'app.tabs.init'] 0"


@pytest.mark.parametrize("asked_at_start", [False, True])
def test_streamlits_repl_question_is_asked_at_the_start_not_at_the_first_element(asked_at_start):
    """Streamlit asks, at a process's first element, whether it runs in a REPL, by walking the whole stack with
    inspect.stack() (0.11 s of CPU on the first student's page); the server asks at its start, and the first element
    then walks nothing. Without the start's question (the first case) it would: so a Streamlit release that moves
    the question elsewhere fails the second case."""
    script = ("import inspect\n"
              "import streamlit as st\n"
              "from app.serving.server import ask_streamlits_repl_question\n"
              f"if {asked_at_start}:\n"
              "    ask_streamlits_repl_question()\n"
              "walks = []\n"
              "inspect.stack = lambda *args, **kwargs: walks.append(1) or [inspect.FrameInfo(None, '', 0, '', None, "
              "None)]\n"
              "st.markdown('the first element')\n"
              "print(len(walks))\n")
    assert serving.fresh_python(script).strip().splitlines()[-1] == ("0" if asked_at_start else "1")
