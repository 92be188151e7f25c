"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run app/main.py`.

Screenshots of every tab land in artifacts/screenshots/ (gitignored) for a person to look at.
The Compare check reproduces the course's 34% / 80% when the course files are in ../shared/data, else it trains
on the shipped stand-in shapes64 and checks that both runs finish with accuracies on screen.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest

from app.live_chart import PLOTLY_JS, PRELOAD_KEY
from app.state import to_query
from core.config import Config
from tests import serving

pytestmark = pytest.mark.browser

ROOT = serving.ROOT
SHARED_DATA = ROOT.parent / "shared" / "data"
HAS_COURSE_FILES = (SHARED_DATA / "train_catvnoncat.h5").is_file() and (SHARED_DATA / "test_catvnoncat.h5").is_file()
SHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 2400}

if not Path(serving.CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory) -> Path:
    """The server's temporary folder (TMPDIR): its own Dask cluster's scheduler file lands there."""
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_tmp, seed_question_runs):
    port = serving.free_port()
    data_dir = SHARED_DATA if HAS_COURSE_FILES else tmp_path_factory.mktemp("no-course-files")
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    # the seed question's runs are in its cache (the Compare tab replays them, at the pace they were computed);
    # the other tests' runs are not, so they train
    cache = serving.copy_runs(seed_question_runs, tmp_path_factory.mktemp("cache"))
    try:
        # two workers, not the default's several a core: the page trains two runs at most, and each worker's
        # start-up would add to CI's time for nothing
        process = serving.start_app(port, log, {**os.environ, "INITLAB_DATA_DIR": str(data_dir),
                                                "INITLAB_CACHE_DIR": str(cache), "INITLAB_PRECOMPUTE_PRESETS": "0",
                                                "INITLAB_DASK_WORKERS": "2", "TMPDIR": str(server_tmp)},
                                    streamlit=[sys.executable, "-m", "streamlit"])
        # as a deployed server is when students arrive: its page's modules imported, outside any page's run
        serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 120, process)
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(f"streamlit did not come up ({e}):\n{log.read_text()[-2000:]}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serving.stop(process)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = serving.launch_chromium(p)
        yield b
        b.close()


DRAWN_CHART = '.initlab-live-chart.js-plotly-plot'  # a chart of app/live_chart.py, drawn
EVERY_CHART = '.initlab-live-chart, [data-testid="stPlotlyChart"]'  # app/live_chart.py's, and the sweep's heatmap


def open_app(browser, url: str, query: dict[str, str] | None = None):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url + ("/?" + urlencode(query) if query else "/"))
    page.wait_for_selector('[data-testid="stApp"]', timeout=30_000)
    page.wait_for_function(f"document.querySelectorAll('{DRAWN_CHART}').length >= 5", timeout=60_000)
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(1, 1)  # no hover tooltip over the picture
    time.sleep(0.8)  # let plotly finish drawing
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_the_server_starts_its_cluster_before_any_page_opens(server, server_tmp):
    """First in this file: no page has been opened. The server is ready (a worker can take a run) all the same."""
    serving.wait_for(f"{server}/ready", b"ready", 120)
    assert len(list(server_tmp.glob("initlab-dask-*/scheduler.json"))) == 1


def test_the_page_loads_with_the_initialisation_charts(server, browser):
    page = open_app(browser, server)
    no_exception(page)
    assert page.get_by_text("Init Lab", exact=True).count() >= 1
    assert page.get_by_text("Activations A per layer").count() >= 1
    # the page's scripts came compressed (app/serving/assets.py): Streamlit's (3.5 MB unpacked) and plotly.js (1.5)
    sizes = page.evaluate(f"""performance.getEntriesByType('resource')
        .filter(r => r.name.includes('/static/') || r.name.endsWith('/{PLOTLY_JS.name}'))
        .map(r => [r.name.endsWith('/{PLOTLY_JS.name}'), r.encodedBodySize, r.decodedBodySize])""")
    assert [(encoded < decoded / 2.5) for plotly, encoded, decoded in sizes if plotly] == [True], sizes
    encoded, decoded = (sum(size[i] for size in sizes) for i in (1, 2))
    assert decoded > 4.5e6 and encoded < decoded / 2.5, (encoded, decoded)
    page.locator(".st-key-init_std .nsewdrag").first.hover()  # plotly builds its toolbar on the first hover
    titles = page.locator(".st-key-init_std .modebar-btn").evaluate_all("bs => bs.map(b => b.dataset.title)")
    assert "Zoom" in titles and not [t for t in titles if "Share" in t or "Cloud" in t], titles  # no upload
    shot(page, "01-at-initialisation")
    page.get_by_role("tab", name="Theory").click()
    time.sleep(2.0)
    no_exception(page)
    shot(page, "05-theory")
    page.close()


