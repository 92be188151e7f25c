"""Plotly figures from run statistics: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Histograms arrive pre-binned from the engine (counts per fixed bin), so every figure sends a few small traces to
the browser, never raw samples. Colours and fonts are chosen to stay legible on a projector.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas  # noqa: F401  plotly imports pandas lazily on first draw; two sessions' first script runs
import plotly.graph_objects as go  # racing on that import see a half-initialised pandas and crash
from plotly.subplots import make_subplots

Array = np.ndarray

FONT = dict(family="Source Sans Pro, Arial, sans-serif", size=14, color="#111111")
PALETTE = ("#0b4f9c", "#d1495b", "#2a9d3f", "#e08e0b", "#6a3d9a", "#00798c", "#8c564b", "#444444")
UPDATE_RATIO_GUIDE = 1e-3  # Karpathy's rule of thumb: each step changes a weight matrix by ~1/1000 of its size
MAX_FACETS = 10  # most layers drawn as small multiples; deeper nets show an even selection


def _layout(fig: go.Figure, title: str, height: int = 340, **extra) -> go.Figure:
    fig.update_xaxes(tickfont=dict(color="#111111"), title_font=dict(color="#111111"), linecolor="#444444")
    fig.update_yaxes(tickfont=dict(color="#111111"), title_font=dict(color="#111111"), linecolor="#444444")
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=8),
                   font=dict(size=17)),
        template="plotly_white", font=FONT, height=height, margin=dict(l=64, r=20, t=76, b=50),
        # legend in its own band between the title and the plot, so neither covers the other
        legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0), uirevision="keep", **extra,
    )
    return fig


def _value_axis(fig: go.Figure, title: str, log_y: bool, values, **extra) -> None:
    """The y-axis: on a log scale spanning more than a decade, one label per power of ten (minor digits clutter)."""
    axis = dict(title=title, type="log" if log_y else "linear", exponentformat="power", **extra)
    if log_y:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.array([])
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            axis["dtick"] = 1 if v.max() / v.min() > 100 else "D2"
    fig.update_yaxes(**axis)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def layer_colour(i: int, n: int) -> str:
    """Shallow layers light blue, deep layers dark: depth reads as a gradient across any number of traces."""
    t = i / max(n - 1, 1)
    r, g, b = (int(round(a + (z - a) * t)) for a, z in ((120, 8), (180, 29), (230, 88)))
    return f"rgb({r},{g},{b})"


def facet_layers(n_layers: int, most: int = MAX_FACETS) -> list[int]:
    """0-based layers to draw as small multiples: all of them, or an even spread that keeps the first and last."""
    if n_layers <= most:
        return list(range(n_layers))
    return sorted({int(round(v)) for v in np.linspace(0, n_layers - 1, most)})


def layer_histograms(edges: Array, counts: Array, title: str, x_title: str) -> go.Figure:
    """One row per layer, bars of the share of values per bin, on one shared x-axis (Glorot & Bengio's Fig. 6/7).

    Each layer keeps its own bin edges; the shared axis is what shows a layer collapsing to a spike at zero.
    """
    layers = facet_layers(len(counts))
    fig = make_subplots(rows=len(layers), cols=1, shared_xaxes=True, vertical_spacing=0.012)
    for row, i in enumerate(layers, start=1):
        e = edges[i]
        total = max(int(counts[i].sum()), 1)
        fig.add_trace(go.Bar(x=(e[:-1] + e[1:]) / 2, y=counts[i] / total, width=np.diff(e), name=f"layer {i + 1}",
                             marker=dict(color=layer_colour(i, len(counts)), line=dict(width=0)),
                             hovertemplate=f"layer {i + 1}<br>%{{x:.3g}}: %{{y:.1%}}<extra></extra>"),
                      row=row, col=1)
        fig.update_yaxes(title=dict(text=f"L{i + 1}", standoff=2), showticklabels=False, row=row, col=1)
    fig.update_xaxes(title=x_title, row=len(layers), col=1)
    _layout(fig, title, height=90 + 62 * len(layers), showlegend=False, bargap=0)
    return fig


def depth_profile(series: Mapping[str, Array], title: str, y_title: str, log_y: bool = False) -> go.Figure:
    """Per-layer values against depth, one line per series (a statistic, or one initialiser in Compare)."""
    fig = go.Figure()
    for k, (name, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=float)
        if log_y:
            v = np.where(v > 0, v, np.nan)  # a log axis cannot place zeros; leave a gap instead
        fig.add_trace(go.Scatter(x=np.arange(1, len(v) + 1), y=v, name=name, mode="lines+markers",
                                 line=dict(color=colour(k), width=2.5)))
    fig.update_xaxes(title="layer", dtick=1 if max((len(v) for v in series.values()), default=0) <= 12 else None)
    _value_axis(fig, y_title, log_y, list(series.values()))
    return _layout(fig, title)


def layer_fractions(dead: Array, saturated: Array) -> go.Figure:
    """Share of dead (relu: exactly 0) and saturated (tanh/sigmoid: flat part) values per layer."""
    x = np.arange(1, len(dead) + 1)
    fig = go.Figure([
        go.Bar(x=x, y=dead, name="dead (A = 0)", marker_color=colour(1)),
        go.Bar(x=x, y=saturated, name="saturated", marker_color=colour(3)),
    ])
    fig.update_xaxes(title="layer", dtick=1 if len(x) <= 12 else None)
    fig.update_yaxes(title="share of values", range=[0, 1], tickformat=".0%")
    return _layout(fig, "Dead and saturated units per layer", barmode="group")


def curves(steps: Mapping[str, Array], values: Mapping[str, Array], title: str, y_title: str, *,
           log_y: bool = False, y_range: Sequence[float] | None = None) -> go.Figure:
    """Named curves over training steps (loss, accuracies, or one loss curve per initialiser)."""
    fig = go.Figure()
    for k, name in enumerate(values):
        few = len(values[name]) < 3  # a curve of one or two points is invisible without markers
        fig.add_trace(go.Scatter(x=steps[name], y=values[name], name=name, mode="lines+markers" if few else "lines",
                                 line=dict(color=colour(k), width=2.5)))
    fig.update_xaxes(title="step")
    _value_axis(fig, y_title, log_y, list(values.values()), range=y_range)
    return _layout(fig, title)


def per_layer_over_steps(steps: Array, values: Array, title: str, y_title: str, *, log_y: bool = True,
                         reference: float | None = None) -> go.Figure:
    """values (steps, layers): one line per layer, coloured light (first) to dark (last)."""
    n = values.shape[1]
    fig = go.Figure()
    for i in range(n):
        v = values[:, i].astype(float)
        if log_y:
            v = np.where(v > 0, v, np.nan)
        fig.add_trace(go.Scatter(x=steps, y=v, name=f"layer {i + 1}", mode="lines",
                                 line=dict(color=layer_colour(i, n), width=2)))
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color="#d1495b", dash="dash", width=2),
                      annotation_text=f"{reference:g}", annotation_position="top right")
    fig.update_xaxes(title="step")
    _value_axis(fig, y_title, log_y, [values] + ([[reference]] if reference is not None else []))
    return _layout(fig, title, showlegend=n <= 12)


def histogram_heatmaps(steps: Array, counts: Array, edges: Array, title: str) -> go.Figure:
    """fastai's "colorful dimension": per layer, steps on x, bins on y, colour log(1 + count). counts (T, L, B)."""
    layers = facet_layers(counts.shape[1], most=6)
    fig = make_subplots(rows=len(layers), cols=1, shared_xaxes=True, vertical_spacing=0.07 if len(layers) > 1 else 0,
                        subplot_titles=[f"layer {i + 1}" for i in layers])
    for row, i in enumerate(layers, start=1):
        e = edges[i]
        fig.add_trace(go.Heatmap(x=steps, y=(e[:-1] + e[1:]) / 2, z=np.log1p(counts[:, i, :]).T,
                                 colorscale="Viridis", showscale=False,
                                 hovertemplate="step %{x}<br>value %{y:.3g}<br>log(1+count) %{z:.2f}<extra></extra>"),
                      row=row, col=1)
    fig.update_xaxes(title="step", row=len(layers), col=1)
    fig.update_annotations(font=dict(size=13), x=0.0, xanchor="left")
    return _layout(fig, title, height=80 + 150 * len(layers))


def decision_boundary(grid_x: Array, grid_y: Array, probability: Array, points: Array, labels: Array) -> go.Figure:
    """P(class 1) over the plane (probability (ny, nx)) with the data points (2, m) coloured by label (m,)."""
    fig = go.Figure(go.Contour(x=grid_x, y=grid_y, z=probability, zmin=0, zmax=1, colorscale="RdBu",
                               contours=dict(start=0, end=1, size=0.1), opacity=0.75,
                               colorbar=dict(thickness=12)))
    for k, cls in enumerate(np.unique(labels)):
        pick = labels == cls
        fig.add_trace(go.Scatter(x=points[0, pick], y=points[1, pick], mode="markers", name=f"class {cls}",
                                 marker=dict(color=("#b2182b", "#2166ac", "#2a9d3f", "#e08e0b")[k % 4], size=7,
                                             line=dict(color="white", width=1))))
    fig.update_xaxes(title="x₁")
    fig.update_yaxes(title="x₂", scaleanchor="x", scaleratio=1)
    return _layout(fig, "Decision boundary", height=460)
