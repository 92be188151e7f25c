"""Hostile neighbours: K sessions each training a run at the server's caps, then one more student's small run.

The figure the compute tier is judged by (issue 17): with 5 sessions at the caps, a 6th student's 300-step run must
start within 5 s. Each of the K sessions opens the page on the issue's own URL (a 2048-wide network on 4096 gaussian
examples, 100,000 steps, one snapshot at the end), opens Training and presses Start; once every one of them shows
its run training (or waiting for a worker), the last student opens a 300-step run on the circles and presses Start.
Printed: how long until that student's page says its run is training (a first snapshot has arrived), how long
until it finished, and the server's workers. The students speak Streamlit's WebSocket protocol (no browser).

    python tests/load/caps.py [--sessions 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.serving.cluster import sizes_from_env  # noqa: E402
from app.state import to_query  # noqa: E402
from core.config import Config  # noqa: E402
from tests import serving  # noqa: E402
from tests.load.protocol import Client  # noqa: E402

AT_THE_CAPS = Config(dataset="gaussian:4096", layers=(2048,), iterations=100_000, record_every=100_000)
SMALL = Config(dataset="circles", layers=(10, 5), iterations=300, record_every=10)


async def start(url: str, config: Config) -> Client:
    """A session on ``config``'s page that has pressed Start in the Training tab (left open: it keeps watching)."""
    page = Client(url, urlencode(to_query(config, "custom")))
    await page.__aenter__()
    await page.run(timeout=300)
    await page.run(page.choose("tabs", "Training"), timeout=300)
    await page.run(page.press("Start"), timeout=300)
    return page


async def main_async(url: str, k: int) -> dict:
    neighbours = [await start(url, AT_THE_CAPS.replace(seed=seed)) for seed in range(1, k + 1)]
    for page in neighbours:  # every one of them computing or queued before the last student arrives
        await page.wait_for(lambda p: b"Training\xe2\x80\xa6 step" in p or b"Waiting for a free worker" in p, 300)
    began = time.perf_counter()
    last = await start(url, SMALL)
    await last.wait_for(lambda p: b"Training\xe2\x80\xa6 step" in p or b"Finished 300 steps" in p, 300)
    started = time.perf_counter() - began
    await last.wait_for(lambda p: b"Finished 300 steps" in p, 300)
    finished = time.perf_counter() - began
    for page in [*neighbours, last]:
        await page.__aexit__(None, None, None)
    return {"started": started, "finished": finished}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5, help="sessions at the caps (default 5)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="initlab-caps-"))
    env = {**os.environ, "INITLAB_PRECOMPUTE_PRESETS": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("INITLAB_CACHE_DIR", None)
    port = serving.free_port()
    server = serving.start_app(port, work / "server.log", env, streamlit=[sys.executable, "-m", "streamlit"])
    try:
        figures = asyncio.run(main_async(f"http://127.0.0.1:{port}", args.sessions))
    finally:
        serving.stop(server)
    workers, worker_mb = sizes_from_env(env)
    print(f"{os.cpu_count()} cores, {workers} workers of {worker_mb} MB; {args.sessions} sessions at the caps "
          f"({AT_THE_CAPS.dataset}, layers {AT_THE_CAPS.layers}, {AT_THE_CAPS.iterations:,} steps); the next "
          f"student's {SMALL.iterations}-step run: training after {figures['started']:.1f} s, finished after "
          f"{figures['finished']:.1f} s (target: training within 5 s); server log {work / 'server.log'}")
    return 0 if figures["started"] <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
