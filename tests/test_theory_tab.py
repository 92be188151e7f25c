"""The Theory tab driven headlessly (AppTest): order and chaos on each side of the critical line and on it."""

from __future__ import annotations

import math

import pytest

from app.state import to_query
from core.config import Config
from tests.test_app import chart_titles, no_errors, open_tab, start

WIDTH = 64  # gaussian:64 inputs, so every layer, the first too, has n_in = 64 and the same sigma_w^2

CASES = {  # tanh without bias: the edge of chaos is sigma_w^2 = 1
    "ordered": (dict(init="normal", init_scale=math.sqrt(0.5 / WIDTH)), "0.5", "0", "0.5"),
    "critical": (dict(init="xavier_normal"), "1", "0", "1"),
    "chaotic": (dict(init="he_normal"), "2.778", None, None),  # 25/9
}


@pytest.mark.parametrize("phase", list(CASES))
def test_theory_tab_shows_q_star_chi_and_both_depth_scales(phase):
    settings, sigma_w2, q_star, chi = CASES[phase]
    config = Config(dataset=f"gaussian:{WIDTH}", layers=(WIDTH,) * 6, activation="tanh", **settings)
    at = open_tab(start(to_query(config, "custom")), "Theory")
    no_errors(at)
    assert "Order and chaos for tanh: χ₁ per (σ_w², σ_b²)" in chart_titles(at)
    table = at.table[0].value
    assert list(table.columns) == ["layers", "σ_w²", "σ_b²", "q*", "χ₁", "phase", "ξ_q (layers)", "ξ_c (layers)",
                                   "6 ξ_c (trainable depth)"]
    row = table.iloc[0]
    assert (row["layers"], row["σ_w²"], row["phase"]) == ("L1–L6", sigma_w2, phase)
    if phase == "critical":  # q* = 0, chi_1 = 1: both depth scales are infinite, not a large number
        assert (row["q*"], row["χ₁"], row["ξ_q (layers)"], row["ξ_c (layers)"]) == ("0", "1", "∞", "∞")
        assert row["6 ξ_c (trainable depth)"] == "∞"
    elif phase == "ordered":  # q* = 0 again; c* = 1, so xi_c = -1/ln chi_1 = 1/ln 2 (= xi_q: the map is linear at 0)
        assert (row["q*"], row["χ₁"]) == (q_star, chi)
        assert float(row["ξ_c (layers)"]) == pytest.approx(1 / math.log(2), rel=1e-3)
        assert float(row["6 ξ_c (trainable depth)"]) == pytest.approx(6 / math.log(2), rel=1e-3)
    else:  # chaotic: q* > 0, chi_1 > 1, and correlations still settle (c* = 0 for odd tanh), in finitely many layers
        assert float(row["q*"]) > 0 and float(row["χ₁"]) > 1
        assert 0 < float(row["ξ_q (layers)"]) < float(row["ξ_c (layers)"]) < math.inf
