"""How long a run has taken and how long it has left, from its snapshots' timing. Pure: no Streamlit, no clock.

A run's pace is measured from its own snapshots: the steps between the first snapshot and the latest over the
seconds between them (the set-up before step 0 is not training, and would make the pace look slower). The time
left is the steps still to go at that pace, less the time already spent since the latest snapshot.
"""

from __future__ import annotations

import math
from typing import Sequence

ESTIMATING = "estimating…"
ROUND_LEFT = 5  # seconds: an estimate is stated in steps of this, rounded up (it is a guess, not a countdown)


def duration(seconds: float) -> str:
    """2.4 s, 41 s, 3 min 05 s, 1 h 02 min: a wait as a person says it, to the second only below an hour; "under
    0.1 s" for what one decimal would show as 0.0 s (a short run's "Finished 80 steps in 0.0 s." read as if it took
    no time, or its time was not measured)."""
    if seconds < 0.05:
        return "under 0.1 s"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def seconds_left(steps: Sequence[int], offsets: Sequence[float], total_steps: int, elapsed: float) -> float | None:
    """Seconds until step `total_steps`, from snapshots at `steps` taken `offsets` seconds after the run started,
    now `elapsed` seconds after it started. None without a basis: fewer than two snapshots, or no time or no step
    between the first and the latest."""
    if len(steps) < 2 or len(offsets) < len(steps):
        return None
    span, stepped = offsets[len(steps) - 1] - offsets[0], steps[-1] - steps[0]
    if span <= 0 or stepped <= 0:
        return None
    pace = stepped / span  # steps per second
    since_latest = max(0.0, elapsed - offsets[len(steps) - 1])
    return max(0.0, (total_steps - steps[-1]) / pace - since_latest)


def wait_text(steps: Sequence[int], offsets: Sequence[float], total_steps: int, elapsed: float) -> str:
    """"1 min 05 s elapsed · about 40 s left", or "… · estimating…" until the snapshots give a pace."""
    left = seconds_left(steps, offsets, total_steps, elapsed)
    if left is None:
        return f"{duration(elapsed)} elapsed · {ESTIMATING}"
    rounded = ROUND_LEFT * math.ceil(left / ROUND_LEFT)
    return f"{duration(elapsed)} elapsed · " + ("a few seconds left" if rounded <= ROUND_LEFT else
                                               f"about {duration(rounded)} left")
