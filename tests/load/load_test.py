"""Load test: K concurrent headless-Chromium sessions against one Init Lab server (a script, not a pytest test).

The server is started as before a class: the students arrive once its /ready says "ready" (its workers joined, the
presets' probes computed). Each session opens the app on the custom preset and waits until its first page is drawn;
then all K, at the same moment, pick the "seed question" preset in the sidebar, open Compare, press Train all and
wait until both runs show as finished. For each K it prints completed/failed sessions, the median and 95th percentile time from the preset
click to the result on screen, the same up to the moment the WebSocket frame carrying the finished table reached
the browser (without the drawing of the result itself; the page's work between the clicks is still in it), the
server's peak memory, the server log's error count, where the CPU went (seconds used by the server, by the browser,
and by whatever else runs on this machine), and how many runs the server trained into its cache: 2 with the cache
cleared (the preset's two initialisers), 0 when warm; more means some session trained another config.

Two scenarios per K: the run cache cleared (the first session trains, the others attach to the shared runs) and
warm (a fresh server process whose disk cache already holds the runs). Every session first turns on the sidebar's
"Replay cached runs instantly", as a teacher would for a class: without it a cache hit replays at the pace the run
was computed, which is the point for one student and a pointless wait for a load figure (`--paced` leaves it off).

    python tests/load/load_test.py --sessions 10 30
    python tests/load/load_test.py --protocol --sessions 10 30 100

With --protocol the students have no browser: each speaks Streamlit's WebSocket protocol from this script
(`protocol.py`), asking for the same runs with the same widget values and waiting for the table to arrive with both
runs finished (and, on the course's data, its 0.34 and 0.80). Nothing is drawn, so this machine's cores are the
server's, as in a classroom where every student's own machine draws their page: these are the server's figures.

One Chromium serves every session, each in its own context (its own cookies and cache, as separate students);
images and fonts are not fetched (they do not change what the server does). Chromium and the server share this
machine's cores, as the students' browsers would not share the server's: the CPU columns say which of them the time
went to (on a 2-core machine the K pages' plotly drawing, not the server, is most of it; --browser-nice 19 lets the
server's work go first). Everything runs on 127.0.0.1. The course's cat files are used when ../shared/data holds
them (else shapes64).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from app.presets import VARIANTS, presets  # noqa: E402
from app.serving import cluster  # noqa: E402
from app.serving.cache import RunCache  # noqa: E402
from core.data import load_dataset  # noqa: E402
from tests import serving  # noqa: E402
from tests.load.protocol import Client  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
FINISHED_TWICE = ("() => { const t = document.querySelector('[data-testid=\"stTable\"]');"
                  " return t && (t.innerText.match(/finished/g) || []).length === 2; }")
BLOCKED = ("image", "font", "media")  # nothing the server computes depends on them
# --skip-chart-drawing: Streamlit loads its Plotly chart component (4.7 MB of JavaScript) on demand; this module in
# its place draws nothing, so the K pages stop costing this machine what the students' own machines would spend.
CHART_MODULE = re.compile(r"/PlotlyChart\.[^/]*\.js$")
NO_CHART_MODULE = "export default function PlotlyChart() { return null; }"
INSTANT = "Replay cached runs instantly"
SEED_NOTE = "randn×0.01 gets 34%"  # the seed question preset's note: its run has reached the page
SEED_RESULT = (b"0.34", b"0.80")  # the Compare table's test accuracies on the course's data, both runs finished
VIEWPORT = {"width": 1400, "height": 1600}
PRESET = '[data-testid="stSidebar"] [data-testid="stSelectbox"]'  # the first one picks the preset


class Session:
    """One student. `seconds`: preset click to result on screen; `served`: preset click to the WebSocket frame
    that carried the finished table."""

    def __init__(self):
        self.started: float | None = None
        self.served: float | None = None
        self.seconds: float | None = None
        self.traffic = {"sent": 0, "received": 0, "closed": 0}  # WebSocket frames and closes since the click
        self.phases: dict[str, float] = {}  # protocol students: seconds each step of the click's path took
        self._phase_end: float | None = None

    def phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = now - (self._phase_end or self.started)
        self._phase_end = now

    def frame(self, payload) -> None:
        if self.started is not None:
            self.traffic["received"] += 1
        if self.started is not None and self.served is None and isinstance(payload, bytes) \
                and payload.count(b"finished") >= 2:
            self.served = time.perf_counter() - self.started

    def watch(self, ws) -> None:
        """Count what crosses the page's WebSocket after the click: a stalled page says whether its request left
        the browser and whether anything came back."""
        def count(what: str):
            def counted(*_) -> None:
                if self.started is not None:
                    self.traffic[what] += 1
            return counted

        ws.on("framereceived", self.frame)
        ws.on("framesent", count("sent"))
        ws.on("close", count("closed"))

    async def run(self, browser, url: str, timeout_ms: int, instant: bool, draw: bool, ready: asyncio.Barrier,
                  failures: Path) -> "Session":
        context = await browser.new_context(viewport=VIEWPORT)

        async def route(route):
            if route.request.resource_type in BLOCKED:
                await route.abort()
            elif not draw and CHART_MODULE.search(route.request.url):
                await route.fulfill(body=NO_CHART_MODULE, content_type="text/javascript")
            else:
                await route.fallback()

        await context.route("**/*", route)
        try:
            page = await context.new_page()
            page.on("websocket", self.watch)
            page.set_default_timeout(timeout_ms)  # an overloaded server answers clicks late; that is a slow result
            loaded: BaseException | None = None
            try:
                await page.goto(f"{url}/?preset=custom", timeout=timeout_ms)
                await serving.async_wait_until_idle(page, timeout_ms)
                if instant:
                    toggle = page.locator('[data-testid="stSidebar"] label', has_text=INSTANT)
                    await toggle.click()
                    await page.locator('[data-testid="stSidebar"] label[data-selected="true"]',
                                       has_text=INSTANT).wait_for(timeout=timeout_ms)  # it took: on
                    await serving.async_wait_until_idle(page, timeout_ms)
                    # back to the top of the sidebar: a select scrolled into view by its own click closes again
                    await page.locator(PRESET).first.scroll_into_view_if_needed()
                    await page.wait_for_timeout(300)
            except Exception as e:  # still meet the others at the barrier, then report the failure
                loaded = e
            await ready.wait()  # the whole class clicks at the same moment
            if loaded is not None:
                raise loaded
            self.started = time.perf_counter()
            try:
                await page.locator(PRESET).first.click()
                await page.get_by_role("option", name="seed question", exact=True).click()
                await page.get_by_text(SEED_NOTE).wait_for(timeout=timeout_ms)
                await page.get_by_role("tab", name="Compare").click()
                await page.get_by_test_id("stTabs").get_by_role("button", name="Train all").click(timeout=timeout_ms)
                await page.wait_for_function(FINISHED_TWICE, timeout=timeout_ms, polling=250)
                self.seconds = time.perf_counter() - self.started
                if await page.locator('[data-testid="stException"]').count():
                    raise RuntimeError("the page shows an exception")
            except Exception as e:
                shot = Path(tempfile.mkstemp(prefix="failed-session-", suffix=".png", dir=failures)[1])
                await page.screenshot(path=str(shot), full_page=True)
                raise RuntimeError(f"{type(e).__name__}: {str(e)[:120]} (the page: {shot}; WebSocket since the "
                                   f"click: {self.traffic})") from e
            return self
        finally:
            await context.close()


class ProtocolSession(Session):
    """The same student as `Session`, speaking Streamlit's WebSocket protocol instead of driving a browser
    (`protocol.Client`): the same runs of the same script with the same widget values, nothing drawn. The result
    counts when the Compare table arrives with both runs finished and ``expect`` (the course's test accuracies,
    when its data is used) in it."""

    async def run(self, url: str, timeout_ms: int, instant: bool, ready: asyncio.Barrier,
                  expect: tuple[bytes, ...], source: str | None) -> "ProtocolSession":
        timeout = timeout_ms / 1000
        loaded: BaseException | None = None
        async with Client(url, "preset=custom", source) as page:
            try:
                await page.run(timeout=timeout)
                if instant:
                    await page.run(page.switch(INSTANT, True), timeout=timeout)
            except Exception as e:  # still meet the others at the barrier, then report the failure
                loaded = e
            await ready.wait()
            if loaded is not None:
                raise loaded
            self.started = time.perf_counter()
            await page.run(page.choose("Preset", "seed question"), timeout=timeout)
            await page.wait_for(lambda payload: SEED_NOTE.encode() in payload, timeout)
            self.phase("preset")
            await page.run(page.choose("tabs", "Compare"), timeout=timeout)
            self.phase("Compare tab")
            await page.run(page.press("Train all"), timeout=timeout)
            self.phase("Train all")
            await page.wait_for(lambda payload: payload.count(b"finished") >= 2
                                and all(figure in payload for figure in expect), timeout)
            self.phase("result")
            self.served = self.seconds = time.perf_counter() - self.started
            if page.exceptions:
                raise RuntimeError(f"the page shows an exception: {page.exceptions[0][:200]}")
        return self


async def drive_protocol(url: str, k: int, timeout_ms: int, instant: bool, expect: tuple[bytes, ...],
                         spread: bool) -> list[Session | BaseException]:
    """K protocol students; with ``spread`` each from its own loopback network 127.0.i.1 (nginx's ip_hash keys on
    the first three bytes of the address), as a class's machines would arrive at a proxy."""
    ready = asyncio.Barrier(k)
    return await asyncio.gather(*(ProtocolSession().run(url, timeout_ms, instant, ready, expect,
                                                        f"127.0.{i + 1}.1" if spread else None)
                                  for i in range(k)),
                                return_exceptions=True)


