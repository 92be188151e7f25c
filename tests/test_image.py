"""The Docker image, proved without Docker: the file tree its COPY lines build, requirements.txt installed into a
fresh virtual environment (no system site-packages), the app started as its CMD says, in a browser.

A file the app needs that the Dockerfile forgets to copy makes this fail: the server runs from the temporary tree
with PYTHONPATH naming that tree, so it can import and read only what was copied. The second test removes data/ from the
tree and checks that the page then does fail, so the first one is not passing by accident.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest

from tests import serving

ROOT = serving.ROOT
pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright = pytest.importorskip("playwright.sync_api")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
        pending = ""
    return result


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def build_tree(dockerfile: Path, into: Path, *, skip: tuple[str, ...] = ()) -> tuple[Path, dict, list[str]]:
    """Copy what the Dockerfile's COPY lines copy into ``into`` (as the image's /); return (workdir, env, cmd)."""
    workdir, env, cmd = PurePosixPath("/"), {}, []
    for word, args in instructions(dockerfile):
        if word == "WORKDIR":
            workdir = workdir / args
        elif word == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
        elif word == "CMD":
            cmd = exec_form(args)
        elif word in ("COPY", "ADD"):
            parts = [p for p in exec_form(args) if not p.startswith("--")]
            assert word == "COPY" and not any(p.startswith("--from") for p in exec_form(args)), args
            *sources, dest = parts
            target = into / (workdir / dest).relative_to("/")
            for source in sources:
                if source.rstrip("/") in skip:
                    continue
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target if dest.endswith("/") and len(sources) == 1 else
                                    target / origin.name, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.partial"))
                else:
                    target.mkdir(parents=True, exist_ok=True) if dest.endswith("/") else None
                    shutil.copy2(origin, target / origin.name if dest.endswith("/") else target)
    return into / workdir.relative_to("/"), env, cmd


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with requirements.txt installed, as the image's `RUN pip install` does (about 20 s here)."""
    folder = tmp_path_factory.mktemp("venv")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    print(f"fresh venv + pip install -r requirements.txt: {time.perf_counter() - started:.1f} s")
    return folder


def serve_image(venv: Path, tmp_path: Path, skip: tuple[str, ...] = ()):
    """Start the image's CMD from its file tree; return (process, port)."""
    workdir, image_env, cmd = build_tree(ROOT / "Dockerfile", tmp_path / "image", skip=skip)
    assert cmd[:3] == ["streamlit", "run", "app/main.py"] and "--server.port=8501" in cmd, cmd
    port = serving.free_port()
    argv = [str(venv / "bin" / "streamlit"), *[a.replace("8501", str(port)).replace("0.0.0.0", "127.0.0.1")
                                                for a in cmd[1:]]]
    env = {**image_env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "INITLAB_CACHE_DIR": str(tmp_path / "cache"),  # the image's /cache volume
           # nothing computed in the background at start (the presets' probes and runs: minutes of both cores that
           # the other tests of a 2-core CI machine need); what is tested is that the tree serves the page
           "INITLAB_PRECOMPUTE_PRESETS": "0"}
    # The image's PYTHONPATH (for its Dask workers) names its WORKDIR: here that is the tree, which holds only
    # what the COPY lines copied, so a forgotten file still fails to import.
    assert env.get("PYTHONPATH") == "/app", env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(workdir)
    return serving.healthy(serving.start(argv, tmp_path / "server.log", cwd=workdir, env=env), port, 90), port


def page_text(port: int) -> tuple[str, int]:
    """The rendered app's text and its number of error boxes, from headless Chromium."""
    with playwright.sync_playwright() as p:
        browser = serving.launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            serving.wait_until_idle(page, 90_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            return page.inner_text('[data-testid="stApp"]'), page.locator('[data-testid="stAlertContentError"]').count()
        finally:
            browser.close()


def test_dockerfile_copies_only_what_the_app_needs():
    copied = [exec_form(args)[:-1] for word, args in instructions(ROOT / "Dockerfile") if word == "COPY"]
    assert sorted(s for sources in copied for s in sources) == [
        ".streamlit/", "app/", "core/", "data/", "requirements.txt"]
    words = [w for w, _ in instructions(ROOT / "Dockerfile")]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")  # runs as non-root
    assert "HEALTHCHECK" in words and "EXPOSE" in words
    _, env, _ = build_tree(ROOT / "Dockerfile", Path("/nonexistent"), skip=("app", "core", "data", ".streamlit",
                                                                           "requirements.txt"))
    # numba (cache=True) cannot write its cache beside the code as the non-root user: it must go somewhere writable
    assert env["NUMBA_CACHE_DIR"].startswith("/tmp/")


def test_the_image_tree_serves_the_app(venv, tmp_path):
    process, port = serve_image(venv, tmp_path)
    try:
        with serving.urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b'<div id="root">' in response.read()
        # the image's HEALTHCHECK: healthy once a worker can take a run. The tree's kernels are not compiled (the
        # image compiles them at build time; numba's cache is keyed by the code's path, new for every tree), and a
        # worker joins once it has compiled them: minutes on a loaded machine
        serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 240, process)
        text, errors = page_text(port)
    finally:
        serving.stop(process)
    log = (tmp_path / "server.log").read_text()
    assert "Init Lab" in text and "parameters" in text, text[:500]  # the network summary: data loaded, core ran
    assert errors == 0 and "Traceback" not in log, log[-2000:]
    assert not (tmp_path / "image" / "tests").exists()


def test_a_tree_missing_data_fails(venv, tmp_path):
    process, port = serve_image(venv, tmp_path, skip=("data",))
    try:
        text, errors = page_text(port)
    finally:
        serving.stop(process)
    assert errors >= 1 and "parameters ·" not in text
