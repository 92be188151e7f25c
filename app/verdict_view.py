"""The verdict panel at the top of At initialisation, Training and Compare: core/verdict's text, drawn.

The panel is a container keyed "verdict" (tests and the browser find it by that key): the headline in a box
coloured by how bad it is, the findings as a list. Its words come from core/verdict.py; nothing here is written
per preset.
"""

from __future__ import annotations

import re

import streamlit as st

from app import ui
from core.config import Config
from core.limits import Limits
from core.measures import chance_cost
from core.verdict import OK, PROBLEM, SLOW, WARNING, Finding, Verdict, compare_line, learns, outcome

VERDICT_KEY = "verdict"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#+!|~$])")  # characters Markdown (or its LaTeX) would read as markup


def plain(text: str) -> str:
    """Text shown as written: `xavier_normal` must not turn into italics, nor `$` into a formula."""
    return _MARKDOWN.sub(r"\\\1", text)


BADGES = {  # the word carries the meaning, the colour only repeats it (red and green alike to many readers)
    PROBLEM: ":red-badge[:material/block: problem]",
    WARNING: ":orange-badge[:material/warning: caution]",
    OK: ":green-badge[:material/check_circle: fine]",
    "comparison": ":blue-badge[:material/compare_arrows: compared]",
}
COMPARISON = "comparison"  # a Compare headline where some initialisers learn and some do not


def _headline(severity: str, text: str) -> None:
    """The headline, bold, after a badge naming its severity. Not st.error: a diagnosis of the network is not an
    error of the page."""
    st.markdown(f"{BADGES[severity]} **{plain(text)}**")


def render(v: Verdict, extra: tuple[Finding, ...] = (), folded: bool = False) -> None:
    """The panel: headline, then the findings (``extra`` first: a trained run's outcome leads). ``folded``: the
    findings in a closed expander, where the tab's own charts need the screen (Training)."""
    with st.container(key=VERDICT_KEY, border=True):
        lead = extra[0] if extra else None
        _headline(lead.severity if lead else v.severity, lead.text if lead else v.headline)
        lines = ([f"At initialisation: {v.headline}"] if lead else []) + [f.text for f in v.findings]
        body = "\n".join(f"- {plain(line)}" for line in lines)
        if folded:
            st.expander("The numbers behind this verdict").markdown(body)
        else:
            st.markdown(body)


def render_run(config: Config, network, last, finished: bool, dataset, limits: Limits) -> None:
    """The Training tab's panel for a run on the sidebar's data: its verdict at initialisation (the probe of its
    config: for a full-batch run, the very pass of its step-0 snapshot) and, once it has finished, how its final
    accuracy compares with the majority-class baseline."""
    v = ui.verdict_of(config, dataset, limits)
    extra = (outcome(v.baseline, last, chance_cost(network)),) if finished and last is not None else ()
    render(v, extra, folded=True)


def render_compare(verdicts: dict[str, Verdict], finals: dict[str, object]) -> None:
    """One line per compared initialiser: whether it learns (from its final accuracy once trained, else from its
    statistics at initialisation) and the figure that says why."""
    learning = [label for label, v in verdicts.items() if learns(v, finals.get(label))]
    failing = [label for label in verdicts if label not in learning]
    trained = all(finals.get(label) is not None for label in verdicts)
    yes, no = ("Learned", "did not") if trained else ("Should learn", "should not")
    when = "after training" if trained else "from the statistics at initialisation"
    slow = "" if trained else "".join(f" ({label}: slowly)" for label in learning
                                      if verdicts[label].prognosis == SLOW)
    with st.container(key=VERDICT_KEY, border=True):
        if learning and failing:
            _headline(COMPARISON, f"{yes}: {', '.join(learning)}{slow}; {no}: {', '.join(failing)} ({when}).")
        elif learning:
            _headline(OK, f"Every initialiser here {'learned' if trained else 'should learn'}{slow} ({when}).")
        else:
            _headline(PROBLEM, f"None of these initialisers {'learned' if trained else 'should learn'} ({when}).")
        st.markdown("\n".join(f"- {plain(compare_line(label, v, finals.get(label)))}" for label, v in verdicts.items()))