async def drive(url: str, k: int, timeout_ms: int, instant: bool, draw: bool, nice: int,
                server_pids: set[int], failures: Path) -> list[Session | BaseException]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=serving.CHROMIUM, args=serving.CHROMIUM_ARGS)
        for pid in browser_processes(server_pids):  # renderers fork from these, and inherit their priority
            try:
                os.setpriority(os.PRIO_PROCESS, pid, nice)
            except OSError:
                pass
        try:
            ready = asyncio.Barrier(k)
            return await asyncio.gather(*(Session().run(browser, url, timeout_ms, instant, draw, ready, failures)
                                          for _ in range(k)),
                                        return_exceptions=True)
        finally:
            await browser.close()


OWN_RUN = """import sys, time
from core.config import Config
from core.data import load_dataset
from core.train import Training
config = Config.from_json(sys.argv[1])
dataset = load_dataset(config.dataset, sys.argv[2], standardize=config.standardize)
began = time.perf_counter()
for _ in Training(config, dataset):
    pass
print(time.perf_counter() - began)
"""


def data_folder(work: Path) -> Path:
    """The course's cat files' folder, or (without them) an empty one: the seed question then uses shapes64."""
    return SHARED_DATA if (SHARED_DATA / "train_catvnoncat.h5").is_file() else work / "no-course-data"


