"""Plotly figures from run statistics: pure functions, arrays in, `go.Figure` out (no Streamlit here).

Histograms arrive pre-binned from the engine (counts per fixed bin), so every figure sends a few small traces to
the browser, never raw samples. Colours and fonts are chosen to stay legible on a projector.

The Training tab redraws its figures several times a second, so they are built as plain dicts (traces with a "type",
axes laid out by hand instead of make_subplots) and wrapped without plotly's validation, which otherwise costs ten
times the drawing itself. tests/test_figures.py checks that validating each figure changes nothing in it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas  # noqa: F401  plotly imports pandas lazily on first draw; two sessions' first script runs
import plotly.graph_objects as go  # racing on that import see a half-initialised pandas and crash
import plotly.io as pio
from plotly.colors import get_colorscale, sample_colorscale

Array = np.ndarray

INK = "#111111"
FONT = dict(family="Source Sans Pro, Arial, sans-serif", size=14, color=INK)
# Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green, orange, reddish purple, sky blue, black,
# yellow): distinct under deuteranopia, protanopia and tritanopia. Each series also gets its own marker and dash, so
# a line is told apart in greyscale or by anyone who cannot tell two of the colours apart.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "hexagon")
SERIES_DASHES = (None, "dot", "dashdot", "longdashdot")  # "dash" is kept for predictions; None draws solid
REFERENCE_COLOUR = "#D55E00"
FLOOR_COLOUR = "#555555"
LAYER_SCALE = "Viridis"  # layers by depth: dark purple (layer 1) to green; viridis is colour-blind safe and its
LAYER_SCALE_END = 0.85  # lightness rises steadily (readable in greyscale); cut before its pale yellow end
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


def _value_axis(title: str, log_y: bool, values, floor: float | None = None, **extra) -> dict:
    """The y-axis: on a log scale spanning more than a decade, one label per power of ten (minor digits clutter).
    With a `floor` (zeros drawn there) the ticks are the floor, labelled 0, and the powers of ten above it: no tick
    may give the floor a value it does not have."""
    axis = _axis(title, type="log" if log_y else "linear", exponentformat="power", **extra)
    if log_y and floor is not None:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values])
        top = float(np.max(v[np.isfinite(v)]))
        # powers of ten from 3x the floor up: a label closer to the floor's "0" would crowd it
        decades = list(range(math.ceil(math.log10(3 * floor)), math.floor(math.log10(top)) + 1))
        decades = decades[::max(1, math.ceil(len(decades) / 8))]  # at most 8 labels
        axis.update(tickmode="array", tickvals=[floor, *(10.0**k for k in decades)],
                    ticktext=["0", *(_power_of_ten(k) for k in decades)])
    elif log_y:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.array([])
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            axis["dtick"] = 1 if v.max() / v.min() > 100 else "D2"
    return axis


def _power_of_ten(k: int) -> str:
    return {0: "1", 1: "10"}.get(k, f"10<sup>{k}</sup>")


def _plottable(values, log_y: bool = True) -> Array:
    """Values as floats with NaN (a gap) where a point cannot be drawn: inf, and on a log axis zeros and negatives."""
    v = np.asarray(values, dtype=float)
    keep = np.isfinite(v) & (v > 0) if log_y else np.isfinite(v)
    return np.where(keep, v, np.nan)


ZERO_NOTE = "= 0"
FLOOR_DECADES = 1  # zeros sit this many decades below the smallest value drawn, on a line of their own


def zero_floor(arrays) -> float | None:
    """Where a log axis draws values of exactly 0: a decade below the smallest positive finite value (1 if there
    is none). None when no value is 0: nothing to draw there."""
    values = [np.asarray(a, dtype=float).ravel() for a in arrays]
    flat = np.concatenate(values) if values else np.array([])
    if not np.any(flat == 0):
        return None
    positive = flat[np.isfinite(flat) & (flat > 0)]
    return float(positive.min()) / 10**FLOOR_DECADES if positive.size else 1.0


def _floored(values, floor: float | None) -> tuple[Array, dict]:
    """A log axis's y values with zeros on the floor, and the trace fields that keep the true values: customdata
    (read by hover and by the CSV export)."""
    v = np.asarray(values, dtype=float)
    y = _plottable(v)
    if floor is None or not np.any(v == 0):
        return y, {}
    return np.where(v == 0, floor, y), {"customdata": v}


def _floor_marks(floor: float | None, note: str) -> dict:
    """The floor line and what it means, for a layout."""
    if floor is None:
        return {}
    marks = {"shapes": [dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=floor, y1=floor,
                             line=dict(color=FLOOR_COLOUR, dash="dot", width=1.5))],
             "annotations": [dict(text=note, showarrow=False, xref="x domain", x=0.01, xanchor="left", yref="y",
                                  y=np.log10(floor), yanchor="bottom", font=dict(color=FLOOR_COLOUR, size=13),
                                  bgcolor="rgba(255,255,255,0.8)")]}
    return marks


def _nothing_drawn(arrays, note: str) -> list[dict]:
    """An annotation in the middle of a chart with no drawable value (every one NaN or infinite), never an empty
    frame."""
    values = [np.asarray(a, dtype=float).ravel() for a in arrays]
    flat = np.concatenate(values) if values else np.array([])
    if np.any(np.isfinite(flat)):
        return []
    return [dict(text=f"Nothing to draw: {note}", showarrow=False, xref="paper", x=0.5, yref="paper", y=0.5,
                 font=dict(color=FLOOR_COLOUR, size=14))]


def _with_marks(layout_extra: dict, marks: dict) -> dict:
    """`layout_extra` with `_floor_marks` added to its shapes and annotations."""
    out = dict(layout_extra)
    for key in ("shapes", "annotations"):
        if marks.get(key):
            out[key] = [*out.get(key, []), *marks[key]]
    return out


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


def _stacked(y_axes: Sequence[dict], spacing: float, x_title: str, shared: bool = True) -> dict:
    """Layout axes for plots stacked top to bottom on the bottom one's x-axis, as make_subplots(rows=n, cols=1,
    shared_xaxes=True) lays them out: xaxis/yaxis for the top row, xaxis2/yaxis2 for the next, ... Not `shared`:
    each row keeps its own x-range and tick labels."""
    n = len(y_axes)
    height = (1.0 - spacing * (n - 1)) / n
    axes = {}
    for row, y_axis in enumerate(y_axes, start=1):
        top = 1.0 - (row - 1) * (height + spacing)
        suffix = "" if row == 1 else str(row)
        sharing = {} if row == n or not shared else {"matches": f"x{n}", "showticklabels": False}
        axes[f"xaxis{suffix}"] = _axis(x_title if row == n else None, anchor=f"y{suffix}", domain=[0.0, 1.0],
                                       **sharing)
        axes[f"yaxis{suffix}"] = {**y_axis, "anchor": f"x{suffix}", "domain": [max(top - height, 0.0), top]}
    return axes


def _on_row(row: int) -> dict:
    """The axes a trace of stacked row `row` (from 1) is drawn on."""
    suffix = "" if row == 1 else str(row)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def series_line(k: int, width: float = 2.5) -> dict:
    """Series k's line: its palette colour and its dash (solid for the first)."""
    dash = SERIES_DASHES[k % len(SERIES_DASHES)]
    return {"color": colour(k), "width": width, **({"dash": dash} if dash else {})}