def stopped_step(page) -> int:
    """The step in the "Stopped at step N" status. Read from that alert, not the first one: for a moment after Stop
    the page can still hold the live fragment's last "Training… step N" above it, until Streamlit clears it."""
    text = page.locator('[data-testid="stAlert"]', has_text="Stopped at step").first.inner_text()
    match = re.search(r"step ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_stop_stops_a_run_and_leaves_its_charts(server, browser):
    long_run = Config(dataset="circles", layers=(10, 5), init="he_normal", lr=0.05, iterations=100_000,
                      record_every=50)
    page = open_app(browser, server, to_query(long_run, "custom"))
    page.get_by_role("tab", name="Training").click()
    page.get_by_test_id("stTabs").get_by_role("button", name="Start").click()
    page.wait_for_function("document.body.innerText.match(/Training… step [1-9]/)", timeout=30_000)
    time.sleep(1.5)
    shot(page, "02-training-live")
    page.get_by_test_id("stTabs").get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped at step").wait_for(timeout=30_000)  # the page reruns once after Stop; slower when busy
    stopped = stopped_step(page)
    time.sleep(2.0)
    assert stopped_step(page) == stopped, "the view keeps the step where Stop was pressed"
    assert 0 < stopped < long_run.iterations
    assert page.get_by_test_id("stTabs").get_by_role("button", name="Start").is_enabled()
    assert page.get_by_text("Decision boundary").count() >= 1
    no_exception(page)
    shot(page, "02-training-stopped")
    page.get_by_role("tab", name="Run file").click()
    page.get_by_test_id("stTabs").get_by_role("button", name="Download run (.h5)").wait_for(timeout=15_000)
    shot(page, "04-run-file")
    page.close()


WATCH_LIVE_CHARTS = """() => {
  // Every live chart's drawing node added or removed from now on, and the loss chart's points as they change.
  window.chartNodes = [];
  new MutationObserver(function (mutations) {
    for (const m of mutations) {
      for (const [kind, nodes] of [["added", m.addedNodes], ["removed", m.removedNodes]]) {
        for (const n of nodes) {
          if (n.nodeType === 1 && (n.matches(".initlab-live-chart") || n.querySelector(".initlab-live-chart"))) {
            window.chartNodes.push(kind);
          }
        }
      }
    }
  }).observe(document.body, {subtree: true, childList: true});
}"""
LOSS_POINTS = "document.querySelector('.st-key-live_loss .initlab-live-chart')?._fullData?.[0]?.x?.length ?? 0"
PLOTLY_LOADS = f"performance.getEntriesByType('resource').filter(r => r.name.endsWith('/{PLOTLY_JS.name}')).length"
LIVE_CHARTS = 7  # loss, accuracy, activation std, gradient norm, decision boundary, update ratio, heatmap


def test_live_charts_change_in_place(server, browser):
    """While a run computes, each chart keeps its drawing and takes the new figure in place (`app/live_chart.py`):
    no chart is removed and drawn again (a heatmap left a blank frame each time), the page loads plotly.js once, and
    the curves do grow."""
    # wide enough to be still training a minute later on a fast machine ((10, 5) took 2 s for 18,700 of its steps)
    run = Config(dataset="circles", layers=(256, 256), init="he_normal", lr=0.04, iterations=100_000, record_every=50)
    page = open_app(browser, server, to_query(run, "custom"))
    page.get_by_role("tab", name="Training").click()
    page.get_by_test_id("stTabs").get_by_role("button", name="Start").click()
    page.wait_for_function(f"document.querySelectorAll('.initlab-live-chart.js-plotly-plot').length >= {LIVE_CHARTS}",
                           timeout=30_000)
    page.wait_for_function(f"{LOSS_POINTS} > 1", timeout=30_000)
    page.evaluate(WATCH_LIVE_CHARTS)
    points = page.evaluate(LOSS_POINTS)
    step = page.wait_for_function("document.body.innerText.match(/Training… step ([\\d,]+)/)[1]").json_value()
    # a live file is re-read in at most a tenth of the time (app/serving/store.py): on a busy machine that is seconds
    page.wait_for_function(f"({LOSS_POINTS}) != {points} || document.body.innerText.match(/Training… step ([\\d,]+)/)"
                           f"?.[1] !== {json.dumps(step)}", timeout=30_000, polling=250)  # the run moved on
    assert page.get_by_text("Training…").count() >= 1, "still computing, so the charts were live all along"
    assert page.evaluate(f"{LOSS_POINTS} > 1")
    assert page.evaluate("window.chartNodes") == [], "a live chart was drawn anew instead of updated"
    assert page.evaluate(PLOTLY_LOADS) == 1, "plotly.js loaded once, for the first tab's charts and the live ones"
    no_exception(page)
    page.get_by_test_id("stTabs").get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped at step").wait_for(timeout=30_000)  # the page reruns once after Stop; slower when busy
    page.close()


def test_the_seed_preset_compare_tab_answers_the_seed_question(server, browser):
    page = open_app(browser, server)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_test_id("stTabs").get_by_role("button", name="Train all").click()
    table = page.locator('[data-testid="stTable"]')
    table.wait_for(timeout=60_000)
    shot(page, "03-compare-training")  # the loss curves and the table while both runs train
    page.wait_for_function(
        "(() => { const t = document.querySelector('[data-testid=\"stTable\"]');"
        " return t && (t.innerText.match(/finished/g) || []).length === 2; })()", timeout=480_000, polling=1000)  # 2 x 2500 steps; minutes on a busy machine
    rows = [r.inner_text() for r in table.locator("tbody tr").all()]
    assert len(rows) == 2
    small, course = (dict(zip(["initialiser", "status", "step", "loss", "train", "test"], r.split("\t")))
                     for r in rows)
    if HAS_COURSE_FILES:
        assert (small["test"].strip(), course["test"].strip()) == ("0.34", "0.80")
    else:
        assert small["step"].strip() == course["step"].strip() == "2,500"
    no_exception(page)
    shot(page, "03-compare")
    page.close()


def test_markdown_in_a_link_shows_as_text_with_no_live_link_or_image(server, browser):
    """A URL parameter written as Markdown (a sign-in link, a remote image, a bare address) reaches the error box as
    the text it is: the rendered page links to and loads nothing from it."""
    hostile = ("**Session expired.** [Sign in](https://evil.example/login) ![x](http://evil.example/p.png) "
               "www.evil.example")
    requests = []
    page = browser.new_page(viewport=VIEWPORT)
    page.on("request", lambda r: requests.append(r.url) if urlparse(r.url).hostname == "evil.example" else None)
    page.goto(server + "/?" + urlencode({"dataset": hostile}))
    alert = page.locator('[data-testid="stAlert"]', has_text="unknown dataset")
    alert.wait_for(timeout=30_000)
    assert hostile in alert.inner_text().replace("\u2060", "")
    assert page.locator('a[href*="evil.example"], img[src*="evil.example"]').count() == 0
    assert requests == []
    no_exception(page)
    page.close()


# --- layout: a projector's first screen, a phone's width -----------------------------------------------------------
PLOT_AREA = """sel => {
  // The plot area (inside the axes) of the first chart matching `sel`, in viewport pixels, from plotly's layout.
  const gd = document.querySelector(sel);
  if (!gd || !gd._fullLayout) return null;
  const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
  return {top: box.top + size.t, bottom: box.top + size.t + size.h, left: box.left + size.l, right: box.left + size.l + size.w};
}"""
TOOLBARS_OVER_TITLES = """() => {
  // The charts that have a toolbar and a title, and the titles of those whose toolbar box meets the title's.
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const both = [...document.querySelectorAll('.js-plotly-plot')].filter(
    gd => gd.querySelector('.modebar') && gd.querySelector('.gtitle'));
  return {checked: both.length, covered: both.filter(gd => meets(gd.querySelector('.modebar').getBoundingClientRect(),
    gd.querySelector('.gtitle').getBoundingClientRect())).map(gd => gd.querySelector('.gtitle').textContent)};
}"""
SCROLL_THROUGH_CHARTS = f"""async () => {{
  for (const chart of document.querySelectorAll('{EVERY_CHART}')) {{
    chart.scrollIntoView();
    await new Promise(done => requestAnimationFrame(() => setTimeout(done, 100)));  // seen, one chart at a time
  }}
}}"""
EVERY_CHART_DRAWN = f"""() => [...document.querySelectorAll('{EVERY_CHART}')].every(
  chart => chart.querySelector('.modebar'))"""
OVERFLOW = """() => {
  // Horizontal overflow of the document and of Streamlit's scrolling main area: how many pixels too wide.
  const main = document.querySelector('[data-testid="stMain"]');
  return Math.max(document.scrollingElement.scrollWidth - innerWidth, main ? main.scrollWidth - main.clientWidth : 0);
}"""


def layout_page(browser, url: str, viewport: dict, query: dict[str, str]):
    page = browser.new_page(viewport=viewport)
    page.goto(url + "/?" + urlencode(query))
    page.wait_for_selector(DRAWN_CHART, timeout=120_000)  # a cold server probes
    serving.wait_until_idle(page, 120_000)
    return page


def open_tab_and_wait(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    serving.wait_until_idle(page)


def in_first_screen(page, selector: str, height: int) -> None:
    area = page.evaluate(PLOT_AREA, selector)
    assert area is not None, f"no chart drawn at {selector}"
    assert 0 <= area["top"] and area["bottom"] <= height, f"{selector}'s plot area {area} is not in the first screen"


def seed_question_short() -> dict[str, str]:
    """The seed question's network and data (its long verdict), trained for a few steps only."""
    from app.presets import presets
    return to_query(presets(SHARED_DATA if HAS_COURSE_FILES else None)["seed question"].config.replace(
        iterations=50, record_every=10), "seed question")


def test_a_projectors_first_screen_shows_a_chart_on_at_initialisation_and_training(server, browser, tmp_path):
    """At 1280x720, without scrolling: the std-against-depth chart beside the verdict, and in Training, after a
    run, the loss curve below one row of Start, Stop and the run's status."""
    viewport = {"width": 1280, "height": 720}
    page = layout_page(browser, server, viewport, seed_question_short())
    in_first_screen(page, '.st-key-init_std .js-plotly-plot', viewport["height"])
    assert page.locator(f".st-key-{PRELOAD_KEY}").is_hidden(), "load_plotly's element takes no room on the page"
    open_tab_and_wait(page, "Training")
    page.get_by_test_id("stTabs").get_by_role("button", name="Start").click()
    page.get_by_text("Finished 50 steps").wait_for(timeout=300_000)  # slow while the other worker trains
    serving.wait_until_idle(page)
    in_first_screen(page, '.st-key-live_loss .js-plotly-plot', viewport["height"])
    no_exception(page)
    page.screenshot(path=str(tmp_path / "training-1280x720.png"))
    page.close()


def test_a_phone_neither_scrolls_sideways_nor_hides_chart_titles_under_the_toolbar(server, browser, tmp_path):
    page = layout_page(browser, server, {"width": 390, "height": 844}, seed_question_short())
    checked = 0
    for tab in ("At initialisation", "Training", "Compare"):
        if tab != "At initialisation":
            open_tab_and_wait(page, tab)
        page.evaluate(SCROLL_THROUGH_CHARTS)  # Streamlit draws a chart (and its toolbar) once it has been on screen
        page.wait_for_function(EVERY_CHART_DRAWN, timeout=30_000)
        assert page.evaluate(OVERFLOW) <= 0, f"{tab}: the page is wider than the phone"
        toolbars = page.evaluate(TOOLBARS_OVER_TITLES)
        assert toolbars["covered"] == [], f"{tab}: the toolbar covers these charts' titles"
        checked += toolbars["checked"]
        page.screenshot(path=str(tmp_path / f"{tab}-390x844.png"), full_page=True)
    assert checked >= 3, "the charts' toolbars and titles were drawn"
    no_exception(page)
    page.close()


CELL_CENTRE_JS = """([x, y]) => {  // a heatmap cell's centre on the screen, through plotly's own axes
    const plot = document.querySelector('.st-key-sweep_heatmap .js-plotly-plot');
    const layout = plot._fullLayout, box = plot.getBoundingClientRect();
    return [box.left + layout._size.l + layout.xaxis.l2p(x), box.top + layout._size.t + layout.yaxis.l2p(y)];
}"""


def test_a_click_on_a_sweep_cell_shows_its_curve_and_its_link_opens_the_training_tab(server, browser, tmp_path):
    """A link opens on the tab it names (?view=Sweep); a click near, not on, a cell's centre picks that cell."""
    from core.sweep import SweepSpec
    from core.sweep_file import SweepResults, write_sweep

    spec = SweepSpec(Config(dataset="circles", iterations=30), (1.0, 2.0, 3.0), (2, 4, 6), 4, 0.05)
    results = {(row, column): {"train_accuracy": 0.5 + 0.1 * column, "test_accuracy": 0.5, "diverged": False,
                               "loss": 0.5 / (row + 1), "message": None, "steps": [0, 10, 20], "seconds": 0.1,
                               "losses": [0.7, 0.6, 0.5 / (row + 1)]} for row, column in spec.cells()}
    write_sweep(tmp_path / "sweep.h5", SweepResults(spec, "circles", "f" * 16, 2, results))
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(server + "/?" + urlencode({"view": "Sweep"}))
    page.locator('.st-key-sweep_upload input[type=file]').wait_for(state="attached", timeout=120_000)
    assert page.get_by_role("tab", name="Sweep").get_attribute("aria-selected") == "true"
    page.locator('.st-key-sweep_upload input[type=file]').set_input_files(str(tmp_path / "sweep.h5"))
    page.locator(".st-key-sweep_heatmap .js-plotly-plot .heatmaplayer").wait_for(timeout=30_000)
    serving.wait_until_idle(page)
    x, y = page.evaluate(CELL_CENTRE_JS, [2.0, 4])
    page.mouse.click(x + 25, y - 15)  # inside the cell, off its centre
    page.get_by_text("Loss while training, σ_w² = 2, depth 4").wait_for(timeout=30_000)
    serving.wait_until_idle(page)
    no_exception(page)
    page.screenshot(path=str(tmp_path / "sweep-cell.png"), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "06-sweep-cell.png"), full_page=True)
    link = page.get_by_role("link", name="Open in the Training tab").get_attribute("href")
    training = browser.new_page(viewport=VIEWPORT)
    training.goto(server + "/" + link if link.startswith("?") else link)
    training.get_by_role("tab", name="Training").wait_for(timeout=60_000)
    serving.wait_until_idle(training, 120_000)
    assert training.get_by_role("tab", name="Training").get_attribute("aria-selected") == "true"
    # the tab's content arrives after the tab bar (slowly on a busy machine): wait for it, do not count at once
    training.get_by_test_id("stTabs").get_by_role("button", name="Start").wait_for(timeout=60_000)
    no_exception(training)
    training.close()
    page.close()


def test_the_pages_used_the_cluster_the_server_started(server, server_tmp):
    """Last in this file: every page above computed on the one cluster started with the server, none started another."""
    assert len(list(server_tmp.glob("initlab-dask-*/scheduler.json"))) == 1