def own_training_seconds(data_dir: Path) -> float:
    """The seed question's two Compare runs trained alone, side by side, each in its own process with one BLAS
    thread (as two of the server's workers train them): the slower one's seconds, which the cleared cache's target
    is reckoned from (issue 17: p95 <= 1.5 x this + 5 s)."""
    import subprocess

    preset = presets(data_dir)["seed question"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", OWN_RUN, VARIANTS[label].apply(preset.config).to_json(),
                              str(data_dir)], stdout=subprocess.PIPE, text=True, env=env)
            for label in preset.compare]
    return max(float(run.communicate()[0]) for run in runs)


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


class CpuWatch:
    """CPU seconds over a scenario: the server's, the clients' (this script itself, Playwright's driver and every
    Chromium process, sampled from /proc twice a second so that renderers closed with their context still count up
    to their last sample), and the whole machine's (so the rest is what other work on this machine took)."""

    def __init__(self, server_pids: set[int], cluster_pids: set[int] = frozenset()):
        self.server_pids, self.browser, self.stopped = server_pids, {}, threading.Event()
        self.not_clients = server_pids | cluster_pids  # with their descendants: a shared cluster's CPU is "other"
        self.server0, self.machine0, self.own0 = self._servers(), machine_cpu(), own_cpu()
        self.timeline = [(time.perf_counter(), self.server0)]  # (when, the server's CPU seconds then)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(0.5):
            self.timeline.append((time.perf_counter(), self._servers()))
            for pid, seconds in browser_processes(self.not_clients).items():
                self.browser[pid] = max(seconds, self.browser.get(pid, 0.0))

    def server_since(self, moment: float) -> float:
        """The server's CPU seconds from ``moment`` (a perf_counter) to the last sample, the CPU at ``moment``
        interpolated between the samples around it."""
        (t0, c0), (t1, c1) = next(((a, b) for a, b in zip(self.timeline, self.timeline[1:]) if b[0] >= moment),
                                  (self.timeline[-1], self.timeline[-1]))
        at = c0 + (c1 - c0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return self.timeline[-1][1] - at

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.thread.join()
        server = self._servers() - self.server0
        clients = sum(self.browser.values()) + own_cpu() - self.own0
        return {"server_cpu": server, "client_cpu": clients,
                "other_cpu": max(0.0, machine_cpu() - self.machine0 - server - clients)}

    def _servers(self) -> float:
        return sum(serving.cpu_seconds(pid) for pid in self.server_pids)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine since boot (every core: user, nice, system, irq, softirq, steal)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def browser_processes(server_pids: set[int]) -> dict[int, float]:
    """pid -> CPU seconds of this script's descendants other than the servers in ``server_pids`` and theirs
    (Playwright's driver, Chromium)."""
    parents, seconds = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    mine, me = {}, os.getpid()
    for pid in seconds:
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me) and ancestor not in server_pids:
            ancestor = parents.get(ancestor)
        if ancestor == me and pid not in server_pids:
            mine[pid] = seconds[pid]
    return mine


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the value below which a share q of the sorted values lie."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def scenario(k: int, cache: Path, clear: bool, work: Path, timeout_ms: int, instant: bool, draw: bool,
             nice: int, protocol: bool, replicas: int, cold_probes: bool = False) -> dict:
    data_dir = data_folder(work)
    if clear:
        shutil.rmtree(cache, ignore_errors=True)
    else:
        print(f"    (warm-up trained {warm_up(cache, data_dir)} missing runs into the cache first)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "INITLAB_CACHE_DIR": str(cache), "INITLAB_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           # a cleared cache stays cleared: the students ask for the runs; their probes are computed at start, as a
           # classroom server's are (unless --cold-probes)
           "INITLAB_PRECOMPUTE_PRESETS": "0" if cold_probes else "probes"}
    before = set(cache.glob("*.h5"))
    name = f"k{k}-{'cold' if clear else 'warm'}"
    ports = [serving.free_port() for _ in range(replicas)]
    logs = [work / f"server-{name}-{i}.log" for i in range(replicas)]
    servers, shared = [], None
    if replicas > 1:  # one scheduler and its workers for every replica, as deploy/compose.yaml runs them
        folder = work / f"dask-{name}"
        folder.mkdir()
        shared = cluster.start_local(*cluster.sizes_from_env(env), folder)
        env[cluster.SCHEDULER_ENV] = shared.client.scheduler.address
    try:
        for port, log in zip(ports, logs):
            servers.append(serving.start_app(port, log, env, streamlit=[sys.executable, "-m", "streamlit"]))
        for port, server in zip(ports, servers):  # started before the class, as a classroom server is: its workers
            # joined and the presets' probes computed (/ready says "ready" alone then)
            serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 300, server)
        apps = servers[:]
        url = f"http://127.0.0.1:{ports[0]}"
        if replicas > 1:  # behind deploy/nginx.conf, as deploy/compose.yaml runs them
            listen = serving.free_port()
            servers.append(serving.start_nginx(listen, ports, work / f"nginx-{name}"))
            url = f"http://127.0.0.1:{listen}"
        pids = {s.pid for s in servers}
        watch = CpuWatch(pids, {p.pid for p in shared.processes} if shared is not None else set())
        wall = time.perf_counter()
        course = data_dir == SHARED_DATA
        results = asyncio.run(
            drive_protocol(url, k, timeout_ms, instant, SEED_RESULT if course else (), replicas > 1) if protocol
            else drive(url, k, timeout_ms, instant, draw, nice, pids, work))
        wall = time.perf_counter() - wall
        cpu = watch.stop()
        clicked = [r.started for r in results if isinstance(r, Session) and r.started is not None]
        click_cpu = watch.server_since(min(clicked)) if clicked else float("nan")
        peak = sum(serving.peak_rss_mb(app.pid) for app in apps)
    finally:
        for server in reversed(servers):
            serving.stop(server)
        if shared is not None:
            shared.close()
    done = [r for r in results if isinstance(r, Session)]
    failures = [r for r in results if not isinstance(r, Session)]
    times, served = [s.seconds for s in done], [s.served for s in done if s.served is not None]
    text = "".join(log.read_text() for log in logs)
    return {
        "k": k, "cache": "cleared" if clear else "warm", "completed": len(done), "failed": len(failures),
        "median": statistics.median(times) if times else float("nan"), "p95": percentile(times, 0.95),
        "served_median": statistics.median(served) if served else float("nan"),
        "served_p95": percentile(served, 0.95), "peak_mb": peak,
        "log_errors": text.count("Traceback") + text.count("Error"),
        "trained": len(set(cache.glob("*.h5")) - before),
        "click_ms": 1000 * click_cpu / k,
        **cpu, "wall": wall,
        "failures": [f"{type(f).__name__}: {str(f)[:400]}" for f in failures],
        "phases": {name: statistics.median(s.phases[name] for s in done) for name in done[0].phases} if done else {},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 30], help="values of K (default 10 30)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one session may take (default 300)")
    parser.add_argument("--warm-only", action="store_true", help="skip the cleared-cache runs")
    parser.add_argument("--cache-from", type=Path, metavar="DIR",
                        help="start the warm cache with the run files of this run cache folder (the test suite's "
                             "seed question runs), so the warm-up trains only what it lacks")
    parser.add_argument("--paced", action="store_true",
                        help="leave 'Replay cached runs instantly' off: cache hits replay at the recorded pace")
    parser.add_argument("--browser-nice", type=int, default=0, metavar="N",
                        help="run Chromium at this niceness (19: the server's work comes first, as when the students' "
                             "browsers run on their own machines; default 0)")
    parser.add_argument("--skip-chart-drawing", action="store_true",
                        help="the pages load a Plotly component that draws nothing: the server's work stays the "
                             "same, the K pages' drawing (done by the students' own machines in a class) goes")
    parser.add_argument("--protocol", action="store_true",
                        help="students without browsers: each speaks Streamlit's WebSocket protocol from this script "
                             "(tests/load/protocol.py), so the machine's cores are the server's, as in a classroom")
    parser.add_argument("--cold-probes", action="store_true",
                        help="the server computes no probe at start (INITLAB_PRECOMPUTE_PRESETS=0): the students' "
                             "pages compute the probes they ask for (quicker to start; the test suite's choice)")
    parser.add_argument("--replicas", type=int, default=1, metavar="N",
                        help="N app processes sharing the run cache and one Dask scheduler with its workers, behind "
                             "deploy/nginx.conf, as deploy/compose.yaml runs them (needs --protocol, whose students "
                             "then come from N different loopback networks for ip_hash); default 1")
    args = parser.parse_args(argv)
    if args.replicas > 1 and not args.protocol:
        parser.error("--replicas needs --protocol: a browser's pages all come from 127.0.0.1, one ip_hash bucket")
    work = Path(tempfile.mkdtemp(prefix="initlab-load-"))
    if args.cache_from is not None:
        serving.copy_runs(args.cache_from, work / "cache")
    print(f"server logs in {work}; data: "
          f"{'course cat files' if (SHARED_DATA / 'train_catvnoncat.h5').is_file() else 'shapes64'}; "
          f"{'cache hits replay at the recorded pace' if args.paced else INSTANT + ': on (as a teacher would)'}; "
          + ("clients speak the protocol, no browser; " if args.protocol else
             f"Chromium at niceness {args.browser_nice}; "
             f"{'charts not drawn (--skip-chart-drawing)' if args.skip_chart_drawing else 'charts drawn'}; ")
          + (f"{args.replicas} app processes and one Dask cluster behind nginx (peak MB and server CPU: the apps' "
             "sums; nginx's and the cluster's CPU count as other); " if args.replicas > 1 else "")
          + f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the first run")
    print("times in seconds from the preset click: 'screen' until the result is drawn, 'served' until the frame that "
          "carries it reached the client (the same, without a browser); CPU seconds over the whole scenario (page "
          "loads included) of the server, of the clients, and of everything else on this machine, beside its "
          "wall-clock time; the server's CPU from the click to the last result, per student (the least noisy figure "
          "of the server's own work on a shared machine)")
    print(f"{'K':>3} {'cache':>8} {'done':>5} {'failed':>6} {'median':>7} {'p95':>7} {'served med':>10} "
          f"{'served p95':>10} {'peak MB':>8} {'log err':>7} {'server CPU':>10} {'client CPU':>11} {'other CPU':>9} "
          f"{'wall':>6} {'trained':>7} {'CPU/student':>11}")
    if not args.warm_only:
        own = own_training_seconds(data_folder(work))
        print(f"the two runs trained alone, side by side: {own:.1f} s; the cleared cache's target p95 is "
              f"1.5 x {own:.1f} + 5 = {1.5 * own + 5:.1f} s", flush=True)
    rows = []
    for k in args.sessions:
        for clear in (False,) if args.warm_only else (True, False):  # cleared first: it may warm the cache
            row = scenario(k, work / "cache", clear, work, int(args.timeout * 1000), not args.paced,
                           not args.skip_chart_drawing, args.browser_nice, args.protocol, args.replicas,
                           args.cold_probes)
            rows.append(row)
            print(f"{row['k']:>3} {row['cache']:>8} {row['completed']:>5} {row['failed']:>6} {row['median']:>7.2f} "
                  f"{row['p95']:>7.2f} {row['served_median']:>10.2f} {row['served_p95']:>10.2f} "
                  f"{row['peak_mb']:>8.0f} {row['log_errors']:>7} {row['server_cpu']:>10.1f} "
                  f"{row['client_cpu']:>11.1f} {row['other_cpu']:>9.1f} {row['wall']:>6.1f} {row['trained']:>7} "
                  f"{row['click_ms']:>8.0f} ms"
                  + "".join(f"\n    failed: {failure}" for failure in row["failures"])
                  + ("\n    median seconds per step: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds
                                                              in row["phases"].items()) if row["phases"] else ""),
                  flush=True)
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
