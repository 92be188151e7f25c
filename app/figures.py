"""Plotly figures from run statistics: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Histograms arrive pre-binned from the engine (counts per fixed bin), so every figure sends a few small traces to
the browser, never raw samples. Colours and fonts are chosen to stay legible on a projector.

The Training tab redraws its figures several times a second, so they are built as plain dicts (traces with a "type",
axes laid out by hand instead of make_subplots) and wrapped without plotly's validation, which otherwise costs ten
times the drawing itself. tests/test_figures.py checks that validating each figure changes nothing in it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas  # noqa: F401  plotly imports pandas lazily on first draw; two sessions' first script runs
import plotly.graph_objects as go  # racing on that import see a half-initialised pandas and crash
import plotly.io as pio
from plotly.colors import get_colorscale

Array = np.ndarray

INK = "#111111"
FONT = dict(family="Source Sans Pro, Arial, sans-serif", size=14, color=INK)
PALETTE = ("#0b4f9c", "#d1495b", "#2a9d3f", "#e08e0b", "#6a3d9a", "#00798c", "#8c564b", "#444444")
UPDATE_RATIO_GUIDE = 1e-3  # Karpathy's rule of thumb: each step changes a weight matrix by ~1/1000 of its size
MAX_FACETS = 10  # most layers drawn as small multiples; deeper nets show an even selection
PREDICTED_DASH = "dash"  # predicted values are drawn dashed, measured ones solid
LEGEND_MOST = 4  # named entries that fit one legend row above a half-width chart; more would wrap into the title
RIGHT_LEGEND = dict(orientation="v", x=1.02, xanchor="left", y=1.0, yanchor="top", traceorder="normal")
TRACE_TYPES = ("scatter", "bar", "heatmap", "contour")  # every trace type Init Lab draws
VIRIDIS = get_colorscale("Viridis")  # plotly.js knows fewer colourscale names than plotly: send the colours
RDBU = get_colorscale("RdBu")


def _template(name: str) -> dict:
    """A registered template as plain data, cut to what these figures use (2-D axes, TRACE_TYPES): made once and
    shared by every figure, where `template="plotly_white"` deep-copies and validates the whole template per call."""
    full = pio.templates[name].to_plotly_json()
    layout = {k: v for k, v in full["layout"].items() if k not in ("geo", "mapbox", "polar", "scene", "ternary")}
    return {"data": {t: full["data"][t] for t in TRACE_TYPES if t in full["data"]}, "layout": layout}


TEMPLATE = _template("plotly_white")


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure; a legend of more than LEGEND_MOST names goes in a column at the right, where any number fits."""
    named = sum(1 for t in data if t["type"] in ("scatter", "bar") and t.get("showlegend", True))
    if layout.get("showlegend", True) and named > LEGEND_MOST:
        layout = {**layout, "legend": RIGHT_LEGEND}
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def _layout(title: str, height: int = 340, **extra) -> dict:
    """The layout every figure shares; `extra` adds axes (xaxis=_axis(...)), shapes, barmode and so on."""
    return {
        "template": TEMPLATE, "font": FONT, "height": height, "margin": dict(l=64, r=20, t=76, b=50),
        "title": dict(text=title, x=0.0, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=8),
                      font=dict(size=17)),
        # legend in its own band between the title and the plot, so neither covers the other; "normal" order keeps
        # it one row when predictions share their series' legendgroup (plotly.js would otherwise group the entries)
        "legend": dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0, traceorder="normal"),
        "uirevision": "keep", **extra,
    }


def _axis(title: str | None = None, standoff: int | None = None, **extra) -> dict:
    """An axis with near-black ticks and title (legible on a projector); None values in `extra` are left unset."""
    text = {} if title is None else {"text": title}
    gap = {} if standoff is None else {"standoff": standoff}
    return {"title": {**text, **gap, "font": {"color": INK}}, "tickfont": {"color": INK}, "linecolor": "#444444",
            **{k: v for k, v in extra.items() if v is not None}}


