"""A new server's first student: seconds from opening the page to its first chart drawn (issue 19's target: within
4 s when the student arrives 30 s after the server's start).

Each round starts a fresh `streamlit run app/main.py` as deployed (its own Dask cluster, the default number of
workers) with an empty compiled-kernel cache (NUMBA_CACHE_DIR), an empty run cache (INITLAB_CACHE_DIR: the presets
are computed in the background, as in the Docker image) and a temporary folder of its own; a headless Chromium
opens the page `--arrive-after` seconds after the server process was launched (at once if the server answers
later than that) and the clock runs from `page.goto` until the first Plotly chart has drawn its SVG. Also printed:
when the server answered /_stcore/health and /ready (polled every 0.25 s), a second student's seconds to the same
chart right after (what the page costs on a started server, at the same load), and the load average, since on a
shared machine the figures move with it. Each page is a new browser context (nothing cached); `--network`
throttles it, as a student on a classroom's wifi would download the page's scripts (5.0 MB; 1.9 MB compressed).

    python tests/benchmarks/bench_first_chart.py [--arrive-after 30 0] [--data-dir ../shared/data] [--network 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from _bench import REPO
from tests.serving import free_port, launch_chromium, start_app, stop

DRAWN = '.initlab-live-chart .main-svg, [data-testid="stPlotlyChart"] .main-svg'  # app/live_chart.py's, Streamlit's
LATENCY_MS = 20  # with --network: a classroom's wifi, one hop away


def first_ready(url: str, launched: float, stop_polling: threading.Event, seen: dict) -> None:
    """Poll ``url`` until it answers 200; note when, in seconds after ``launched``."""
    while not stop_polling.is_set():
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.read().startswith(b"ready"):  # (a server without the route answers with the page)
                    seen["ready"] = time.monotonic() - launched
                    return
        except (urllib.error.URLError, OSError):
            pass
        stop_polling.wait(0.25)


def seconds_to_chart(browser, url: str, mbit: float | None) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # a new context: nothing cached
    if mbit:  # a student's network: Chromium's own throttling of this page's downloads and uploads
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": LATENCY_MS,
                                                      "downloadThroughput": mbit * 125_000,
                                                      "uploadThroughput": mbit * 125_000})
    opened = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(DRAWN, timeout=300_000)
    seconds = time.perf_counter() - opened
    page.close()
    return seconds


def one_round(arrive_after: float, data_dir: str | None, mbit: float | None, browser) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-first-chart-") as folder:
        folder = Path(folder)
        for name in ("numba", "cache", "tmp"):
            (folder / name).mkdir()
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba"), "INITLAB_CACHE_DIR": str(folder / "cache"),
               "TMPDIR": str(folder / "tmp")}
        env.pop("INITLAB_DASK_SCHEDULER", None)
        if data_dir:
            env["INITLAB_DATA_DIR"] = data_dir
        port = free_port()
        seen: dict = {}
        stop_polling = threading.Event()
        launched = time.monotonic()
        poller = threading.Thread(target=first_ready, args=(f"http://127.0.0.1:{port}/ready", launched,
                                                            stop_polling, seen), daemon=True)
        poller.start()
        server = start_app(port, folder / "streamlit.log", env, cwd=REPO)
        try:
            seen["health"] = time.monotonic() - launched
            time.sleep(max(0.0, launched + arrive_after - time.monotonic()))
            seen["arrived"] = time.monotonic() - launched
            seen["first_chart"] = seconds_to_chart(browser, f"http://127.0.0.1:{port}/", mbit)
            seen["next_chart"] = seconds_to_chart(browser, f"http://127.0.0.1:{port}/", mbit)
        finally:
            stop_polling.set()
            stop(server)
        return seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arrive-after", type=float, nargs="+", default=[30.0, 0.0],
                   help="seconds after the server's launch when the student opens the page (one round each)")
    p.add_argument("--data-dir", help="the course's data folder (default: the shipped data only)")
    p.add_argument("--network", type=float, metavar="MBIT",
                   help=f"the browser's network throttled to MBIT Mbit/s each way, {LATENCY_MS} ms latency "
                        "(default: the loopback, unthrottled)")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    network = f"{args.network:g} Mbit/s, {LATENCY_MS} ms latency" if args.network else "loopback, unthrottled"
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}, browser's network: {network}")
    print(f"{'arrives at s':>12} {'health at s':>11} {'ready at s':>10} {'opened at s':>11} {'first chart s':>13}"
          f" {'next student s':>14} {'load avg':>8}")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for arrive_after in args.arrive_after:
                seen = one_round(arrive_after, args.data_dir, args.network, browser)
                ready = f"{seen['ready']:.1f}" if "ready" in seen else "never"
                print(f"{arrive_after:>12.0f} {seen['health']:>11.1f} {ready:>10} {seen['arrived']:>11.1f} "
                      f"{seen['first_chart']:>13.2f} {seen['next_chart']:>14.2f} {os.getloadavg()[0]:>8.1f}",
                      flush=True)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
