"""Load test: K concurrent headless-Chromium sessions against one Init Lab server (a script, not a pytest test).

Each session opens the app on the custom preset, picks the "seed question" preset in the sidebar, opens Compare,
presses Train all and waits until both runs show as finished. For each K it prints completed/failed sessions, the
median and 95th percentile time from the preset click to the result, the server's peak memory and the server log's
error count, once with the run cache cleared (the first session trains, the others attach to the shared runs) and
once warm (a fresh server process whose disk cache already holds the runs).

    python tests/load/load_test.py --sessions 10 30

Everything runs on 127.0.0.1. The course's cat files are used when ../shared/data holds them (else shapes64).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from app.presets import VARIANTS, presets  # noqa: E402
from core.cache import RunCache  # noqa: E402
from core.datasets import load_dataset  # noqa: E402
from tests import serving  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
FINISHED_TWICE = ("() => { const t = document.querySelector('[data-testid=\"stTable\"]');"
                  " return t && (t.innerText.match(/finished/g) || []).length === 2; }")


async def session(browser, url: str, timeout_ms: int) -> float:
    """One student: returns seconds from the preset click to both Compare runs shown as finished."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1600})
    try:
        page = await context.new_page()
        page.set_default_timeout(timeout_ms)  # an overloaded server answers clicks late; that is a slow result
        await page.goto(f"{url}/?preset=custom", timeout=timeout_ms)
        await page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSelectbox"]', timeout=timeout_ms)
        started = time.perf_counter()
        await page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        await page.get_by_role("option", name="seed question", exact=True).click()
        await page.get_by_text("randn×0.01 gets 34%").wait_for(timeout=timeout_ms)  # the preset's note
        await page.get_by_role("tab", name="Compare").click()
        await page.get_by_test_id("stTabs").get_by_role("button", name="Train all").click(timeout=timeout_ms)
        await page.wait_for_function(FINISHED_TWICE, timeout=timeout_ms, polling=250)
        elapsed = time.perf_counter() - started
        if await page.locator('[data-testid="stException"]').count():
            raise RuntimeError("the page shows an exception")
        return elapsed
    finally:
        await context.close()


async def drive(url: str, k: int, timeout_ms: int) -> list[float | BaseException]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=serving.CHROMIUM, args=serving.CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(session(browser, url, timeout_ms) for _ in range(k)),
                                        return_exceptions=True)
        finally:
            await browser.close()


def warm_up(cache: Path, data_dir: Path) -> int:
    """Train the seed question's Compare runs into the cache directly (no server) unless it holds them already;
    returns how many were trained. Keeps the warm figures warm even when the cleared run timed out."""
    preset = presets(data_dir)["seed question"]
    store, trained = RunCache(cache), 0
    for label in preset.compare:
        config = VARIANTS[label].apply(preset.config)
        dataset = load_dataset(config.dataset, data_dir, standardize=config.standardize)
        if store.get(config, dataset) is None:
            for _ in store.compute(config, dataset):
                pass
            trained += 1
    return trained


def scenario(k: int, cache: Path, clear: bool, work: Path, timeout_ms: int) -> dict:
    data_dir = SHARED_DATA if (SHARED_DATA / "train_catvnoncat.h5").is_file() else work / "no-course-data"
    if clear:
        shutil.rmtree(cache, ignore_errors=True)
    else:
        print(f"    (warm-up trained {warm_up(cache, data_dir)} missing runs into the cache first)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "INITLAB_CACHE_DIR": str(cache), "INITLAB_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    port, log = serving.free_port(), work / f"server-k{k}-{'cold' if clear else 'warm'}.log"
    server = serving.start_app(port, log, env, streamlit=[sys.executable, "-m", "streamlit"])
    try:
        results = asyncio.run(drive(f"http://127.0.0.1:{port}", k, timeout_ms))
        peak = serving.peak_rss_mb(server.pid)
    finally:
        serving.stop(server)
    times = sorted(r for r in results if isinstance(r, float))
    failures = [r for r in results if not isinstance(r, float)]
    text = log.read_text()
    return {
        "k": k, "cache": "cleared" if clear else "warm", "completed": len(times), "failed": len(failures),
        "median": statistics.median(times) if times else float("nan"),
        "p95": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] if times else float("nan"),
        "peak_mb": peak, "log_errors": text.count("Traceback") + text.count("Error"),
        "first_failure": f"{type(failures[0]).__name__}: {str(failures[0])[:160]}" if failures else "",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 30], help="values of K (default 10 30)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one session may take (default 300)")
    parser.add_argument("--warm-only", action="store_true", help="skip the cleared-cache runs")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="initlab-load-"))
    print(f"server logs in {work}; data: "
          f"{'course cat files' if (SHARED_DATA / 'train_catvnoncat.h5').is_file() else 'shapes64'}")
    print(f"{'K':>3} {'cache':>8} {'done':>5} {'failed':>6} {'median s':>9} {'p95 s':>7} {'peak MB':>8} {'log err':>7}")
    rows = []
    for k in args.sessions:
        for clear in (False,) if args.warm_only else (True, False):  # cleared first: it may warm the cache
            row = scenario(k, work / "cache", clear, work, int(args.timeout * 1000))
            rows.append(row)
            print(f"{row['k']:>3} {row['cache']:>8} {row['completed']:>5} {row['failed']:>6} {row['median']:>9.2f} "
                  f"{row['p95']:>7.2f} {row['peak_mb']:>8.0f} {row['log_errors']:>7}"
                  + (f"  first failure: {row['first_failure']}" if row["failed"] else ""), flush=True)
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
