"""Plotly figures from run statistics: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Histograms arrive pre-binned from the engine (counts per fixed bin), so every figure sends a few small traces to
the browser, never raw samples. The look they share (palette, template, axes) is app/charts/style.py.

The Training tab redraws its figures several times a second, so they are built as plain dicts (traces with a "type",
axes laid out by hand instead of make_subplots) and wrapped without plotly's validation, which otherwise costs ten
times the drawing itself. tests/test_figures.py checks that validating each figure changes nothing in it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from app.charts.style import (FLOOR_COLOUR, LEGEND_MOST, MARKERS, PALETTE, PREDICTED_DASH, RDBU, REFERENCE_COLOUR,
                              VIRIDIS, ZERO_NOTE, Array, base_layout, by_layer, colour, floor_marks, floored,
                              layer_axis, layer_colour, layer_scale, make_figure, nothing_drawn, on_row, plottable,
                              predicted_by_layer, series_line, series_marker, stacked_axes, styled_axis, value_axis,
                              with_marks, zero_floor)

UPDATE_RATIO_GUIDE = 1e-3  # Karpathy's rule of thumb: each step changes a weight matrix by ~1/1000 of its size
MAX_FACETS = 10  # most layers drawn as small multiples; deeper nets show an even selection


def facet_layers(n_layers: int, most: int = MAX_FACETS) -> list[int]:
    """0-based layers to draw as small multiples: all of them, or an even spread that keeps the first and last."""
    if n_layers <= most:
        return list(range(n_layers))
    return sorted({int(round(v)) for v in np.linspace(0, n_layers - 1, most)})


def layer_histograms(edges: Array, counts: Array, title: str, x_title: str, shared_x: bool = True) -> go.Figure:
    """One row per layer, bars of the share of values per bin (Glorot & Bengio's Fig. 6/7).

    Each layer keeps its own bin edges. On one shared x-axis a layer collapsing to a spike at zero shows as a
    spike; with `shared_x` off each row spans its own values, so the shape of a layer of tiny values is visible too
    (its tick labels give the scale).
    """
    layers = facet_layers(len(counts))
    data = []
    for row, i in enumerate(layers, start=1):
        e = np.asarray(edges[i], dtype=float)
        c = np.asarray(counts[i])
        data.append({"type": "bar", "x": (e[:-1] + e[1:]) / 2, "y": c / max(int(c.sum()), 1), "width": np.diff(e),
                     "name": f"layer {i + 1}", "marker": dict(color=layer_colour(i, len(counts)), line=dict(width=0)),
                     "hovertemplate": f"layer {i + 1}<br>%{{x:.3g}}: %{{y:.1%}}<extra></extra>", **on_row(row)})
    row_height, spacing = (62, 0.012) if shared_x else (84, 0.3 / max(len(layers), 1))  # room for each row's ticks
    # each row's y-axis: its layer, and the share of values per bin (one tick mid-way, so rows of 62 px stay legible)
    axes = stacked_axes([styled_axis(f"L{i + 1}", standoff=2, tickformat=".0%", nticks=2, tickfont=dict(size=10))
                         for i in layers], spacing, f"{x_title} (bars: share of the layer's values per bin)",
                        shared=shared_x)
    return make_figure(data, base_layout(title, height=90 + row_height * len(layers), showlegend=False, bargap=0,
                                         **axes))


def depth_profile(series: Mapping[str, Array], title: str, y_title: str, log_y: bool = False,
                  predicted: Mapping[str, Array] | None = None, zero_note: str = ZERO_NOTE) -> go.Figure:
    """Per-layer values against depth, one line per series (a statistic, or one initialiser in Compare).

    `predicted` (per layer, by series name) adds a dashed line in its series' colour for each series it names. It
    shows and hides with its series' legend entry and adds none of its own (six entries wrap into the title).
    On a log axis, measured values of exactly 0 are drawn on a dotted floor line labelled `zero_note`.
    """
    floor = zero_floor(series.values()) if log_y else None
    measured = {name: floored(values, floor) if log_y else (plottable(values, False), {})
                for name, values in series.items()}
    expected = {name: plottable(predicted[name], log_y) for name in measured if name in (predicted or {})}
    data = [by_layer(v, name, series_line(k), legendgroup=name, marker=series_marker(k),
                     **_true_values(keep, name, "layer"))
            for k, (name, (v, keep)) in enumerate(measured.items())]
    colours = {name: colour(k) for k, name in enumerate(measured)}
    data += [predicted_by_layer(v, f"{name} predicted", colours[name], legendgroup=name, showlegend=False)
             for name, v in expected.items()]
    drawn = [v for v, _ in measured.values()] + list(expected.values())
    depth = max((len(v) for v in drawn), default=0)
    marks = floor_marks(floor, zero_note)
    y_axis = value_axis(y_title, log_y, drawn, floor)
    extra = with_marks({"annotations": nothing_drawn(drawn, "every value is NaN or infinite")}, marks)
    return make_figure(data, base_layout(title, xaxis=layer_axis(depth), yaxis=y_axis, **_non_empty(extra)))


def _non_empty(extra: dict) -> dict:
    return {k: v for k, v in extra.items() if v}


def _true_values(keep: dict, name: str, x_label: str) -> dict:
    """Hover reads the true value (0) of a point drawn on the floor."""
    if not keep:
        return {}
    return {**keep, "hovertemplate": f"{name}, {x_label} %{{x}}: %{{customdata:.3g}}<extra></extra>"}


def layer_fractions(dead: Array, saturated: Array) -> go.Figure:
    """Share of dead (relu: exactly 0) and saturated (tanh/sigmoid: flat part) values per layer."""
    x = np.arange(1, len(dead) + 1)
    data = [{"type": "bar", "x": x, "y": dead, "name": "dead (A = 0)", "marker": dict(color=colour(0))},
            {"type": "bar", "x": x, "y": saturated, "name": "saturated",
             "marker": dict(color=colour(3), pattern=dict(shape="/"))}]  # hatched: told apart in greyscale
    return make_figure(data, base_layout("Dead and saturated units per layer", barmode="group",
                                         xaxis=layer_axis(len(x)),
                                         yaxis=styled_axis("share of values", range=[0, 1], tickformat=".0%")))


SPIKE_FACTOR = 2.0  # a value above twice the largest 75th percentile of the curves is off-scale...
GUESS_FACTOR = 1.5  # ...unless it is under 1.5 times the guess's cost: a sound init starts near ln 2 (0.69-1.0)


def robust_top(values: Mapping[str, Array], least: float = 0.0) -> tuple[float, dict[str, tuple[float, int]]]:
    """A linear y-axis top that shows every curve: twice the largest of the curves' 75th percentiles (at least
    `least`), or the largest value when it fits under that. Also what it leaves off-scale: by curve, its largest
    value and that value's index. A curve's first steps can be thousands of times its rest (×10 on circles starts at
    1774 and is below 1 a few hundred steps later): drawn in full they flatten every other curve into one line. The
    75th percentile is taken per curve, so a curve whose spike is a few of its points cannot raise it."""
    finite = {name: np.asarray(v, dtype=float) for name, v in values.items()}
    finite = {name: v[np.isfinite(v)] for name, v in finite.items()}
    finite = {name: v for name, v in finite.items() if v.size}
    if not finite:
        return math.nan, {}
    largest = max(float(v.max()) for v in finite.values())
    top = max(SPIKE_FACTOR * max(float(np.quantile(v, 0.75)) for v in finite.values()), least)
    if largest <= top:
        return largest, {}
    off = {}
    for name, v in values.items():
        v = np.where(np.isfinite(np.asarray(v, dtype=float)), np.asarray(v, dtype=float), -np.inf)
        if v.size and v.max() > top:
            off[name] = (float(v.max()), int(v.argmax()))
    return top, off


def curves(steps: Mapping[str, Array], values: Mapping[str, Array], title: str, y_title: str, *,
           log_y: bool = False, y_range: Sequence[float] | None = None, reference: float | None = None,
           reference_label: str = "", clip: bool = False) -> go.Figure:
    """Named curves over training steps (loss, accuracies, or one loss curve per initialiser).

    `reference` draws a dashed guide (the loss of a guess, ln 2) labelled `reference_label`. `clip` (linear axis):
    when a spike would flatten the rest, the y-range runs from 0 to `robust_top` and an annotation names what it
    leaves off-scale (clipping rather than a log scale by default: on a linear axis from 0, 0.693 -> 0.644 looks
    as flat as it is, where a log axis would stretch it; the log scale is a toggle).
    """
    data = []
    for k, name in enumerate(values):
        few = len(values[name]) < 3  # a curve of one or two points is invisible without markers
        data.append({"type": "scatter", "x": steps[name], "y": values[name], "name": name,
                     "mode": "lines+markers" if few else "lines", "line": series_line(k), "marker": series_marker(k)})
    extra: dict = {}
    drawn = list(values.values())
    if reference is not None:
        drawn.append([reference])
        extra = _guide(reference, reference_label, log_y)
    if clip and not log_y and y_range is None:
        top, off = robust_top(values, GUESS_FACTOR * reference if reference is not None else 0.0)
        if off:
            y_range = (0.0, top * 1.05)
            notes = "; ".join(f"{name} up to {v:.4g} (step {np.asarray(steps[name])[i]:,})" for name, (v, i) in
                              off.items())
            extra.setdefault("annotations", []).append(
                dict(text=f"Off-scale: {notes}. Log scale shows all.", showarrow=False, xref="paper", x=1.0,
                     xanchor="right", yref="paper", y=1.0, yanchor="top", bgcolor="rgba(255,255,255,0.85)",
                     font=dict(color=FLOOR_COLOUR, size=12)))
    y_axis = value_axis(y_title, log_y, drawn, range=None if y_range is None else list(y_range))
    return make_figure(data, base_layout(title, xaxis=styled_axis("step"), yaxis=y_axis, **extra))


def _guide(level: float, label: str, log_y: bool) -> dict:
    """A dashed horizontal guide line across the plot at `level`, labelled at its right end."""
    label_y = np.log10(level) if log_y and level > 0 else level  # annotations sit in log10 units on a log axis
    return {"shapes": [dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=level, y1=level,
                            line=dict(color=REFERENCE_COLOUR, dash="dash", width=2))],
            "annotations": [dict(text=label or f"{level:g}", showarrow=False, xref="x domain", x=1, xanchor="right",
                                 yref="y", y=label_y, yanchor="bottom")]}


def per_layer_over_steps(steps: Array, values: Array, title: str, y_title: str, *, log_y: bool = True,
                         reference: float | None = None, predicted: Array | None = None,
                         zero_note: str = ZERO_NOTE, undefined_note: str = "every value is NaN or infinite"
                         ) -> go.Figure:
    """values (steps, layers): one line per layer, ordered dark (first) to light (last) on viridis.

    `reference` is a dashed guide line; `predicted` (one value per layer, at initialisation) a dashed segment
    across the steps in each layer's colour. The segments add no legend entries (a fifth entry already wraps the
    legend of four layers into the title): each one shows and hides with its layer's entry, and hovering names it.
    More than LEGEND_MOST layers get a colour bar of layers instead of the legend; up to that, each layer also has
    its own dash. On a log axis zeros are drawn on a floor line labelled `zero_note`; a chart with no finite value
    says `undefined_note` instead of staying blank.
    """
    n = values.shape[1]
    named = n <= LEGEND_MOST
    floor = zero_floor([values]) if log_y else None
    data = []
    for i in range(n):
        y, keep = floored(values[:, i], floor) if log_y else (plottable(values[:, i], False), {})
        line = series_line(i, 2) if named else {"width": 2}
        data.append({"type": "scatter", "x": steps, "y": y, "name": f"layer {i + 1}", "legendgroup": f"layer {i + 1}",
                     "mode": "lines", "line": {**line, "color": layer_colour(i, n)},
                     **_true_values(keep, f"layer {i + 1}", "step")})
    drawn = [d["y"] for d in data]
    if predicted is not None:
        levels = plottable(predicted, log_y)[:n]
        span = np.asarray(steps)[[0, -1]] if len(steps) else np.array([])
        data += [{"type": "scatter", "x": span, "y": np.full(len(span), level), "name": "predicted at init",
                  "legendgroup": f"layer {i + 1}", "showlegend": False, "mode": "lines",
                  "line": dict(color=layer_colour(i, n), width=2, dash=PREDICTED_DASH),
                  "hovertemplate": f"layer {i + 1} predicted at init: %{{y:.3g}}<extra></extra>"}
                 for i, level in enumerate(levels)]
        drawn.append(levels)
    extra = {} if reference is None else _guide(reference, "", log_y)
    if reference is not None:
        drawn.append([reference])
    marks = floor_marks(floor, zero_note)
    extra = with_marks(extra, marks)
    if not np.any(np.isfinite(np.asarray(values, dtype=float))):
        extra = with_marks(extra, {"annotations": nothing_drawn([values], undefined_note)})
    if not named:
        data.append(layer_scale(n))
    y_axis = value_axis(y_title, log_y, drawn, floor)
    return make_figure(data, base_layout(title, showlegend=named, xaxis=styled_axis("step"), yaxis=y_axis, **extra))


def histogram_heatmaps(steps: Array, counts: Array, edges: Array, title: str, value_title: str) -> go.Figure:
    """fastai's "colorful dimension": per layer, steps on x, bins of `value_title` on y, colour log(1 + count).
    counts (T, L, B)."""
    layers = facet_layers(counts.shape[1], most=6)
    data = []
    for row, i in enumerate(layers, start=1):
        e = np.asarray(edges[i], dtype=float)
        data.append({"type": "heatmap", "name": f"layer {i + 1}", "x": steps, "y": (e[:-1] + e[1:]) / 2,
                     "z": np.log1p(counts[:, i, :]).T, "customdata": counts[:, i, :].T,  # the counts: hover, CSV
                     "colorscale": VIRIDIS, "showscale": False,
                     "hovertemplate": "step %{x}<br>value %{y:.3g}<br>count %{customdata}<extra></extra>",
                     **on_row(row)})
    axes = stacked_axes([styled_axis(value_title) for _ in layers], 0.07 if len(layers) > 1 else 0.0, "step")
    titles = [dict(text=f"layer {i + 1}", font=dict(size=13), showarrow=False, xref="paper", x=0.0, xanchor="left",
                   yref="paper", y=axes[f"yaxis{'' if row == 1 else row}"]["domain"][1], yanchor="bottom")
              for row, i in enumerate(layers, start=1)]
    return make_figure(data, base_layout(title, height=80 + 150 * len(layers), annotations=titles, **axes))


def decision_boundary(grid_x: Array, grid_y: Array, probability: Array, points: Array, labels: Array,
                      title: str = "Decision boundary") -> go.Figure:
    """P(class 1) over the plane (probability (ny, nx)) with the data points (2, m) coloured by label (m,)."""
    data = [{"type": "contour", "x": grid_x, "y": grid_y, "z": probability, "zmin": 0, "zmax": 1,
             "colorscale": RDBU, "contours": dict(start=0, end=1, size=0.1), "opacity": 0.75,
             "colorbar": dict(thickness=12)}]
    for k, cls in enumerate(np.unique(labels)):
        pick = labels == cls
        data.append({"type": "scatter", "x": points[0, pick], "y": points[1, pick], "mode": "markers",
                     "name": f"class {cls}",
                     # class 0 where the surface is red (P(class 1) low), class 1 where it is blue; shapes differ too
                     "marker": dict(color=(PALETTE[1], PALETTE[0], PALETTE[2], PALETTE[3])[k % 4], size=7,
                                    symbol=MARKERS[k % len(MARKERS)],
                                    line=dict(color="white", width=1))})
    return make_figure(data, base_layout(title, height=460, xaxis=styled_axis("x₁"),
                                         yaxis=styled_axis("x₂", scaleanchor="x", scaleratio=1)))
