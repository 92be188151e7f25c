"""The dashboard driven headlessly with Streamlit's AppTest: presets, widgets, the URL, uploads, a short run."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.glossary import GLOSSARY, explain
from app.markup import escape_markdown
from app.presets import presets
from app.state import compact_layers, from_query, to_query, versioned
from core.config import Config
from core.data import load_dataset
from core.record import RunRecorder, record
from core.train import Training
from app.serving import server
from app.serving.server import close_run_store
from tests.conftest import CODE_SPAN, SHARED_DATA, shown_text

APP = str(Path(__file__).resolve().parents[1] / "app" / "page.py")
TIMEOUT = 120


@pytest.fixture(autouse=True)
def no_course_files(monkeypatch, tmp_path, dask_client):
    """The app reads the data folder from the environment: point it at an empty folder (shipped data only). Its runs
    go to the in-process test cluster, and the presets are not computed in advance."""
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INITLAB_DASK_SCHEDULER", dask_client.scheduler.address)
    monkeypatch.setenv("INITLAB_PRECOMPUTE_PRESETS", "0")


def start(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    return at.run()


def open_tab(at: AppTest, name: str) -> AppTest:
    """Click a tab: only the open tab's code runs (st.tabs keyed "view", rerun on change)."""
    at.session_state["view"] = name
    return at.run()


def key(at: AppTest, name: str) -> str:
    """A sidebar widget's key now: each loaded preset gives the config widgets new keys (app.state.versioned)."""
    return versioned(name, at.session_state["widget_generation"])


def decode(array) -> list:
    """A trace's data array from the chart's JSON: plain list, or plotly's typed array {dtype, bdata}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def live_chart_data(at: AppTest) -> list[dict]:
    """The data of each app/live_chart.py element of the page, in the page's order."""
    return [json.loads(node.proto.json) for node in at.get("bidi_component")
            if node.proto.component_name == "initlab_live_chart"]