def _value_axis(title: str, log_y: bool, values, **extra) -> dict:
    """The y-axis: on a log scale spanning more than a decade, one label per power of ten (minor digits clutter)."""
    axis = _axis(title, type="log" if log_y else "linear", exponentformat="power", **extra)
    if log_y:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.array([])
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            axis["dtick"] = 1 if v.max() / v.min() > 100 else "D2"
    return axis


def _plottable(values, log_y: bool = True) -> Array:
    """Values as floats with NaN (a gap) where a point cannot be drawn: inf, and on a log axis zeros and negatives."""
    v = np.asarray(values, dtype=float)
    keep = np.isfinite(v) & (v > 0) if log_y else np.isfinite(v)
    return np.where(keep, v, np.nan)


def _by_layer(values: Array, name: str, line: dict, **extra) -> dict:
    """A line with a marker per layer, layers numbered from 1."""
    return {"type": "scatter", "x": np.arange(1, len(values) + 1), "y": values, "name": name,
            "mode": "lines+markers", "line": line, **extra}


def _predicted_by_layer(values: Array, name: str, colour_: str, **extra) -> dict:
    """A prediction per layer: dashed, open markers, so it never reads as a measurement."""
    return _by_layer(values, name, dict(color=colour_, width=2, dash=PREDICTED_DASH), marker=dict(symbol="circle-open"),
                     **extra)


def _layer_axis(n_layers: int) -> dict:
    return _axis("layer", dtick=1 if n_layers <= 12 else None)


def _stacked(y_axes: Sequence[dict], spacing: float, x_title: str) -> dict:
    """Layout axes for plots stacked top to bottom on the bottom one's x-axis, as make_subplots(rows=n, cols=1,
    shared_xaxes=True) lays them out: xaxis/yaxis for the top row, xaxis2/yaxis2 for the next, ..."""
    n = len(y_axes)
    height = (1.0 - spacing * (n - 1)) / n
    axes = {}
    for row, y_axis in enumerate(y_axes, start=1):
        top = 1.0 - (row - 1) * (height + spacing)
        suffix = "" if row == 1 else str(row)
        shared = {} if row == n else {"matches": f"x{n}", "showticklabels": False}
        axes[f"xaxis{suffix}"] = _axis(x_title if row == n else None, anchor=f"y{suffix}", domain=[0.0, 1.0],
                                       **shared)
        axes[f"yaxis{suffix}"] = {**y_axis, "anchor": f"x{suffix}", "domain": [max(top - height, 0.0), top]}
    return axes


def _on_row(row: int) -> dict:
    """The axes a trace of stacked row `row` (from 1) is drawn on."""
    suffix = "" if row == 1 else str(row)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def layer_colour(i: int, n: int) -> str:
    """Shallow layers light blue, deep layers dark: depth reads as a gradient across any number of traces."""
    t = i / max(n - 1, 1)
    r, g, b = (int(round(a + (z - a) * t)) for a, z in ((120, 8), (180, 29), (230, 88)))
    return f"rgb({r},{g},{b})"


def _layer_scale(n: int) -> dict:
    """A colour bar from layer 1 (light) to layer n (dark), the key to `layer_colour` where a legend of n names would
    not fit: a trace without points that only carries the scale."""
    bar = {"title": {"text": "layer"}, "thickness": 12, **({"dtick": 1} if n <= 12 else {})}
    return {"type": "scatter", "x": [None, None], "y": [None, None], "mode": "markers", "showlegend": False,
            "hoverinfo": "skip", "marker": {"color": [1, n], "cmin": 1, "cmax": n, "showscale": True, "colorbar": bar,
                                            "colorscale": [[0.0, layer_colour(0, n)], [1.0, layer_colour(n - 1, n)]]}}


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
    data = []
    for row, i in enumerate(layers, start=1):
        e = np.asarray(edges[i], dtype=float)
        c = np.asarray(counts[i])
        data.append({"type": "bar", "x": (e[:-1] + e[1:]) / 2, "y": c / max(int(c.sum()), 1), "width": np.diff(e),
                     "name": f"layer {i + 1}", "marker": dict(color=layer_colour(i, len(counts)), line=dict(width=0)),
                     "hovertemplate": f"layer {i + 1}<br>%{{x:.3g}}: %{{y:.1%}}<extra></extra>", **_on_row(row)})
    axes = _stacked([_axis(f"L{i + 1}", standoff=2, showticklabels=False) for i in layers], 0.012, x_title)
    return _figure(data, _layout(title, height=90 + 62 * len(layers), showlegend=False, bargap=0, **axes))


