"""Several replicas, proved without Docker: two `streamlit run` processes sharing one run cache and one Dask
scheduler with its worker (as deploy/compose.yaml runs them), behind Debian's nginx running deploy/nginx.conf on
loopback ports. Pages opened through nginx work, and an identical run on the replica that did not compute it is
replayed from the shared cache instead of being trained again."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest

from app.serving import cluster
from app.state import to_query
from core.config import Config
from tests import serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]
if not (Path(serving.CHROMIUM).exists() and Path(serving.NGINX).exists()):
    pytest.skip("needs Debian's chromium and nginx (.ci/run installs them)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

SHARED_DATA = serving.ROOT.parent / "shared" / "data"
# the seed question's network and initialisers, trained briefly so the test stays short
SEED_QUICK = Config(dataset="shapes64", layers=(20, 7, 5), activation="relu", init="normal", init_scale=0.01,
                    rng="legacy", seed=1, lr=0.0075, iterations=300, record_every=25)


def cache_entries(cache: Path) -> dict[str, int]:
    """name -> inode of every stored run: a run computed again would arrive by rename, with a new inode."""
    return {p.name: p.stat().st_ino for p in cache.glob("*.h5")}


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 2000})
    page.goto(f"{url}/?{urlencode(to_query(SEED_QUICK, 'seed question'))}")
    serving.wait_until_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Init Lab" in page.inner_text('[data-testid="stApp"]')
    return page


def test_two_replicas_behind_nginx_share_the_run_cache(tmp_path):
    cache = tmp_path / "cache"
    shared = cluster.start_local(workers=1, memory_mb=1024, folder=tmp_path)
    env = {**os.environ, "INITLAB_CACHE_DIR": str(cache), "INITLAB_DATA_DIR": str(tmp_path / "no-course-data"),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "INITLAB_PRECOMPUTE_PRESETS": "0",
           "INITLAB_MAX_MEMORY_MB": "512",  # within the worker's 1024 MB, or the replicas are never ready
           cluster.SCHEDULER_ENV: shared.client.scheduler.address}
    env.pop("PYTHONPATH", None)
    ports, listen, servers = [serving.free_port(), serving.free_port()], serving.free_port(), []
    try:
        for i, port in enumerate(ports):
            servers.append(serving.start_app(port, tmp_path / f"app{i}.log", env))
        servers.append(serving.start_nginx(listen, ports, tmp_path / "nginx"))
        for port in (*ports, listen):  # each replica, and through nginx: the shared scheduler's worker takes runs
            serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 60)
        with sync_api.sync_playwright() as p:
            browser = serving.launch_chromium(p)
            try:
                via_nginx = [open_page(browser, f"http://127.0.0.1:{listen}") for _ in range(3)]
                first = serving.train_all_in_compare(via_nginx[0])
                assert len(first) == 2 and not any("run cache" in row for row in first)
                stored = cache_entries(cache)
                assert len(stored) == 2
                again = serving.train_all_in_compare(via_nginx[1])  # same replica (ip_hash): its shared runs
                assert [r.split("\t")[2:] for r in again] == [r.split("\t")[2:] for r in first]
                direct = [serving.train_all_in_compare(open_page(browser, f"http://127.0.0.1:{port}"))
                          for port in ports]
                for page in via_nginx:
                    assert page.locator('[data-testid="stException"]').count() == 0
            finally:
                browser.close()
    finally:
        for server in reversed(servers):
            serving.stop(server)
        shared.close()
    replayed = sorted(sum("(from the run cache)" in row for row in rows) for rows in direct)
    assert replayed == [0, 2], direct  # the replica that did not train them replayed both from the cache
    assert cache_entries(cache) == stored  # and nothing was trained and stored again
    assert list(cache.glob(".tmp/*")) == []
    access = (tmp_path / "nginx" / "nginx.out").read_text()
    assert "GET /_stcore/stream" in access and " 101 " in access  # WebSockets went through nginx
    for i in range(2):
        assert "Traceback" not in (tmp_path / f"app{i}.log").read_text()