def chart_specs(at: AppTest) -> list[dict]:
    """The figures of the page's charts: the dashboard's own (app/live_chart.py), then Streamlit's (the sweep's
    heatmap)."""
    own = [json.loads(data["figure"]) for data in live_chart_data(at) if "figure" in data]  # not load_plotly's
    return own + [json.loads(node.proto.spec) for node in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [spec["layout"]["title"]["text"] for spec in chart_specs(at)]


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_the_page_asks_for_plotly_js_first_and_every_chart_after_it():
    """app/live_chart.py's `load_plotly` comes before every chart, so the browser loads plotly.js while the server
    still computes them; it sends no figure, and every chart sends one."""
    from app.live_chart import PLOTLY_JS_URL

    first, *charts = live_chart_data(start())
    assert first == {"plotly": PLOTLY_JS_URL}
    assert len(charts) >= 5 and all("figure" in data for data in charts)


@pytest.mark.parametrize("name", list(presets()))
def test_every_preset_starts_and_probes(name):
    at = start()
    at.selectbox(key="preset").set_value(name).run()
    no_errors(at)
    preset = presets()[name]
    assert at.session_state.config == preset.config
    assert "Activations A per layer" in chart_titles(at)


def test_seed_preset_without_course_files_uses_shapes64():
    at = start()
    assert at.session_state.config.dataset == "shapes64"
    assert at.session_state.config.layers == (20, 7, 5)


def test_widgets_change_the_config_and_the_url():
    at = start()
    at.text_input(key=key(at, "cfg_layers")).set_value("8,4").run()
    at.selectbox(key=key(at, "cfg_init")).set_value("xavier_normal").run()
    at.number_input(key=key(at, "cfg_lr")).set_value(0.05).run()
    no_errors(at)
    config = at.session_state.config
    assert (config.layers, config.init, config.lr) == ((8, 4), "xavier_normal", 0.05)
    assert at.query_params["layers"] == "8,4" and at.query_params["init"] == "xavier_normal"
    assert any("frac{2}{n_{in} + n_{out}}" in latex.value for latex in at.sidebar.latex)


def test_an_invalid_widget_value_is_an_error_message_not_a_traceback():
    at = start()
    at.text_input(key=key(at, "cfg_layers")).set_value("20,x").run()
    assert not at.exception
    assert any("layers" in e.value for e in at.sidebar.error)


def test_a_config_over_the_cap_is_refused_before_any_work(monkeypatch):
    monkeypatch.setenv("INITLAB_MAX_LAYERS", "3")
    at = start()
    assert not at.exception
    assert any("cap of 3" in e.value for e in at.error)
    assert not chart_specs(at)


def test_a_link_deeper_than_the_cap_says_so_instead_of_dropping_layers():
    """layers=1x1000 is 1001 layers: over the default cap of 100, refused with the cap named, not cut to 99."""
    at = start({"layers": "1x1000"})
    assert not at.exception
    assert at.session_state.config.layers == (1,) * 1000
    assert at.number_input(key=key(at, "net_depth")).value == 1000
    assert any("cap of 100 layers" in shown_text(e.value) and "INITLAB_MAX_LAYERS" in shown_text(e.value)
               for e in at.error)
    assert not chart_specs(at)


def test_the_depth_field_follows_the_servers_cap_on_layers(monkeypatch):
    monkeypatch.setenv("INITLAB_MAX_LAYERS", "130")
    at = start({"layers": "4x120", "dataset": "xor"})
    no_errors(at)
    assert at.session_state.config.layers == (4,) * 120
    at.number_input(key=key(at, "net_depth")).set_value(129).run()
    no_errors(at)
    assert len(at.session_state.config.layers) == 129 and "Activations A per layer" in chart_titles(at)
    at.number_input(key=key(at, "net_depth")).set_value(130).run()
    assert any("cap of 130 layers" in shown_text(e.value) for e in at.error)


@pytest.fixture
def fresh_run_store(monkeypatch):
    """The run store is built once per server process, from $INITLAB_CACHE_*: a test that sets them gets a store of
    its own, built at its first page run, and the tests after it the store from before."""
    monkeypatch.setattr(server, "_store", None)
    yield
    close_run_store()


def test_a_malformed_server_setting_is_a_message(monkeypatch, tmp_path, fresh_run_store):
    monkeypatch.setenv("INITLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("INITLAB_CACHE_MAX_MB", "lots")
    at = start()
    assert not at.exception
    assert any("INITLAB_CACHE_MAX_MB" in shown_text(e.value) for e in at.error)


def computing(at: AppTest) -> bool:
    """The page says its run is training, or waiting for a free worker of the cluster."""
    return any("Training…" in i.value or "Waiting for a free worker" in i.value for i in at.info)


def test_clearing_streamlits_caches_keeps_the_runs_in_progress():
    """Any client can send Streamlit's "clear caches" request over its WebSocket (the viewer menu only hides the
    button); the server then calls st.cache_data.clear() and st.cache_resource.clear() for every session. A run in
    progress must survive it, watched as before: a second run store would have lost it (and doubled the cap on
    concurrent trainings)."""
    long_run = Config(dataset="circles", layers=(10, 5), lr=0.05, iterations=100_000, record_every=50)
    at = open_tab(start(to_query(long_run, "custom")), "Training")
    at.button(key="start").click().run()
    assert computing(at)
    st.cache_data.clear()
    st.cache_resource.clear()
    at.run()
    no_errors(at)
    assert not any("dropped" in w.value for w in at.warning)
    assert computing(at), [i.value for i in at.info]
    at.button(key="stop").click().run()
    assert any("Stopped at step" in w.value for w in at.warning)


def test_init_tab_draws_one_histogram_row_per_layer_and_log_std():
    at = start()
    specs = {spec["layout"]["title"]["text"]: spec for spec in chart_specs(at)}
    depth = len(at.session_state.config.layers) + 1
    assert len(specs["Activations A per layer"]["data"]) == depth
    assert len(specs["Back-propagated gradients dZ per layer"]["data"]) == depth
    assert specs["Standard deviation against depth"]["layout"]["yaxis"]["type"] == "log"
    at.toggle(key="init_log_y").set_value(False).run()
    specs = {spec["layout"]["title"]["text"]: spec for spec in chart_specs(at)}
    assert specs["Standard deviation against depth"]["layout"]["yaxis"]["type"] == "linear"


def wait_until_finished(at: AppTest, steps: int, seconds: float = 60) -> None:
    """Rerun the page until its run says it finished `steps` steps (a timed fragment does not fire in AppTest)."""
    deadline = time.monotonic() + seconds
    while not any(f"Finished {steps} steps" in s.value for s in at.success):
        assert time.monotonic() < deadline, [e.value for e in (*at.info, *at.warning, *at.error, *at.caption)]
        time.sleep(0.2)
        at.run()
    # the run can end between the verdict's drawing and the status's in one page run; the browser's page then reruns
    # (the fragment's st.rerun), which AppTest does not follow: one more run draws the page as the student sees it
    at.run()


def wait_until_both_finished(at: AppTest, seconds: float = 90) -> None:
    """Rerun the page until the Compare table shows both runs finished, then once more (see wait_until_finished)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = at.table[0].value if at.table else None
        if rows is not None and list(rows["status"]).count("finished") == 2:
            break
        time.sleep(0.3)
        at.run()
    at.run()


def trained_page(preset: str, iterations: int, record_every: int = 10) -> AppTest:
    """The page on `preset` shortened to `iterations` steps, trained to its end in the Training tab."""
    at = start()
    at.selectbox(key="preset").set_value(preset).run()
    at.number_input(key=key(at, "cfg_iterations")).set_value(iterations).run()
    at.number_input(key=key(at, "cfg_record_every")).set_value(record_every).run()
    open_tab(at, "Training")
    at.button(key="start").click().run()
    wait_until_finished(at, iterations)
    return at


def test_a_short_training_run_completes_and_can_be_downloaded():
    at = trained_page("custom", 40)
    no_errors(at)
    assert any("Finished 40 steps" in s.value for s in at.success)
    titles = chart_titles(at)
    for title in ("Loss", "Accuracy", "Activation std per layer", "Update-to-weight ratio per layer",
                  "Decision boundary at step 40"):  # the boundary of the step the other charts end at
        assert title in titles
    loss = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Loss")
    assert decode(loss["data"][0]["x"]) == [0, 10, 20, 30, 40]
    open_tab(at, "Run file")
    assert at.get("download_button"), "a finished run offers its .h5 file"
    assert any("finished at step 40 of 40 · 5 snapshots" in c.value for c in at.caption)


def test_compare_trains_each_initialiser_on_the_same_network_and_tabulates_them():
    at = start()  # the seed question on shapes64, shortened
    at.number_input(key=key(at, "cfg_iterations")).set_value(30).run()
    at.number_input(key=key(at, "cfg_record_every")).set_value(10).run()
    open_tab(at, "Compare")
    at.button(key="train_all").click().run()
    wait_until_both_finished(at)
    no_errors(at)
    table = at.table[0].value
    assert list(table["initialiser"]) == ["normal ×0.01", "course_sqrt"]
    assert list(table["step"]) == ["30", "30"]
    assert all(re.fullmatch(r"took (under )?[\d.]+ s", t) for t in table["time"]), list(table["time"])
    loss = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Loss by initialiser")
    assert [trace["name"] for trace in loss["data"]] == ["normal ×0.01", "course_sqrt"]
    std = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Activation std against depth at step 0")
    small, course = (decode(trace["y"]) for trace in std["data"])
    assert small[2] < course[2] / 100  # ×0.01 has lost the signal by the third layer; /sqrt(n) keeps it


def sidebar_captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_the_preset_note_goes_when_the_network_is_no_longer_the_presets():
    at = start()
    assert "4-layer cat classifier" in sidebar_captions(at)
    at.selectbox(key=key(at, "cfg_init")).set_value("he_normal").run()  # another initialiser: still the preset's net
    assert "4-layer cat classifier" in sidebar_captions(at)
    at.text_input(key=key(at, "cfg_layers")).set_value("20,7").run()
    assert "4-layer cat classifier" not in sidebar_captions(at) and "no longer applies" in sidebar_captions(at)


def test_scale_shows_what_is_in_force_and_comes_back_with_a_scaled_initialiser():
    at = start()
    at.number_input(key=key(at, "cfg_init_scale")).set_value(10.0).run()
    at.selectbox(key=key(at, "cfg_init")).set_value("he_normal").run()
    assert not [n for n in at.sidebar.number_input if n.label == "Scale s"]  # no stale 10 on show
    shown = next(t for t in at.sidebar.text_input if t.label == "Scale s")
    assert shown.value == "not used" and shown.disabled
    at.selectbox(key=key(at, "cfg_init")).set_value("normal").run()
    no_errors(at)
    assert at.number_input(key=key(at, "cfg_init_scale")).value == 10.0 and at.session_state.config.init_scale == 10


# Formula syntax written as plain text: a superscript or subscript, an expectation E[...], a Greek letter with an
# index; outside $...$ (typeset) and code spans nothing of it may remain.
PLAIN_FORMULA = re.compile(r"\^|_\{|\bE\[|[σχξφ][_₁²*]|q\*")
MATH_SPAN = re.compile(r"(?<![\\$])\$(?!\s)[^$]+?(?<![\s\\])\$")


def page_help(at: AppTest) -> str:
    """Every hover help on the page (widgets, captions, headings), in page order."""
    def walk(node):
        yield node
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else ()):
            yield from walk(child)
    return "\n".join(node.proto.help for node in walk(at._tree) if getattr(getattr(node, "proto", None), "help", ""))


def test_every_glossary_terms_help_reaches_the_page_and_no_caption_writes_a_formula_as_text(tmp_path):
    path = tmp_path / "run.h5"  # a recorded run: the Training tab's charts without training
    list(record(Training(Config(dataset="circles", layers=(4,), iterations=10, record_every=5),
                         load_dataset("circles")), path))
    at = open_tab(start(), "Run file")
    at.file_uploader(key="run_upload").upload("run.h5", path.read_bytes(), "application/x-hdf5").run()
    helped, plain = set(), []
    for tab in ("At initialisation", "Training", "Theory"):
        open_tab(at, tab)
        no_errors(at)
        shown = page_help(at)
        helped |= {term for term in GLOSSARY if explain(term) in shown}
        bodies = [e.value for kind in ("markdown", "caption", "info") for e in getattr(at.main, kind)]
        plain += [body for body in bodies if PLAIN_FORMULA.search(MATH_SPAN.sub("", CODE_SPAN.sub("", body)))]
    assert helped == set(GLOSSARY)
    assert not plain


def test_a_bad_dataset_upload_shows_the_loaders_error():
    at = start()
    at.file_uploader(key="dataset_upload").upload("broken.h5", b"this is not HDF5", "application/x-hdf5").run()
    assert not at.exception
    assert any("broken" in e.value for e in at.sidebar.error)


def test_a_good_dataset_upload_becomes_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train_tiny.h5"
    with h5py.File(path, "w") as f:
        f["train_set_x"] = rng.integers(0, 256, (12, 4, 4, 3), dtype=np.uint8)
        f["train_set_y"] = np.arange(12) % 2
        f["test_set_x"] = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
        f["test_set_y"] = np.arange(6) % 2
    at = start()
    at.file_uploader(key="dataset_upload").upload("train_tiny.h5", path.read_bytes(), "application/x-hdf5").run()
    no_errors(at)
    assert at.session_state.config.dataset.startswith("upload:")
    assert "Activations A per layer" in chart_titles(at)


def test_the_course_files_uploaded_together_become_the_dataset(cat_data):
    files = [(name, (SHARED_DATA / name).read_bytes(), "application/x-hdf5")
             for name in ("test_catvnoncat.h5", "train_catvnoncat.h5")]
    at = start()
    at.file_uploader(key="dataset_upload").set_value(files).run()
    no_errors(at)
    assert at.session_state.config.dataset == "upload:catvnoncat"
    assert at.session_state.uploaded_dataset.fingerprint() == cat_data.fingerprint()


def test_an_upload_error_shows_file_names_and_keys_as_code(tmp_path):
    path = tmp_path / "my_train_file.h5"
    with h5py.File(path, "w") as f:
        f["train_set_x"] = np.zeros((4, 2, 2), dtype=np.uint8)
        f["train_set_y"] = np.arange(4) % 2
    at = start()
    at.file_uploader(key="dataset_upload").upload(path.name, path.read_bytes(), "application/x-hdf5").run()
    message = at.sidebar.error[0].value  # Markdown: a name outside a code span would italicise between underscores
    assert "`my_train_file.h5` has no `test_set_x`" in message and "`test_catvnoncat.h5`" in message
    assert "_" not in CODE_SPAN.sub("", message)


@pytest.mark.parametrize("content", [b"not HDF5 at all", "dataset"], ids=["not-hdf5", "a-dataset-not-a-run"])
def test_a_bad_run_file_upload_shows_an_error(content, tmp_path):
    if content == "dataset":  # the likeliest mistake: the course's data file dropped on the run-file uploader
        path = tmp_path / "train.h5"
        with h5py.File(path, "w") as f:
            f["train_set_x"] = np.zeros((2, 2, 2, 3), dtype=np.uint8)
        content = path.read_bytes()
    at = open_tab(start(), "Run file")
    at.file_uploader(key="run_upload").upload("run.h5", content, "application/x-hdf5").run()
    assert not at.exception
    assert any("run file" in e.value for e in at.error) and at.session_state.replay is None


def test_a_replayed_run_shows_its_own_settings_and_loads_them_into_the_sidebar(tmp_path):
    config = Config(dataset="circles", layers=(4,), init="he_normal", iterations=20, record_every=5, seed=7)
    path = tmp_path / "my_run.h5"
    list(record(Training(config, load_dataset("circles")), path))
    at = open_tab(start(), "Run file")  # the seed question in the sidebar: another network, other data
    at.file_uploader(key="run_upload").upload(path.name, path.read_bytes(), "application/x-hdf5").run()
    at = open_tab(at, "Training")
    header = next(shown_text(m.value) for m in at.markdown if "Replaying" in m.value)
    assert "Replaying my_run.h5: **[2, 4, 1] relu -> sigmoid** on circles · He/Kaiming normal" in header
    assert "seed 7" in header and "20 iterations" in header
    assert "Decision boundary" not in " ".join(chart_titles(at))  # the sidebar's data is not the run's
    at.button(key="load_replay_settings").click().run()
    no_errors(at)
    assert at.session_state.config == config and at.session_state.preset == "custom"
    assert at.text_input(key=key(at, "cfg_layers")).value == "4"
    assert "Decision boundary at step 20" in chart_titles(at)  # now on the run's data: the final step's weights


def test_a_recorded_run_replays_in_the_training_tab(tmp_path):
    config = Config(dataset="circles", layers=(4,), iterations=20, record_every=5)
    path = tmp_path / "run.h5"
    list(record(Training(config, load_dataset("circles")), path))
    at = open_tab(start(), "Run file")
    at.file_uploader(key="run_upload").upload("run.h5", path.read_bytes(), "application/x-hdf5").run()
    no_errors(at)
    assert any("Loaded run.h5" in shown_text(m.value) for m in at.success)
    open_tab(at, "Training")
    assert any("Replaying" in m.value for m in at.markdown)
    loss = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Loss")
    assert decode(loss["data"][0]["x"]) == [0, 5, 10, 15, 20]


def test_only_the_open_tab_runs_and_its_toggles_survive_a_visit_elsewhere():
    at = start()
    assert "Standard deviation against depth" in chart_titles(at)
    assert "Activation std against depth at step 0" not in chart_titles(at)  # Compare is closed: not computed
    at.toggle(key="init_log_y").set_value(False).run()
    open_tab(at, "Compare")
    assert chart_titles(at) == ["Activation std against depth at step 0"]
    at.multiselect(key="compare").set_value(["he_normal"]).run()
    open_tab(at, "At initialisation")
    assert not at.toggle(key="init_log_y").value
    open_tab(at, "Compare")
    assert at.multiselect(key="compare").value == ["he_normal"]
    no_errors(at)


def test_the_mean_field_prediction_is_drawn_dashed_beside_the_measurement():
    at = start()  # seed question on shapes64: randn x 0.01, the collapse
    spec = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Standard deviation against depth")
    dashed = [t for t in spec["data"] if t.get("line", {}).get("dash") == "dash"]
    assert [t["name"] for t in dashed] == ["std Z predicted", "std A predicted", "std dZ predicted"]
    measured = {t["name"]: decode(t["y"]) for t in spec["data"]}
    ratio = np.array(measured["std Z predicted"]) / np.array(measured["std Z"])
    # within a factor 2 while the std spans 5 decades; not in the one output unit, whose std scatters by 100%
    # between draws (150 draws of this network): this draw is 2.3x its mean over draws, which the prediction is
    assert np.all((ratio[:-1] > 0.5) & (ratio[:-1] < 2)), ratio
    at.toggle(key="show_theory").set_value(False).run()
    spec = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Standard deviation against depth")
    assert [t["name"] for t in spec["data"]] == ["std Z", "std A", "std dZ"]


def test_depth_times_width_builds_a_deep_probe_and_switches_back_to_sizes():
    at = start()
    at.segmented_control(key=key(at, "network_mode")).set_value("depth × width").run()
    assert (at.number_input(key=key(at, "net_depth")).value,
            at.number_input(key=key(at, "net_width")).value) == (3, 20)
    at.number_input(key=key(at, "net_depth")).set_value(99).run()  # with the output layer, 100: the default cap
    at.number_input(key=key(at, "net_width")).set_value(64).run()
    no_errors(at)
    assert at.session_state.config.layers == (64,) * 99
    assert at.query_params["layers"] == "64x99"
    at.segmented_control(key=key(at, "network_mode")).set_value("sizes").run()
    assert at.text_input(key=key(at, "cfg_layers")).value == "64x99"
    at.selectbox(key="preset").set_value("30-layer ReLU").run()  # a uniform deep preset opens in depth x width
    assert at.segmented_control(key=key(at, "network_mode")).value == "depth × width"
    assert at.number_input(key=key(at, "net_depth")).value == 30
    no_errors(at)


def test_a_copied_url_restores_the_config_exactly():
    config = Config(dataset="moons", layers=(16,) * 12 + (3,), activation="tanh", init="xavier_uniform",
                    init_gain=1.25, seed=7, lr=0.03, iterations=300, record_every=20, dtype="float32")
    query = to_query(config, "custom")
    at = start(query)
    no_errors(at)
    assert at.session_state.config == config
    assert dict(at.query_params) == query
    assert at.text_input(key=key(at, "cfg_layers")).value == "16x12,3"


def test_circles_preset_says_why_the_course_prints_cost_inf_for_times_10():
    """The course prints cost inf at step 0 for randn * 10, Init Lab 1773.59: the preset and Compare say why."""
    at = start({"preset": "course 2 circles"})
    no_errors(at)
    assert any("inf" in c.value and "1773.59" in c.value for c in at.sidebar.caption)  # the preset's note
    assert not any("At step 0" in c.value for c in at.main.caption)  # course_he: the course's cost is finite
    open_tab(at, "Compare")
    no_errors(at)
    notes = [c.value for c in at.main.caption if "at step 0" in c.value]
    assert len(notes) == 1 and notes[0].startswith("normal ×10: ") and "is inf here" in notes[0]
    assert "1773.59" in notes[0]


def test_adam_settings_are_sidebar_fields_and_reach_the_url():
    at = start()
    at.selectbox(key="preset").set_value("custom").run()
    assert at.number_input(key=key(at, "cfg_beta2")).disabled  # gd: no Adam settings to set
    at.selectbox(key=key(at, "cfg_optimizer")).set_value("adam").run()
    at.number_input(key=key(at, "cfg_beta1")).set_value(0.8).run()
    at.number_input(key=key(at, "cfg_beta2")).set_value(0.99).run()
    at.number_input(key=key(at, "cfg_eps")).set_value(1e-6).run()
    no_errors(at)
    config = at.session_state.config
    assert (config.optimizer, config.beta1, config.beta2, config.eps) == ("adam", 0.8, 0.99, 1e-6)
    assert (at.query_params["beta1"], at.query_params["eps"]) == ("0.8", "1e-06")
    help_text = at.selectbox(key=key(at, "cfg_optimizer")).help
    assert "v = β₁v + (1 − β₁)dW" in help_text and "1 − β₁" in help_text


def test_a_malformed_url_falls_back_to_defaults_with_a_warning():
    at = start({"lr": "fast", "layers": "20,7,5"})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.session_state.config == presets()["seed question"].config


# --- text from users, shown as text --------------------------------------------------------------------------
# Streamlit renders the text of error, warning, info, success, markdown and caption elements as GitHub-flavoured
# Markdown. A link or image is an unescaped "](" ("[text](url)", "![alt](url)"), "][" or "]:" (references), "<"
# before a letter starts an autolink or HTML, and GitHub's autolinking makes bare URLs and e-mail addresses links.
LIVE_LINK = re.compile(r"(?<!\\)\][(\[:]|(?<!\\)<[a-z]|(?:https?|ftp)://|www\.|[\w.+-]@[\w-]", re.IGNORECASE)
HOSTILE = ("**Session expired.** [Sign in](https://evil.example/login) ![pixel](http://evil.example/p.png) "
           "<https://evil.example> www.evil.example a@evil.example :red[x] $x$ # h")


def markdown_bodies(at: AppTest) -> list[str]:
    return [e.value for kind in ("error", "warning", "info", "success", "markdown", "caption") for e in getattr(at, kind)]


def assert_shown_as_text(at: AppTest, text: str) -> None:
    """`text` reaches the page in some Markdown element, as exactly that text, and no element links anywhere."""
    assert not at.exception
    bodies = markdown_bodies(at)
    assert any(text in shown_text(body) for body in bodies), bodies
    assert not [body for body in bodies if LIVE_LINK.search(CODE_SPAN.sub("", body))]


@pytest.mark.parametrize("text", [HOSTILE, "`code` \\[x\\] 1. item\n\n- list\n> quote | a | b |\n***", "plain words"])
def test_escaped_text_has_no_markdown_and_reads_the_same(text):
    escaped = escape_markdown(text)
    assert not LIVE_LINK.search(escaped)
    assert shown_text(escaped) == text


@pytest.mark.parametrize("param", ["dataset", "init", "preset"])
def test_text_from_the_url_is_shown_as_text_not_markdown(param):
    """A link whose parameters are Markdown shows them as typed (in an error box, a warning), with no live link."""
    value = "[Sign in](https://evil.example/login)"  # the app quotes at most 40 characters of an unknown name
    assert_shown_as_text(start({param: value}), value)


def test_an_uploaded_files_name_is_shown_as_text():
    at = start()
    name = "**Expired** [Sign in](mailto:a@evil.example)"
    at.file_uploader(key="dataset_upload").upload(f"{name}.h5", b"this is not HDF5", "application/x-hdf5").run()
    assert_shown_as_text(at, name)


def test_an_uploaded_datasets_description_is_shown_as_text(tmp_path):
    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as f:
        f["train_set_x"] = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
        f["train_set_y"] = np.arange(6) % 2
        f["test_set_x"] = np.arange(16, dtype=np.uint8).reshape(4, 2, 2)
        f["test_set_y"] = np.arange(4) % 2
        f.attrs["description"] = HOSTILE
    at = start()
    at.file_uploader(key="dataset_upload").upload("tiny.h5", path.read_bytes(), "application/x-hdf5").run()
    assert at.session_state.config.dataset.startswith("upload:")
    assert_shown_as_text(at, HOSTILE)


def test_a_replayed_runs_name_and_stop_reason_are_shown_as_text(tmp_path):
    training = Training(Config(dataset="circles", layers=(4,), iterations=10, record_every=5), load_dataset("circles"))
    path = tmp_path / "run.h5"
    with RunRecorder(path, training) as recorder:
        for snapshot in training:
            recorder.add(snapshot)
        recorder.finish(HOSTILE)
    name = "![pixel](http:evil.example) www.evil.example.h5"
    at = open_tab(start(), "Run file")
    at.file_uploader(key="run_upload").upload(name, path.read_bytes(), "application/x-hdf5").run()
    assert_shown_as_text(at, f"Loaded {name}")
    at = open_tab(at, "Training")
    assert_shown_as_text(at, f"ended early: {HOSTILE}")
    assert any(f"Replaying {name}" in shown_text(m.value) for m in at.markdown)


# --- the pure state helpers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers, text", [((20, 7, 5), "20,7,5"), ((500,) * 10, "500x10"), ((4, 4), "4,4"),
                                          ((784, 100, 100, 100, 10), "784,100x3,10")])
def test_compact_layers_is_short_and_parses_back(layers, text):
    assert compact_layers(layers) == text
    assert Config.from_query({"layers": text}).layers == layers


def test_from_query_rejects_unknown_presets():
    config, preset, warning = from_query({"preset": "nope"}, presets())
    assert config is None and preset == "seed question" and "unknown preset" in warning


def test_a_click_that_overtakes_a_preset_change_does_not_mix_the_old_settings_in():
    """The browser sends every widget's value with each click. A click made before the preset's new values reached
    the page (a busy classroom server) carries the old ones: they must not overwrite what the preset set."""
    at = start()  # seed question: 2500 iterations, record every 25
    at.selectbox(key="preset").set_value("course 2 circles")
    stale = at._tree.get_widget_states()  # the new preset, every other widget as the page showed it before
    at.run()
    expected = presets()["course 2 circles"].config
    at._run(stale)  # e.g. a tab clicked while the preset's run was still on its way to the page
    no_errors(at)
    assert at.session_state["config"] == expected
    assert from_query(at.query_params, presets()) == (expected, "course 2 circles", None)  # and so does the URL
    assert at.number_input(key=key(at, "cfg_iterations")).value == expected.iterations


# --- the verdict panel (issue 18) ---------------------------------------------------------------------------------
def verdict_text(at: AppTest) -> str:
    """The markdown inside the container keyed "verdict" (its block's id ends with the key)."""
    def find(node):
        proto = getattr(node, "proto", None)
        if getattr(node, "type", None) == "flex_container" and str(getattr(proto, "id", "")).endswith("-verdict"):
            return node
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else []):
            hit = find(child)
            if hit is not None:
                return hit
        return None

    panel = find(at._tree)
    assert panel is not None, "no container keyed 'verdict' on this tab"
    return "\n".join(m.value for m in panel.markdown)


@pytest.mark.parametrize("tab", ["At initialisation", "Training", "Compare"])
def test_every_learning_tab_opens_with_the_verdict_of_its_numbers(tab, monkeypatch):
    course = Path(__file__).resolve().parents[2] / "shared" / "data"
    if (course / "train_catvnoncat.h5").exists():
        monkeypatch.setenv("INITLAB_DATA_DIR", str(course))
    at = open_tab(start(), tab)
    no_errors(at)
    text = verdict_text(at)
    config = at.session_state.config
    dataset = load_dataset(config.dataset, course if config.dataset == "catvnoncat" else None)
    from core.train import probe  # the numbers the panel must quote, measured here
    output_std = probe(config, dataset)[2].stats["z_std"][-1]
    from core.verdict import number
    if tab == "Compare":
        assert "normal ×0.01: should not learn" in text and f"output std of Z {number(output_std)}" in text
        assert "course\\_sqrt: should learn" in text  # underscores escaped: no italics
    else:
        assert number(output_std) in text and "majority class" in text
    if config.dataset == "catvnoncat":
        assert "4.4e-6" in text and ("34%" in text or tab == "Compare")


def test_the_verdict_follows_the_sidebar():
    at = start()
    at.selectbox(key="preset").set_value("course 2 circles").run()
    assert "Healthy" in verdict_text(at)
    at.selectbox(key=key(at, "cfg_init")).set_value("zeros").run()
    no_errors(at)
    assert "symmetry is never broken" in verdict_text(at)
    std = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Standard deviation against depth")
    assert "all units identical" in " ".join(a["text"] for a in std["layout"]["annotations"])
    floor = std["layout"]["shapes"][0]["y0"]
    assert floor == pytest.approx(0.05)  # a decade below the smallest value drawn: dZ's 0.5 at the output
    assert all(v == floor for t in std["data"][:2] for v in decode(t["y"]))  # std Z, std A: on the floor, not gaps


def tab_download(at: AppTest) -> set[str]:
    """The open tab's one download button, and the names of the files in the zip it gives."""
    assert [node.proto.label for node in at.get("download_button")] == ["Data (.zip)"]
    with zipfile.ZipFile(io.BytesIO(at.session_state["tab_data"].zip())) as archive:
        return set(archive.namelist())


def test_the_first_tab_offers_each_charts_data_and_the_statistics_in_one_download():
    at = start({"preset": "course 2 circles"})
    no_errors(at)
    assert tab_download(at) == {"init_std.csv", "init_a_hist.csv", "init_dz_hist.csv", "init_mean.csv",
                                "init_fractions.csv", "statistics.csv"}


def test_sessions_on_one_config_share_its_figures_until_one_changes_a_toggle():
    """A class on one preset: its figures are built once (ui.cached_figures, shared); a student's own toggle gives
    that student other figures, and leaves the others' alone."""
    first, second = start({"preset": "course 2 circles"}), start({"preset": "course 2 circles"})
    figures_of = lambda at: at.session_state["tab_data"].figures  # noqa: E731
    assert figures_of(first)["init_std"] is figures_of(second)["init_std"]
    second.toggle(key="init_log_y").set_value(False).run()
    no_errors(second)
    assert figures_of(second)["init_std"] is not figures_of(first)["init_std"]
    assert figures_of(first)["init_std"].layout.yaxis.type == "log"
    assert figures_of(second)["init_std"].layout.yaxis.type != "log"


def test_a_finished_run_is_judged_against_the_majority_class():
    at = trained_page("course 2 circles", 20)
    text = verdict_text(at)
    assert "after 20 steps" in text and "always answering" in text and "At initialisation: Healthy" in text
    loss = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Loss")
    assert [shape["y0"] for shape in loss["layout"]["shapes"]] == [pytest.approx(np.log(2))]
    names = tab_download(at)
    assert {"live_loss.csv", "live_accuracy.csv", "live_a_std.csv", "statistics.csv"} <= names, names
    statistics = at.session_state["tab_data"].statistics()
    assert len(statistics.splitlines()) == 1 + 3 * 3  # a header, then 3 layers (10, 5, 1) at steps 0, 10 and 20

def test_the_norm_and_residual_switches_reach_the_config_the_url_and_the_charts():
    at = start()
    at.text_input(key=key(at, "cfg_layers")).set_value("8x3").run()
    at.selectbox(key=key(at, "cfg_activation")).set_value("relu").run()
    at.selectbox(key=key(at, "cfg_norm")).set_value("batch").run()
    at.toggle(key=key(at, "cfg_residual")).set_value(True).run()
    at.number_input(key=key(at, "cfg_residual_scale")).set_value(0.5).run()
    no_errors(at)
    config = at.session_state.config
    assert (config.norm, config.residual, config.residual_scale) == ("batch", True, 0.5)
    assert (at.query_params["norm"], at.query_params["residual"], at.query_params["residual_scale"]) == \
        ("batch", "true", "0.5")
    specs = {spec["layout"]["title"]["text"]: spec for spec in chart_specs(at)}
    assert [t["name"] for t in specs["Standard deviation against depth"]["data"]][:4] == \
        ["std Z", "std A", "std dZ", "std Z before norm"]
    assert {"mean γ", "mean β"} <= {t["name"] for t in specs["Mean against depth"]["data"]}
    at.checkbox(key=key(at, "cfg_zero_init_residual")).check().run()  # relu: refused, with the reason
    assert any("would get no gradient and never learn" in e.value for e in at.sidebar.error)
    at.selectbox(key=key(at, "cfg_activation")).set_value("tanh").run()
    no_errors(at)
    at.number_input(key=key(at, "cfg_iterations")).set_value(20).run()
    at.number_input(key=key(at, "cfg_record_every")).set_value(10).run()
    open_tab(at, "Training")
    at.button(key="start").click().run()
    wait_until_finished(at, 20)
    no_errors(at)
    gamma = next(s for s in chart_specs(at) if s["layout"]["title"]["text"].startswith("Mean γ per hidden layer"))
    assert len(gamma["data"]) == 3 and decode(gamma["data"][1]["y"])[0] == 0.0  # block 2 starts at γ = 0