def depth_profile(series: Mapping[str, Array], title: str, y_title: str, log_y: bool = False,
                  predicted: Mapping[str, Array] | None = None) -> go.Figure:
    """Per-layer values against depth, one line per series (a statistic, or one initialiser in Compare).

    `predicted` (per layer, by series name) adds a dashed line in its series' colour for each series it names. It
    shows and hides with its series' legend entry and adds none of its own (six entries wrap into the title).
    """
    measured = {name: _plottable(values, log_y) for name, values in series.items()}
    colours = {name: colour(k) for k, name in enumerate(measured)}
    expected = {name: _plottable(predicted[name], log_y) for name in measured if name in (predicted or {})}
    data = [_by_layer(v, name, dict(color=colours[name], width=2.5), legendgroup=name) for name, v in measured.items()]
    data += [_predicted_by_layer(v, f"{name} predicted", colours[name], legendgroup=name, showlegend=False)
             for name, v in expected.items()]
    depth = max((len(v) for v in [*measured.values(), *expected.values()]), default=0)
    return _figure(data, _layout(title, xaxis=_layer_axis(depth),
                                 yaxis=_value_axis(y_title, log_y, [*measured.values(), *expected.values()])))


def layer_fractions(dead: Array, saturated: Array) -> go.Figure:
    """Share of dead (relu: exactly 0) and saturated (tanh/sigmoid: flat part) values per layer."""
    x = np.arange(1, len(dead) + 1)
    data = [{"type": "bar", "x": x, "y": dead, "name": "dead (A = 0)", "marker": dict(color=colour(1))},
            {"type": "bar", "x": x, "y": saturated, "name": "saturated", "marker": dict(color=colour(3))}]
    return _figure(data, _layout("Dead and saturated units per layer", barmode="group", xaxis=_layer_axis(len(x)),
                                 yaxis=_axis("share of values", range=[0, 1], tickformat=".0%")))


def curves(steps: Mapping[str, Array], values: Mapping[str, Array], title: str, y_title: str, *,
           log_y: bool = False, y_range: Sequence[float] | None = None) -> go.Figure:
    """Named curves over training steps (loss, accuracies, or one loss curve per initialiser)."""
    data = []
    for k, name in enumerate(values):
        few = len(values[name]) < 3  # a curve of one or two points is invisible without markers
        data.append({"type": "scatter", "x": steps[name], "y": values[name], "name": name,
                     "mode": "lines+markers" if few else "lines", "line": dict(color=colour(k), width=2.5)})
    y_axis = _value_axis(y_title, log_y, list(values.values()), range=None if y_range is None else list(y_range))
    return _figure(data, _layout(title, xaxis=_axis("step"), yaxis=y_axis))


