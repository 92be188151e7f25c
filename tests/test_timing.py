"""Elapsed and estimated time left of a run (app/timing.py), and of a replay read through the page's helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.serving.store import FINISHED, Replay, SharedRun
from app.timing import ESTIMATING, duration, seconds_left, wait_text
from app.ui import run_wait
from core.config import Config
from core.network import Network


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (-0.01, 0, 0.049, 0.051, 2.44, 9.94, 10.2, 59.4, 60, 185, 3599.4, 3725)] == [
        "under 0.1 s", "under 0.1 s", "under 0.1 s", "0.1 s", "2.4 s", "9.9 s", "10 s", "59 s", "1 min 00 s",
        "3 min 05 s", "59 min 59 s", "1 h 02 min"]


def test_no_estimate_until_two_snapshots_a_step_and_a_moment_apart():
    assert seconds_left([], [], 100, 5.0) is None
    assert seconds_left([0], [0.4], 100, 5.0) is None  # one snapshot: no pace yet
    assert seconds_left([0, 0], [0.4, 0.9], 100, 5.0) is None  # no step between them
    assert seconds_left([0, 10], [0.4, 0.4], 100, 5.0) is None  # no time between them
    assert wait_text([0], [0.4], 100, 5.0) == f"5.0 s elapsed · {ESTIMATING}"


def test_the_pace_is_measured_from_the_first_snapshot_not_from_the_start():
    # 3 s of set-up before step 0, then 20 steps a second: 200 steps by 13 s, 800 to go = 40 s at that pace.
    steps = [0, 100, 200]
    offsets = [3.0, 8.0, 13.0]
    assert seconds_left(steps, offsets, 1000, elapsed=13.0) == pytest.approx(40.0)
    # 2 s after that snapshot, 2 s of the 40 have passed
    assert seconds_left(steps, offsets, 1000, elapsed=15.0) == pytest.approx(38.0)
    # a run slower than its pace so far is never given a negative time left
    assert seconds_left(steps, offsets, 1000, elapsed=100.0) == 0.0


def test_the_estimate_is_rounded_up_and_says_so():
    assert wait_text([0, 100, 200], [3.0, 8.0, 13.0], 1000, 15.0) == "15 s elapsed · about 40 s left"  # 38 s
    assert wait_text([0, 100, 200], [3.0, 8.0, 13.0], 1000, 200.0) == "3 min 20 s elapsed · a few seconds left"
    assert wait_text([0, 10], [0.0, 1.0], 900, 1.0) == "1.0 s elapsed · about 1 min 30 s left"  # 89 s


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_replay_is_timed_from_when_it_was_started_at_its_recorded_pace():
    """A replay reveals the recorded snapshots at the pace they were computed: its time left is the original run's
    time still to show, counted from when this session pressed Start."""
    config = Config(dataset="circles", layers=(4,), iterations=200, record_every=10)
    run = SharedRun("k", config, Network((2, 4, 1), ("relu",)), Path("unused.h5"), True, status=FINISHED,
                    snapshots=[object()] * 5, offsets=[1.0, 2.0, 3.0, 4.0, 5.0], seconds=5.2)
    clock = FakeClock()
    replay = Replay(run, "session", clock)
    clock.now += 2.5  # two snapshots are due (1.0 and 2.0 s)
    shown = [type("Shown", (), {"step": step})() for step in (0, 10)]
    # 10 steps a second; 190 steps to go = 19 s from the snapshot at 2.0 s, of which 0.5 s have passed: 18.5 s
    assert run_wait(replay, shown) == "2.5 s elapsed · about 20 s left"
    clock.now += 10.0
    assert run_wait(replay, shown[:1]) == f"12 s elapsed · {ESTIMATING}"