def series_marker(k: int) -> dict:
    return {"symbol": MARKERS[k % len(MARKERS)], "size": 8}


def layer_colour(i: int, n: int) -> str:
    """Layer i of n on the viridis scale, first layer darkest: depth reads as an order across any number of
    traces, in colour and in greyscale alike."""
    return sample_colorscale(LAYER_SCALE, [LAYER_SCALE_END * i / max(n - 1, 1)])[0]


def _layer_scale(n: int) -> dict:
    """A colour bar from layer 1 to layer n, the key to `layer_colour` where a legend of n names would not fit: a
    trace without points that only carries the scale."""
    bar = {"title": {"text": "layer"}, "thickness": 12, **({"dtick": 1} if n <= 12 else {})}
    stops = np.linspace(0.0, 1.0, 6)
    scale = [[float(t), c] for t, c in zip(stops, sample_colorscale(LAYER_SCALE, list(stops * LAYER_SCALE_END)))]
    return {"type": "scatter", "x": [None, None], "y": [None, None], "mode": "markers", "showlegend": False,
            "hoverinfo": "skip", "marker": {"color": [1, n], "cmin": 1, "cmax": n, "showscale": True, "colorbar": bar,
                                            "colorscale": scale}}


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
                     "hovertemplate": f"layer {i + 1}<br>%{{x:.3g}}: %{{y:.1%}}<extra></extra>", **_on_row(row)})
    row_height, spacing = (62, 0.012) if shared_x else (84, 0.3 / max(len(layers), 1))  # room for each row's ticks
    axes = _stacked([_axis(f"L{i + 1}", standoff=2, showticklabels=False) for i in layers], spacing, x_title,
                    shared=shared_x)
    return _figure(data, _layout(title, height=90 + row_height * len(layers), showlegend=False, bargap=0, **axes))


