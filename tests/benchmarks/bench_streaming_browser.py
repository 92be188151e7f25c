"""A run streamed to a real browser against the same run from the CLI (the issue's target: at most 1.3x).

"browser": `streamlit run app/main.py` and Debian's Chromium; the page opens the seed question preset with fewer
iterations through its URL, goes to the Training tab and presses Start; timed from the click until the page says
"Finished". "CLI": iterate `Training` to its end in this process, as `python -m core train` does. Taken in turns
(browser, CLI, browser, ...) after one warm-up each; each browser round trains its own seed, since the server
replays a config it has already trained. Also counted: how often the browser saw the run's progress change, sampled
in the page every 50 ms ("step N of M" above the charts, and the number of points in the loss chart), and the CPU
seconds the server and the browser spent during the run: on a 2-core machine the browser drawing the charts and
the training share the cores. `--threads N` gives the server and the CLI N BLAS threads (the deployment uses 1);
`--browser-core` keeps the browser on a core of its own, as a student's browser runs on their own machine.

    python tests/benchmarks/bench_streaming_browser.py [--data-dir ../shared/data] [--repeats 3] [--iterations 1000]
        [--threads 1] [--browser-core] [--screenshots artifacts/screenshots]
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from _bench import REPO, parser, print_header, set_threads
from app.presets import presets
from app.state import to_query
from core.config import Config
from core.data import load_dataset
from core.train import Training
from tests.serving import free_port, launch_chromium, start_app, stop, wait_until_idle

PRESET = "seed question"
VIEWPORT = {"width": 1400, "height": 2400}
# In the page, every 50 ms: the progress line above the charts and the loss chart's number of points (textContent,
# not innerText, which would make the page lay itself out 20 times a second).
SAMPLER = """() => {
    window.__samples = [];
    window.__sampler = setInterval(() => {
        const alert = document.querySelector('[data-testid="stTabs"] [data-testid="stAlert"]');
        const loss = [...document.querySelectorAll('.js-plotly-plot')].find(
            p => p.layout && p.layout.title && p.layout.title.text === 'Loss');
        const points = loss && loss._fullData && loss._fullData[0] ? loss._fullData[0].x.length : -1;
        window.__samples.push([performance.now(), alert ? alert.textContent : '', points]);
    }, 50);
}"""


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of process `root` and all its live descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parents.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += parents.get(pid, [])
    return total


def changes_per_second(samples: list, column: int) -> float:
    """How many times a sampled value changed per second while the run trained (its first to its last change)."""
    moments = [now[0] for before, now in zip(samples, samples[1:]) if now[column] != before[column]]
    if len(moments) < 2:
        return 0.0
    return (len(moments) - 1) / ((moments[-1] - moments[0]) / 1000)


def browser_round(browser, url: str, config: Config, server: int, shots: Path | None = None) -> dict:
    """Open the config's URL, press Start in the Training tab; seconds until "Finished", progress changes/s, and
    the CPU seconds the server (process `server`) and the browser (the rest of this process's children) used."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{url}/?{urlencode(to_query(config, PRESET))}")
        wait_until_idle(page)
        if shots:
            shoot(page, shots / "bench-at-initialisation.png")
        page.get_by_role("tab", name="Training").click()
        start = page.get_by_test_id("stTabs").get_by_role("button", name="Start")
        start.wait_for(timeout=60_000)
        wait_until_idle(page)
        page.evaluate(SAMPLER)
        cpu = tree_cpu_seconds(server), tree_cpu_seconds(os.getpid()) - tree_cpu_seconds(server)
        began = time.perf_counter()
        start.click()
        page.get_by_text("Finished", exact=False).first.wait_for(timeout=600_000)
        seconds = time.perf_counter() - began
        cpu = tree_cpu_seconds(server) - cpu[0], tree_cpu_seconds(os.getpid()) - tree_cpu_seconds(server) - cpu[1]
        samples = page.evaluate("() => { clearInterval(window.__sampler); return window.__samples; }")
        reported = page.get_by_text("Finished", exact=False).first.inner_text()
        if page.locator('[data-testid="stException"]').count():
            raise RuntimeError("the page shows an exception")
        if shots:
            wait_until_idle(page)
            shoot(page, shots / "bench-training.png")
        running = [s for s in samples if "Training…" in s[1]]
        return {"seconds": seconds, "reported": reported, "text_rate": changes_per_second(running, 1),
                "chart_rate": changes_per_second(running, 2), "samples": len(running), "server_cpu": cpu[0],
                "browser_cpu": cpu[1]}
    finally:
        page.close()


def shoot(page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.mouse.move(1, 1)  # no hover tooltip over the picture
    time.sleep(0.8)  # let plotly finish drawing
    page.screenshot(path=str(path), full_page=True)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"),
                   help="folder with the course's cat files (else shapes64)")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--record-every", type=int, default=25)
    p.add_argument("--screenshots", type=Path, default=None, help="save the At initialisation and Training tabs")
    p.add_argument("--browser-core", action="store_true",
                   help="the browser on a core of its own, as on a student's own machine; the rest for the server")
    p.set_defaults(repeats=3, warmup=1)
    args = p.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    base = presets(data_dir)[PRESET].config.replace(iterations=args.iterations, record_every=args.record_every)
    dataset = load_dataset(base.dataset, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INITLAB_CACHE")}  # no replays from a disk cache
    env["INITLAB_DATA_DIR"] = data_dir
    if args.threads:  # the server's BLAS threads as the CLI's
        env.update({name: str(args.threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    set_threads(args.threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated benchmark still stops its server
    print_header(f"{PRESET} on {base.dataset}, {args.iterations} iterations, record every {args.record_every}; "
                 "browser (Streamlit + Chromium) against the CLI")

    from playwright.sync_api import sync_playwright

    cores = sorted(os.sched_getaffinity(0))
    if args.browser_core:  # the server, and the CLI after it, on every core but the last; the browser on that one
        os.sched_setaffinity(0, cores[:-1])
    port = free_port()
    server = start_app(port, Path(tempfile.mkdtemp(prefix="bench-browser-")) / "streamlit.log", env,
                       streamlit=[sys.executable, "-m", "streamlit"])
    rounds: list[tuple[dict, float]] = []
    try:
        if args.browser_core:  # Chromium is started by Playwright's driver process: both go on the last core
            os.sched_setaffinity(0, cores[-1:])
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            if args.browser_core:
                os.sched_setaffinity(0, cores[:-1])
            for i in range(args.warmup + args.repeats):
                config = base.replace(seed=base.seed + i)  # a config the server has not trained: no replay
                last = i == args.warmup + args.repeats - 1
                seen = browser_round(browser, f"http://127.0.0.1:{port}", config, server.pid,
                                     args.screenshots if last else None)
                time.sleep(0.5)
                began, cpu = time.perf_counter(), time.process_time()
                list(Training(config, dataset))
                cli, cli_cpu = time.perf_counter() - began, time.process_time() - cpu
                tag = "warm-up" if i < args.warmup else f"round {i - args.warmup + 1}"
                print(f"{tag:>8}: browser {seen['seconds']:6.2f} s ({seen['reported']!r}), CLI {cli:6.2f} s, "
                      f"ratio {seen['seconds'] / cli:5.2f}; progress {seen['text_rate']:.1f}/s, "
                      f"loss chart {seen['chart_rate']:.1f}/s; CPU s: server {seen['server_cpu']:.1f}, browser "
                      f"{seen['browser_cpu']:.1f}, CLI {cli_cpu:.1f}")
                if i >= args.warmup:
                    rounds.append((seen, cli))
            browser.close()
    finally:
        stop(server)
    browser_s = statistics.median(seen["seconds"] for seen, _ in rounds)
    cli_s = statistics.median(cli for _, cli in rounds)
    print(f"median of {len(rounds)}: browser {browser_s:.2f} s, CLI {cli_s:.2f} s, ratio "
          f"{statistics.median(seen['seconds'] / cli for seen, cli in rounds):.2f} (target <= 1.3)")
    print(f"updates seen in the browser: progress line "
          f"{statistics.median(seen['text_rate'] for seen, _ in rounds):.1f}/s, loss chart "
          f"{statistics.median(seen['chart_rate'] for seen, _ in rounds):.1f}/s (the page asks for at most 5/s: app.tabs.training.LIVE_SECONDS)")


if __name__ == "__main__":
    main()
