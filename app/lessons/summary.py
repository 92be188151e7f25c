"""A lesson's one-page summary for the teacher: every question, its options and answer, the published figure and the
explanation, as a plain HTML page with print styles (open it, print it from the browser). No Streamlit."""

from __future__ import annotations

from html import escape

from app.lessons.evaluate import show
from app.lessons.model import CHARTS, Lesson, Step
from app.state import compact_layers

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Init Lab lesson</title>
<style>
body {{ font: 11pt/1.4 system-ui, sans-serif; max-width: 46em; margin: 2em auto; color: #111; }}
h1 {{ font-size: 16pt; margin: 0 0 .3em; }} h2 {{ font-size: 11.5pt; margin: 1em 0 .2em; }}
p {{ margin: .2em 0; }} .answer {{ font-weight: 600; }} .small {{ color: #444; font-size: 9.5pt; }}
ol {{ margin: .2em 0 .2em 1.2em; padding: 0; }} li.right {{ font-weight: 600; }}
@media print {{ body {{ margin: 0; font-size: 9.5pt; }} h2 {{ break-after: avoid; }}
  section {{ break-inside: avoid; }} }}
</style></head><body>
<h1>{title}</h1>
<p>{goal}</p>
{steps}
<p class="small">Init Lab · lesson file {name}</p>
</body></html>
"""


def answer_text(step: Step, measured: float | None = None) -> str:
    """The answer as the teacher's sheet states it: the right option, or the number with its tolerance, from the
    value measured on this server when the step has run (else what decides it); the published figure if any."""
    a = step.answer
    found = "" if measured is None else f" Measured here: {show(measured)}."
    if a.kind == "number":
        text = f"The measured {a.measure.describe()}, within ±{show(a.tolerance)}.{found}"
    elif a.correct is not None:
        text = f"Option {a.correct}: {a.options[a.correct - 1]}."
    elif measured is not None and a.right_option(measured) is not None:
        option = a.right_option(measured)
        text = f"Option {option + 1}: {a.options[option]}.{found}"
    else:
        text = (f"Decided by the measured {a.measure.describe()}: run the step once in the Lessons tab and this "
                "page shows it.")
    if a.published:
        text += f" Published: {a.published}" + (f" ({a.source})." if a.source else ".")
    return text


def options_html(step: Step) -> str:
    a = step.answer
    if a.kind != "choice":
        return ""
    items = []
    for i, option in enumerate(a.options):
        when = f" <span class=small>(if {show(a.ranges[i][0])} ≤ value &lt; {show(a.ranges[i][1])})</span>" \
            if a.ranges else ""
        right = ' class="right"' if a.correct == i + 1 else ""
        items.append(f"<li{right}>{escape(option)}{when}</li>")
    return f"<ol>{''.join(items)}</ol>"


def summary_html(lesson: Lesson, measured: dict[int, float] | None = None) -> str:
    """The page; `measured` holds the values the steps' runs measured, by step index (0-based), where known."""
    measured = measured or {}
    steps = "\n".join(
        f"<section><h2>Step {n}. {escape(step.question)}</h2>{options_html(step)}"
        f"<p class=answer>Answer: {escape(answer_text(step, measured.get(n - 1)))}</p><p>{escape(step.explanation)}</p>"
        f"<p class=small>Chart: {escape(CHARTS[step.chart])}. Network: layers "
        f"{escape(compact_layers(step.config.layers))}, {escape(step.config.activation)}, "
        f"{escape(step.config.init)}, {step.config.iterations:,} training steps on {escape(step.config.dataset)}.</p>"
        "</section>" for n, step in enumerate(lesson.steps, 1))
    return PAGE.format(title=escape(lesson.title), goal=escape(lesson.goal), steps=steps, name=escape(lesson.name))