def depth_profile(series: Mapping[str, Array], title: str, y_title: str, log_y: bool = False,
                  predicted: Mapping[str, Array] | None = None, zero_note: str = ZERO_NOTE) -> go.Figure:
    """Per-layer values against depth, one line per series (a statistic, or one initialiser in Compare).

    `predicted` (per layer, by series name) adds a dashed line in its series' colour for each series it names. It
    shows and hides with its series' legend entry and adds none of its own (six entries wrap into the title).
    On a log axis, measured values of exactly 0 are drawn on a dotted floor line labelled `zero_note`.
    """
    floor = zero_floor(series.values()) if log_y else None
    measured = {name: _floored(values, floor) if log_y else (_plottable(values, False), {})
                for name, values in series.items()}
    expected = {name: _plottable(predicted[name], log_y) for name in measured if name in (predicted or {})}
    data = [_by_layer(v, name, series_line(k), legendgroup=name, marker=series_marker(k),
                      **_true_values(keep, name, "layer"))
            for k, (name, (v, keep)) in enumerate(measured.items())]
    colours = {name: colour(k) for k, name in enumerate(measured)}
    data += [_predicted_by_layer(v, f"{name} predicted", colours[name], legendgroup=name, showlegend=False)
             for name, v in expected.items()]
    drawn = [v for v, _ in measured.values()] + list(expected.values())
    depth = max((len(v) for v in drawn), default=0)
    marks = _floor_marks(floor, zero_note)
    y_axis = _value_axis(y_title, log_y, drawn, floor)
    extra = _with_marks({"annotations": _nothing_drawn(drawn, "every value is NaN or infinite")}, marks)
    return _figure(data, _layout(title, xaxis=_layer_axis(depth), yaxis=y_axis, **_non_empty(extra)))


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
    return _figure(data, _layout("Dead and saturated units per layer", barmode="group", xaxis=_layer_axis(len(x)),
                                 yaxis=_axis("share of values", range=[0, 1], tickformat=".0%")))


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
    y_axis = _value_axis(y_title, log_y, drawn, range=None if y_range is None else list(y_range))
    return _figure(data, _layout(title, xaxis=_axis("step"), yaxis=y_axis, **extra))


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
        y, keep = _floored(values[:, i], floor) if log_y else (_plottable(values[:, i], False), {})
        line = series_line(i, 2) if named else {"width": 2}
        data.append({"type": "scatter", "x": steps, "y": y, "name": f"layer {i + 1}", "legendgroup": f"layer {i + 1}",
                     "mode": "lines", "line": {**line, "color": layer_colour(i, n)},
                     **_true_values(keep, f"layer {i + 1}", "step")})
    drawn = [d["y"] for d in data]
    if predicted is not None:
        levels = _plottable(predicted, log_y)[:n]
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
    marks = _floor_marks(floor, zero_note)
    extra = _with_marks(extra, marks)
    if not np.any(np.isfinite(np.asarray(values, dtype=float))):
        extra = _with_marks(extra, {"annotations": _nothing_drawn([values], undefined_note)})
    if not named:
        data.append(_layer_scale(n))
    y_axis = _value_axis(y_title, log_y, drawn, floor)
    return _figure(data, _layout(title, showlegend=named, xaxis=_axis("step"), yaxis=y_axis, **extra))


def histogram_heatmaps(steps: Array, counts: Array, edges: Array, title: str) -> go.Figure:
    """fastai's "colorful dimension": per layer, steps on x, bins on y, colour log(1 + count). counts (T, L, B)."""
    layers = facet_layers(counts.shape[1], most=6)
    data = []
    for row, i in enumerate(layers, start=1):
        e = np.asarray(edges[i], dtype=float)
        data.append({"type": "heatmap", "name": f"layer {i + 1}", "x": steps, "y": (e[:-1] + e[1:]) / 2,
                     "z": np.log1p(counts[:, i, :]).T, "customdata": counts[:, i, :].T,  # the counts: hover, CSV
                     "colorscale": VIRIDIS, "showscale": False,
                     "hovertemplate": "step %{x}<br>value %{y:.3g}<br>count %{customdata}<extra></extra>",
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
                     # class 0 where the surface is red (P(class 1) low), class 1 where it is blue; shapes differ too
                     "marker": dict(color=(PALETTE[1], PALETTE[0], PALETTE[2], PALETTE[3])[k % 4], size=7,
                                    symbol=MARKERS[k % len(MARKERS)],
                                    line=dict(color="white", width=1))})
    return _figure(data, _layout("Decision boundary", height=460, xaxis=_axis("x₁"),
                                 yaxis=_axis("x₂", scaleanchor="x", scaleratio=1)))
