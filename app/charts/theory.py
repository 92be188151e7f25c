"""Plotly figures for the theory lens: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Predicted values are always drawn dashed and measured ones solid, so a reader can tell them apart at a glance.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale

from app.charts.style import (Array, base_layout, by_layer, colour, layer_axis, make_figure, plottable,
                              predicted_by_layer, styled_axis)


CHI_OCTAVES = 3.0  # the colour scale runs from chi = 1/8 (deep blue, ordered) to 8 (deep red, chaotic)
RDBU_R = get_colorscale("RdBu_r")  # a plotly name plotly.js does not know: send the colours
JACOBIAN_BINS = 40
JACOBIAN_DECADES = 8  # the histogram shows 8 decades below the largest value; smaller ones pile into the first bin


def depth_comparison(predicted: Array | None, measured: Array, title: str, y_title: str) -> go.Figure:
    """Measured (solid) and predicted (dashed) per layer, log y: a collapse reads as a straight downward line.
    predicted None: the measurement alone (a setting the theory does not describe)."""
    data = [by_layer(plottable(measured), "measured (probe)", dict(color=colour(0), width=2.5))]
    if predicted is not None:
        data.append(predicted_by_layer(plottable(predicted), "predicted (mean field)", colour(7)))
    return make_figure(data, base_layout(title, xaxis=layer_axis(len(measured)),
                                         yaxis=styled_axis(y_title, type="log", exponentformat="power")))


def phase_axes(marker_sigma_w2: Sequence[float], marker_sigma_b2: Sequence[float], n_w: int = 70,
               n_b: int = 40) -> tuple[Array, Array]:
    """Grid axes that contain the usual region (sigma_w^2 in 0.1..8, sigma_b^2 in 0..1) and every marker."""
    sw = [v for v in marker_sigma_w2 if v > 0]
    low = min([0.1, *(v / 2 for v in sw)])
    high = max([8.0, *(v * 2 for v in sw)])
    top = max([1.0, *(1.2 * v for v in marker_sigma_b2)])
    return np.geomspace(low, high, n_w), np.linspace(0.0, top, n_b)


def phase_diagram(activation: str, sigma_w2: Array, sigma_b2: Array, chi: Array,
                  critical: tuple[Array, Array], markers: Sequence[tuple[str, float, float]]) -> go.Figure:
    """chi_1 over (sigma_w^2, sigma_b^2) as a heatmap on a log2 scale centred on chi = 1, the critical line, and
    one marker per layer (label, sigma_w^2, sigma_b^2). sigma_w^2 is on a log axis: randn * 0.01 puts layers
    decades apart."""
    with np.errstate(divide="ignore"):
        octaves = np.clip(np.log2(np.asarray(chi, float)), -CHI_OCTAVES, CHI_OCTAVES)
    ticks = np.arange(-CHI_OCTAVES, CHI_OCTAVES + 1)
    data = [{"type": "heatmap", "x": sigma_w2, "y": sigma_b2, "z": octaves, "zmin": -CHI_OCTAVES, "zmax": CHI_OCTAVES,
             "zmid": 0, "colorscale": RDBU_R, "customdata": chi,
             "hovertemplate": "σ_w² %{x:.3g}, σ_b² %{y:.3g}<br>χ₁ = %{customdata:.3g}<extra></extra>",
             "colorbar": dict(title=dict(text="χ₁"), tickvals=ticks, ticktext=[f"{2.0 ** t:g}" for t in ticks])}]
    crit_w, crit_b = critical
    inside = (crit_w >= sigma_w2[0]) & (crit_w <= sigma_w2[-1]) & (crit_b <= sigma_b2[-1])
    crit_w, crit_b = crit_w[inside], crit_b[inside]
    point = crit_w.size > 0 and np.ptp(crit_w) + np.ptp(crit_b) < 1e-12  # relu's edge is the single point (2, 0)
    if point:
        crit_w, crit_b = crit_w[:1], crit_b[:1]
    data.append({"type": "scatter", "x": crit_w, "y": crit_b, "name": "edge of chaos (χ₁ = 1)",
                 "mode": "markers" if point else "lines", "cliponaxis": False,
                 "line": dict(color="#111111", width=2.5), "marker": dict(size=12, symbol="diamond")})
    plotted = [(label, w, b) for label, w, b in markers if w > 0]
    data.append({
        "type": "scatter", "x": [w for _, w, _ in plotted], "y": [b for _, _, b in plotted],
        "text": [label for label, _, _ in plotted], "name": "this network's layers", "mode": "markers+text",
        "textposition": "top center", "cliponaxis": False,
        "marker": dict(size=12, color="#ffd23f", line=dict(color="#111111", width=1.5)),
        "hovertemplate": "%{text}: σ_w² %{x:.3g}, σ_b² %{y:.3g}<extra></extra>",
    })
    pad = 0.03 * (sigma_b2[-1] - sigma_b2[0])  # markers at sigma_b^2 = 0 sit fully inside the frame
    x_axis = styled_axis("σ_w² = n_in · Var(W)", type="log", exponentformat="power")
    y_axis = styled_axis("σ_b² (bias variance)", range=[sigma_b2[0] - pad, sigma_b2[-1]])
    return make_figure(data, base_layout(f"Order and chaos for {activation}: χ₁ per (σ_w², σ_b²)", height=440,
                                         xaxis=x_axis, yaxis=y_axis))


def jacobian_histogram(spectra: Mapping[str, Array]) -> go.Figure:
    """Singular values of the input-output Jacobian, one bar series per initialiser, on shared log-spaced bins.

    Zero singular values (dead relu paths, a zero init) cannot sit on a log axis: they are counted in the name, as
    are the values more than JACOBIAN_DECADES below the largest, which are drawn in the first bin.
    """
    positive = {name: np.asarray(v, float)[np.asarray(v, float) > 0] for name, v in spectra.items()}
    every = np.concatenate([v for v in positive.values() if v.size] or [np.ones(1)])
    high = float(every.max())
    low = max(float(every.min()), high * 10.0**-JACOBIAN_DECADES)
    if high / low < 1.1:  # all equal (orthogonal, linear): widen so the spike has a visible bin
        low, high = low / 1.05, high * 1.05
    edges = np.geomspace(low, high, JACOBIAN_BINS + 1)
    data = []
    for k, (name, values) in enumerate(spectra.items()):
        counts, _ = np.histogram(np.clip(positive[name], low, high), edges)
        zeros = int(np.size(values) - positive[name].size)
        tiny = int(np.count_nonzero(positive[name] < low))
        notes = [f"{zeros} zero"] * bool(zeros) + [f"{tiny} below {low:.0e}"] * bool(tiny)
        label = f"{name} ({', '.join(notes)})" if notes else name
        data.append({"type": "bar", "x": np.sqrt(edges[:-1] * edges[1:]), "y": counts / max(np.size(values), 1),
                     "width": np.diff(edges), "name": label, "marker": dict(color=colour(k), line=dict(width=0)),
                     "opacity": 0.75})
    x_axis = styled_axis("singular value of J = ∏ₗ Dˡ Wˡ", type="log", exponentformat="power")
    return make_figure(data, base_layout("Input–output Jacobian spectrum at initialisation", barmode="overlay",
                                         bargap=0, xaxis=x_axis,
                                         yaxis=styled_axis("share of singular values", tickformat=".0%")))
