"""The Sweep tab's figures: trained accuracy over (sigma_w^2, depth) with the theory on top, and one cell's loss
curve. Pure functions of the sweep's numbers (no Streamlit)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from app.charts.style import INK, PALETTE, VIRIDIS, base_layout, make_figure, styled_axis
from core.sweep import SweepSpec

THEORY_POINTS = 40  # sigma_w^2 values the 6 xi_c curve is drawn through (each a fixed-point solve: ~0.1 s)


def accuracy_grid(spec: SweepSpec, results: dict) -> tuple[np.ndarray, np.ndarray]:
    """(train accuracy, hover text) per (depth, sigma_w^2): nan and "not yet" where a cell has not completed."""
    rows, columns = spec.shape
    z, text = np.full((rows, columns), np.nan), np.full((rows, columns), "not computed yet", dtype=object)
    for (row, column), figures in results.items():
        if figures["diverged"]:
            text[row, column] = "diverged"
            z[row, column] = 0.0
            continue
        z[row, column] = figures["train_accuracy"]
        text[row, column] = (f"train {figures['train_accuracy']:.1%} · test {figures['test_accuracy']:.1%} · "
                             f"loss {figures['loss']:.3g}")
    return z, text


CELLS_TRACE = "cells"  # the click layer: one invisible marker per cell centre, what a click selects
PICKED_COLOUR = PALETTE[4]  # reddish purple: not in viridis, so its outline shows on dark and bright cells alike


def sweep_heatmap(spec: SweepSpec, results: dict, theory_sigma_w2: Sequence[float],
                  six_xi_c: Sequence[float], critical_sigma_w2: float | None,
                  picked: tuple[int, int] | None = None) -> go.Figure:
    """Train accuracy per cell, 6 xi_c (dashed) and chi_1 = 1 (dotted) on top, the ``picked`` (row, column) outlined.

    Streamlit's plotly selection reports no heatmap points (streamlit/streamlit#8760), so a click lands on a layer
    of invisible markers, one per cell centre, which also carries the cells' hover text; every point is hovered by
    distance (hoverdistance -1), and on a grid the nearest centre is the cell under the pointer. The other traces
    take no hover or click, so a click always means a cell."""
    z, text = accuracy_grid(spec, results)
    x, y = list(spec.sigma_w2), list(spec.depths)
    data = [{"type": "heatmap", "x": x, "y": y, "z": z, "zmin": 0, "zmax": 1, "colorscale": VIRIDIS,
             "xgap": 1, "ygap": 1, "name": "accuracy", "hoverinfo": "skip",
             "colorbar": dict(title=dict(text="train<br>accuracy"), tickformat=".0%")}]
    top = max(y) * 1.15 + 1
    depths = np.asarray(six_xi_c, float)
    shown = np.where(np.isfinite(depths), np.minimum(depths, top), top)
    data.append({"type": "scatter", "x": list(theory_sigma_w2), "y": shown, "mode": "lines",
                 "name": "6 ξ_c (trainable depth, theory)", "line": dict(color=PALETTE[1], width=3, dash="dash"),
                 "hoverinfo": "skip"})
    if critical_sigma_w2 is not None and min(x) <= critical_sigma_w2 <= max(x):
        data.append({"type": "scatter", "x": [critical_sigma_w2] * 2, "y": [0, top], "mode": "lines",
                     "name": f"χ₁ = 1 (σ_w² = {critical_sigma_w2:.3g})", "line": dict(color=INK, width=2, dash="dot"),
                     "hoverinfo": "skip"})
    rows, columns = np.divmod(np.arange(z.size), len(x))  # row-major, as z
    invisible = dict(color="rgba(0,0,0,0)", size=12)
    data.append({"type": "scatter", "x": [x[c] for c in columns], "y": [y[r] for r in rows], "mode": "markers",
                 "name": CELLS_TRACE, "showlegend": False, "customdata": text.ravel(), "marker": invisible,
                 "selected": dict(marker=dict(opacity=0)), "unselected": dict(marker=dict(opacity=0)),
                 "hovertemplate": "σ_w² %{x:.3g}, depth %{y}<br>%{customdata}<extra></extra>"})
    x_edges, outline = cell_edges(x), []
    if picked is not None:  # the cell shown below the chart, outlined along the heatmap's own cell edges
        row, column = picked
        y_edges = cell_edges(y)
        outline = [dict(type="rect", x0=x_edges[column], x1=x_edges[column + 1], y0=y_edges[row],
                        y1=y_edges[row + 1], line=dict(color=PICKED_COLOUR, width=4), layer="above")]
    layout = base_layout("Train accuracy after training, per (σ_w², depth)", height=460,
                         xaxis=styled_axis("σ_w² = n_in · Var(W)", range=[x_edges[0], x_edges[-1]]),
                         yaxis=styled_axis("depth (hidden layers)", range=[0, top]), uirevision="sweep",
                         clickmode="event+select", hovermode="closest", hoverdistance=-1, shapes=outline)
    return make_figure(data, layout)


def cell_edges(centres: Sequence[float]) -> list[float]:
    """Where plotly draws a heatmap's cells: halfway between centres, the outer ones as wide as their neighbour (one
    centre: a cell of width 1)."""
    c = np.asarray(centres, float)
    if len(c) == 1:
        return [c[0] - 0.5, c[0] + 0.5]
    middles = (c[:-1] + c[1:]) / 2
    return [c[0] - (middles[0] - c[0]), *middles, c[-1] + (c[-1] - middles[-1])]


def clicked_cell(spec: SweepSpec, selection: dict | None) -> tuple[int, int] | None:
    """The (row, column) a click on `sweep_heatmap` selected, from Streamlit's selection state; None if none."""
    points = (selection or {}).get("selection", {}).get("points", [])
    for point in points:
        if point.get("x") in spec.sigma_w2 and point.get("y") in spec.depths:
            return spec.depths.index(point["y"]), spec.sigma_w2.index(point["x"])
    return None


def theory_axis(spec: SweepSpec) -> np.ndarray:
    low, high = min(spec.sigma_w2), max(spec.sigma_w2)
    return np.linspace(low, high, THEORY_POINTS) if high > low else np.array([low])


def cell_loss_curve(figures: dict, title: str) -> go.Figure:
    losses = [v if v is not None and math.isfinite(v) else None for v in figures["losses"]]
    data = [{"type": "scatter", "x": figures["steps"], "y": losses, "mode": "lines+markers", "name": "loss",
             "line": dict(color=PALETTE[0], width=2), "hovertemplate": "step %{x}: loss %{y:.4g}<extra></extra>"}]
    return make_figure(data, base_layout(title, height=300, xaxis=styled_axis("step"),
                                         yaxis=styled_axis("training loss", type="log"), showlegend=False))
