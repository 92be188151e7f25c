"""Issue 20's presets and theory in the dashboard, driven headlessly (AppTest): the verdict explains each
comparison from the probe's figures, the Theory tab draws a prediction only where one exists."""

from __future__ import annotations

import re

import numpy as np

from app.presets import presets
from app.state import to_query
from core.config import Config
from core.data import default_data_dir, load_dataset
from core.train import probe
from core.verdict import number
from tests.test_app import (chart_specs, decode, no_course_files, no_errors, open_tab, start,  # noqa: F401 (autouse)
                            wait_until_both_finished)

PLAIN_VS = "50 layers: plain vs residual vs batch norm"
DEEP_RESIDUAL = "100-layer residual, α = 1 vs 1/√L vs zero-init"
SEED_BN = "seed question with batch norm"


def on_preset(name: str):
    at = start()
    at.selectbox(key="preset").set_value(name).run()
    return at


def verdict_lines(at) -> dict[str, str]:
    """The Compare verdict's line for each label (markdown escapes removed)."""
    text = "\n".join(m.value for m in at.get("markdown")).replace("\\", "")
    found = {label: re.search(r"^- (" + re.escape(label) + r": .*)$", text, re.MULTILINE)
             for label in presets()[at.session_state.preset].compare}
    return {label: match.group(1) for label, match in found.items() if match}


def test_fifty_layer_preset_says_which_architecture_rescues_which_initialiser_from_the_numbers():
    at = open_tab(on_preset(PLAIN_VS), "Compare")
    no_errors(at)
    lines = verdict_lines(at)
    assert len(lines) == 6, lines
    config, data = presets()[PLAIN_VS].config, load_dataset("digits", default_data_dir())
    assert "should not learn" in lines["plain · normal ×0.01"] and "same answer for every example" in lines[
        "plain · normal ×0.01"]
    # the line quotes its own probe: batch norm's gradient ratio from the output to layer 1
    _, _, normed = probe(config.replace(init="normal", init_scale=0.01, norm="batch"), data)
    ratio = float(normed.stats["dz_std"][0] / normed.stats["dz_std"][-1])
    assert lines["batch norm · normal ×0.01"].startswith("batch norm · normal ×0.01: should learn")
    assert f"×{number(ratio)} to layer 1" in lines["batch norm · normal ×0.01"]
    assert "saturated" in lines["residual · he_normal"]  # alpha = 1 and He: the skips add up


def test_theory_tab_sets_batch_norms_gradient_growth_beside_the_measurement():
    config = presets()[PLAIN_VS].config.replace(init="normal", init_scale=0.01, norm="batch")
    at = open_tab(start(to_query(config, PLAIN_VS)), "Theory")
    no_errors(at)
    growth = next(m.value for m in at.markdown if "Gradient growth per layer" in m.value)
    predicted, measured = (float(v) for v in re.findall(r"(?:predicted|measured) ×([\d.]+)", growth)[:2])
    assert abs(predicted / measured - 1) < 0.05, growth  # 64 units, a batch of 1797: the factor within 5%
    specs = {s["layout"]["title"]["text"]: s for s in chart_specs(at)}
    dz = specs["Gradient dZ with depth"]
    assert [t["name"] for t in dz["data"]] == ["measured (probe)", "predicted (mean field)"]
    assert not any("Order and chaos" in title for title in specs)  # the plain-stack phase diagram is not drawn


def test_layer_norm_has_no_prediction_and_the_theory_tab_says_so():
    config = Config(dataset="digits", layers=(32,) * 6, norm="layer")
    at = open_tab(start(to_query(config, "custom")), "Theory")
    no_errors(at)
    assert any("No prediction for this setting" in i.value and "layer norm" in i.value for i in at.info)
    dz = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Gradient dZ with depth (measured)")
    assert [t["name"] for t in dz["data"]] == ["measured (probe)"]


def test_deep_residual_preset_explains_alpha_and_zero_init_from_the_numbers():
    at = open_tab(on_preset(DEEP_RESIDUAL), "Compare")
    no_errors(at)
    lines = verdict_lines(at)
    assert len(lines) == 3, lines
    assert "saturated" in lines["residual α = 1"]
    assert "should learn —" in lines["residual α = 0.1 (1/√100)"]
    assert "should learn —" in lines["residual, zero-init branches"]
    open_tab(at, "Theory")  # alpha = 1 tanh blocks: predicted, drawn dashed beside the probe
    no_errors(at)
    z = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Std of Z with depth")
    measured, predicted = (np.array(decode(t["y"])) for t in z["data"])
    ratio = predicted[:-1] / measured[:-1]  # 32 units scatter layer by layer (one draw); on average they agree
    assert abs(np.mean(np.log(ratio))) < 0.1 and np.all(np.abs(np.log(ratio)) < 0.5), ratio


def test_seed_question_with_batch_norm_trains_both_initialisers_to_the_end():
    query = to_query(presets()[SEED_BN].config.replace(iterations=30, record_every=10), SEED_BN)
    at = open_tab(start(query), "Compare")
    at.button(key="train_all").click().run()
    wait_until_both_finished(at)
    no_errors(at)
    table = at.table[0].value
    assert list(table["initialiser"]) == ["normal ×0.01", "course_sqrt"] and list(table["step"]) == ["30", "30"]
    lines = verdict_lines(at)
    for label, accuracy in zip(table["initialiser"], table["test accuracy"]):
        assert f"{float(accuracy):.0%}" in lines[label], (lines[label], accuracy)