def per_layer_over_steps(steps: Array, values: Array, title: str, y_title: str, *, log_y: bool = True,
                         reference: float | None = None, predicted: Array | None = None) -> go.Figure:
    """values (steps, layers): one line per layer, coloured light (first) to dark (last).

    `reference` is a dashed red guide line; `predicted` (one value per layer, at initialisation) a dashed segment
    across the steps in each layer's colour. The segments add no legend entries (a fifth entry already wraps the
    legend of four layers into the title): each one shows and hides with its layer's entry, and hovering names it.
    More than LEGEND_MOST layers get a colour bar of layers instead of the legend.
    """
    n = values.shape[1]
    data = [{"type": "scatter", "x": steps, "y": _plottable(values[:, i], log_y), "name": f"layer {i + 1}",
             "legendgroup": f"layer {i + 1}", "mode": "lines", "line": dict(color=layer_colour(i, n), width=2)}
            for i in range(n)]
    drawn = [values]
    if predicted is not None:
        levels = _plottable(predicted, log_y)[:n]
        span = np.asarray(steps)[[0, -1]] if len(steps) else np.array([])
        data += [{"type": "scatter", "x": span, "y": np.full(len(span), level), "name": "predicted at init",
                  "legendgroup": f"layer {i + 1}", "showlegend": False, "mode": "lines",
                  "line": dict(color=layer_colour(i, n), width=2, dash=PREDICTED_DASH),
                  "hovertemplate": f"layer {i + 1} predicted at init: %{{y:.3g}}<extra></extra>"}
                 for i, level in enumerate(levels)]
        drawn.append(levels)
    extra = {}
    if reference is not None:
        drawn.append([reference])
        label_y = np.log10(reference) if log_y and reference > 0 else reference  # annotations sit in log10 units
        extra["shapes"] = [dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=reference, y1=reference,
                                line=dict(color="#d1495b", dash="dash", width=2))]
        extra["annotations"] = [dict(text=f"{reference:g}", showarrow=False, xref="x domain", x=1, xanchor="right",
                                     yref="y", y=label_y, yanchor="bottom")]
    named = n <= LEGEND_MOST
    if not named:
        data.append(_layer_scale(n))
    return _figure(data, _layout(title, showlegend=named, xaxis=_axis("step"),
                                 yaxis=_value_axis(y_title, log_y, drawn), **extra))


def histogram_heatmaps(steps: Array, counts: Array, edges: Array, title: str) -> go.Figure:
    """fastai's "colorful dimension": per layer, steps on x, bins on y, colour log(1 + count). counts (T, L, B)."""
    layers = facet_layers(counts.shape[1], most=6)
    data = []
    for row, i in enumerate(layers, start=1):
        e = np.asarray(edges[i], dtype=float)
        data.append({"type": "heatmap", "x": steps, "y": (e[:-1] + e[1:]) / 2, "z": np.log1p(counts[:, i, :]).T,
                     "colorscale": VIRIDIS, "showscale": False,
                     "hovertemplate": "step %{x}<br>value %{y:.3g}<br>log(1+count) %{z:.2f}<extra></extra>",
                     **_on_row(row)})
    axes = _stacked([_axis() for _ in layers], 0.07 if len(layers) > 1 else 0.0, "step")
    titles = [dict(text=f"layer {i + 1}", font=dict(size=13), showarrow=False, xref="paper", x=0.0, xanchor="left",
                   yref="paper", y=axes[f"yaxis{'' if row == 1 else row}"]["domain"][1], yanchor="bottom")
              for row, i in enumerate(layers, start=1)]
    return _figure(data, _layout(title, height=80 + 150 * len(layers), annotations=titles, **axes))


def decision_boundary(grid_x: Array, grid_y: Array, probability: Array, points: Array, labels: Array) -> go.Figure:
    """P(class 1) over the plane (probability (ny, nx)) with the data points (2, m) coloured by label (m,)."""
    data = [{"type": "contour", "x": grid_x, "y": grid_y, "z": probability, "zmin": 0, "zmax": 1,
             "colorscale": RDBU, "contours": dict(start=0, end=1, size=0.1), "opacity": 0.75,
             "colorbar": dict(thickness=12)}]
    for k, cls in enumerate(np.unique(labels)):
        pick = labels == cls
        data.append({"type": "scatter", "x": points[0, pick], "y": points[1, pick], "mode": "markers",
                     "name": f"class {cls}",
                     "marker": dict(color=("#b2182b", "#2166ac", "#2a9d3f", "#e08e0b")[k % 4], size=7,
                                    line=dict(color="white", width=1))})
    return _figure(data, _layout("Decision boundary", height=460, xaxis=_axis("x₁"),
                                 yaxis=_axis("x₂", scaleanchor="x", scaleratio=1)))
