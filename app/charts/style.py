"""The look every Init Lab figure shares, and the pieces figures are built from: palette, template and layout,
axes (log axes with zeros drawn on a floor line of their own), per-layer traces and stacked rows. Pure functions.

Figures are built as plain dicts (traces with a "type", axes laid out by hand instead of make_subplots) and wrapped
without plotly's validation, which otherwise costs ten times the drawing itself (see app/charts/figures.py).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

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
PREDICTED_DASH = "dash"  # predicted values are drawn dashed, measured ones solid
LEGEND_MOST = 4  # named entries that fit one legend row above a half-width chart; more would wrap into the title
LEGEND_BAND_TOP = 76  # px above the plot: the title, then a legend row (a third of a 340-px chart's height)
TITLE_TOP = 44  # px above the plot when only the title is there: the plot gets the legend band's height back
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


class FrozenFigure(go.Figure):
    """A figure nobody changes once built (one that every session watching a run draws): its dict, which each
    drawing asks for (Streamlit's plotly_chart, plotly.io.to_json), is made once instead of deep-copied each time."""

    def to_dict(self) -> dict:
        if getattr(self, "_frozen_dict", None) is None:
            self._frozen_dict = super().to_dict()
        return self._frozen_dict


def frozen(figures: dict) -> dict:
    """`figures` (name -> figure), each made a FrozenFigure."""
    return {name: FrozenFigure(fig) for name, fig in figures.items()}


def make_figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure; a legend of more than LEGEND_MOST names goes in a column at the right, where any number fits.
    Without a legend or a row label above the plot, the band left for them goes to the plot."""
    named = sum(1 for t in data if t["type"] in ("scatter", "bar") and t.get("showlegend", True))
    if layout.get("showlegend", True) and named > LEGEND_MOST:
        layout = {**layout, "legend": RIGHT_LEGEND}
    legend_above = layout.get("showlegend", named > 1) and 0 < named <= LEGEND_MOST
    labels_above = any(a.get("yref") == "paper" and a.get("y", 0) >= 1 for a in layout.get("annotations", ()))
    if not (legend_above or labels_above) and layout["margin"]["t"] == LEGEND_BAND_TOP:
        layout = {**layout, "margin": {**layout["margin"], "t": TITLE_TOP}}
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def base_layout(title: str, height: int = 340, **extra) -> dict:
    """The layout every figure shares; `extra` adds axes (xaxis=styled_axis(...)), shapes, barmode and so on."""
    return {
        "template": TEMPLATE, "font": FONT, "height": height, "margin": dict(l=64, r=20, t=LEGEND_BAND_TOP, b=50),
        "title": dict(text=title, x=0.0, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=8),
                      font=dict(size=17)),
        # legend in its own band between the title and the plot, so neither covers the other; "normal" order keeps
        # it one row when predictions share their series' legendgroup (plotly.js would otherwise group the entries)
        "legend": dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0, traceorder="normal"),
        "uirevision": "keep", **extra,
    }


def styled_axis(title: str | None = None, standoff: int | None = None, **extra) -> dict:
    """An axis with near-black ticks and title (legible on a projector); None values in `extra` are left unset."""
    text = {} if title is None else {"text": title}
    gap = {} if standoff is None else {"standoff": standoff}
    return {"title": {**text, **gap, "font": {"color": INK}}, "tickfont": {"color": INK}, "linecolor": "#444444",
            **{k: v for k, v in extra.items() if v is not None}}


def value_axis(title: str, log_y: bool, values, floor: float | None = None, **extra) -> dict:
    """The y-axis: on a log scale spanning more than a decade, one label per power of ten (minor digits clutter).
    With a `floor` (zeros drawn there) the ticks are the floor, labelled 0, and the powers of ten above it: no tick
    may give the floor a value it does not have."""
    axis = styled_axis(title, type="log" if log_y else "linear", exponentformat="power", **extra)
    if log_y and floor is not None:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values])
        top = float(np.max(v[np.isfinite(v)]))
        # powers of ten from 3x the floor up: a label closer to the floor's "0" would crowd it
        decades = list(range(math.ceil(math.log10(3 * floor)), math.floor(math.log10(top)) + 1))
        decades = decades[::max(1, math.ceil(len(decades) / 8))]  # at most 8 labels
        axis.update(tickmode="array", tickvals=[floor, *(10.0**k for k in decades)],
                    ticktext=["0", *(power_of_ten(k) for k in decades)])
    elif log_y:
        v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.array([])
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            decades = math.log10(v.max() / v.min())
            # a label every power of ten, or every k-th when that would be more than 8 (a 50-layer ×0.01 stack spans
            # 60 decades: its labels overlapped in a solid column)
            axis["dtick"] = max(1, math.ceil(decades / 8)) if decades > 2 else "D2"
    return axis


def power_of_ten(k: int) -> str:
    return {0: "1", 1: "10"}.get(k, f"10<sup>{k}</sup>")


def plottable(values, log_y: bool = True) -> Array:
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


def floored(values, floor: float | None) -> tuple[Array, dict]:
    """A log axis's y values with zeros on the floor, and the trace fields that keep the true values: customdata
    (read by hover and by the CSV export)."""
    v = np.asarray(values, dtype=float)
    y = plottable(v)
    if floor is None or not np.any(v == 0):
        return y, {}
    return np.where(v == 0, floor, y), {"customdata": v}


def floor_marks(floor: float | None, note: str) -> dict:
    """The floor line and what it means, for a layout."""
    if floor is None:
        return {}
    marks = {"shapes": [dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=floor, y1=floor,
                             line=dict(color=FLOOR_COLOUR, dash="dot", width=1.5))],
             "annotations": [dict(text=note, showarrow=False, xref="x domain", x=0.01, xanchor="left", yref="y",
                                  y=np.log10(floor), yanchor="bottom", font=dict(color=FLOOR_COLOUR, size=13),
                                  bgcolor="rgba(255,255,255,0.8)")]}
    return marks


def nothing_drawn(arrays, note: str) -> list[dict]:
    """An annotation in the middle of a chart with no drawable value (every one NaN or infinite), never an empty
    frame."""
    values = [np.asarray(a, dtype=float).ravel() for a in arrays]
    flat = np.concatenate(values) if values else np.array([])
    if np.any(np.isfinite(flat)):
        return []
    return [dict(text=f"Nothing to draw: {note}", showarrow=False, xref="paper", x=0.5, yref="paper", y=0.5,
                 font=dict(color=FLOOR_COLOUR, size=14))]


def with_marks(layout_extra: dict, marks: dict) -> dict:
    """`layout_extra` with `floor_marks` added to its shapes and annotations."""
    out = dict(layout_extra)
    for key in ("shapes", "annotations"):
        if marks.get(key):
            out[key] = [*out.get(key, []), *marks[key]]
    return out


def by_layer(values: Array, name: str, line: dict, **extra) -> dict:
    """A line with a marker per layer, layers numbered from 1."""
    return {"type": "scatter", "x": np.arange(1, len(values) + 1), "y": values, "name": name,
            "mode": "lines+markers", "line": line, **extra}


def predicted_by_layer(values: Array, name: str, colour_: str, **extra) -> dict:
    """A prediction per layer: dashed, open markers, so it never reads as a measurement."""
    return by_layer(values, name, dict(color=colour_, width=2, dash=PREDICTED_DASH), marker=dict(symbol="circle-open"),
                    **extra)


def layer_axis(n_layers: int) -> dict:
    return styled_axis("layer", dtick=1 if n_layers <= 12 else None)


def stacked_axes(y_axes: Sequence[dict], spacing: float, x_title: str, shared: bool = True) -> dict:
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
        axes[f"xaxis{suffix}"] = styled_axis(x_title if row == n else None, anchor=f"y{suffix}", domain=[0.0, 1.0],
                                             **sharing)
        axes[f"yaxis{suffix}"] = {**y_axis, "anchor": f"x{suffix}", "domain": [max(top - height, 0.0), top]}
    return axes


def on_row(row: int) -> dict:
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


@functools.lru_cache(maxsize=4096)  # plotly rebuilds its table of named scales at each call (a third of a chart)
def layer_colour(i: int, n: int) -> str:
    """Layer i of n on the viridis scale, first layer darkest: depth reads as an order across any number of
    traces, in colour and in greyscale alike."""
    return sample_colorscale(LAYER_SCALE, [LAYER_SCALE_END * i / max(n - 1, 1)])[0]


def layer_scale(n: int) -> dict:
    """A colour bar from layer 1 to layer n, the key to `layer_colour` where a legend of n names would not fit: a
    trace without points that only carries the scale."""
    bar = {"title": {"text": "layer"}, "thickness": 12, **({"dtick": 1} if n <= 12 else {})}
    stops = np.linspace(0.0, 1.0, 6)
    scale = [[float(t), c] for t, c in zip(stops, sample_colorscale(LAYER_SCALE, list(stops * LAYER_SCALE_END)))]
    return {"type": "scatter", "x": [None, None], "y": [None, None], "mode": "markers", "showlegend": False,
            "hoverinfo": "skip", "marker": {"color": [1, n], "cmin": 1, "cmax": n, "showscale": True, "colorbar": bar,
                                            "colorscale": scale}}


