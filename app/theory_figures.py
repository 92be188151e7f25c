"""Plotly figures for the theory lens: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Predicted values are always drawn dashed and measured ones solid, so a reader can tell them apart at a glance.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from app.figures import _layout, colour
from core.theory import Prediction

Array = np.ndarray

CHI_OCTAVES = 3.0  # the colour scale runs from chi = 1/8 (deep blue, ordered) to 8 (deep red, chaotic)
PREDICTED_DASH = "dash"
JACOBIAN_BINS = 40
JACOBIAN_DECADES = 8  # the histogram shows 8 decades below the largest value; smaller ones pile into the first bin


def _positive(values: Array) -> Array:
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, np.nan)  # a log axis cannot place zeros; leave a gap


def predicted_std_trace(prediction: Prediction, name: str = "predicted (mean field)") -> go.Scatter:
    """The predicted std of Z per layer as a dashed line, to overlay on a measured std-vs-depth chart."""
    return _dashed(prediction.z_std, name)


def _dashed(values: Array, name: str) -> go.Scatter:
    return go.Scatter(x=np.arange(1, len(values) + 1), y=_positive(values), name=name, mode="lines+markers",
                      line=dict(color=colour(7), width=2, dash=PREDICTED_DASH), marker=dict(symbol="circle-open"))


def depth_comparison(predicted: Array, measured: Array, title: str, y_title: str) -> go.Figure:
    """Measured (solid) and predicted (dashed) per layer, log y: a collapse reads as a straight downward line."""
    fig = go.Figure([
        go.Scatter(x=np.arange(1, len(measured) + 1), y=_positive(measured), name="measured (probe)",
                   mode="lines+markers", line=dict(color=colour(0), width=2.5)),
        _dashed(predicted, "predicted (mean field)"),
    ])
    fig.update_xaxes(title="layer", dtick=1 if len(measured) <= 12 else None)
    fig.update_yaxes(title=y_title, type="log", exponentformat="power")
    return _layout(fig, title)


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
    fig = go.Figure(go.Heatmap(
        x=sigma_w2, y=sigma_b2, z=octaves, zmin=-CHI_OCTAVES, zmax=CHI_OCTAVES, zmid=0, colorscale="RdBu_r",
        customdata=chi, hovertemplate="σ_w² %{x:.3g}, σ_b² %{y:.3g}<br>χ₁ = %{customdata:.3g}<extra></extra>",
        colorbar=dict(title="χ₁", tickvals=ticks, ticktext=[f"{2.0 ** t:g}" for t in ticks]),
    ))
    crit_w, crit_b = critical
    inside = (crit_w >= sigma_w2[0]) & (crit_w <= sigma_w2[-1]) & (crit_b <= sigma_b2[-1])
    crit_w, crit_b = crit_w[inside], crit_b[inside]
    point = crit_w.size > 0 and np.ptp(crit_w) + np.ptp(crit_b) < 1e-12  # relu's edge is the single point (2, 0)
    if point:
        crit_w, crit_b = crit_w[:1], crit_b[:1]
    fig.add_trace(go.Scatter(x=crit_w, y=crit_b, name="edge of chaos (χ₁ = 1)",
                             mode="markers" if point else "lines", cliponaxis=False,
                             line=dict(color="#111111", width=2.5), marker=dict(size=12, symbol="diamond")))
    plotted = [(label, w, b) for label, w, b in markers if w > 0]
    fig.add_trace(go.Scatter(
        x=[w for _, w, _ in plotted], y=[b for _, _, b in plotted], text=[label for label, _, _ in plotted],
        name="this network's layers", mode="markers+text", textposition="top center", cliponaxis=False,
        marker=dict(size=12, color="#ffd23f", line=dict(color="#111111", width=1.5)),
        hovertemplate="%{text}: σ_w² %{x:.3g}, σ_b² %{y:.3g}<extra></extra>",
    ))
    fig.update_xaxes(title="σ_w² = n_in · Var(W)", type="log", exponentformat="power")
    pad = 0.03 * (sigma_b2[-1] - sigma_b2[0])  # markers at sigma_b^2 = 0 sit fully inside the frame
    fig.update_yaxes(title="σ_b² (bias variance)", range=[sigma_b2[0] - pad, sigma_b2[-1]])
    return _layout(fig, f"Order and chaos for {activation}: χ₁ per (σ_w², σ_b²)", height=440)


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
    fig = go.Figure()
    for k, (name, values) in enumerate(spectra.items()):
        counts, _ = np.histogram(np.clip(positive[name], low, high), edges)
        zeros = int(np.size(values) - positive[name].size)
        tiny = int(np.count_nonzero(positive[name] < low))
        notes = [f"{zeros} zero"] * bool(zeros) + [f"{tiny} below {low:.0e}"] * bool(tiny)
        label = f"{name} ({', '.join(notes)})" if notes else name
        fig.add_trace(go.Bar(x=np.sqrt(edges[:-1] * edges[1:]), y=counts / max(np.size(values), 1), width=np.diff(edges),
                             name=label, marker=dict(color=colour(k), line=dict(width=0)), opacity=0.75))
    fig.update_xaxes(title="singular value of J = ∏ D^l W^l", type="log", exponentformat="power")
    fig.update_yaxes(title="share of singular values", tickformat=".0%")
    return _layout(fig, "Input–output Jacobian spectrum at initialisation", barmode="overlay", bargap=0)
