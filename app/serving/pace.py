"""How often the pages of a server redraw their live views and read the files of live runs, so that a large class
does not slow the runs it waits for.

A live view (the Compare table and curves, the Training tab's progress and charts, a sweep, a lesson waiting for
its run) is a fragment on a timer: every tick of every watching page is a script run in the server's one
interpreter, 5-10 ms of CPU with its messages. At their own pace, 100 students' Compare pages took about a core of
a 2-core machine from the two runs they were all waiting for (deploy/README.md, the load test). So each view
redraws at its own pace while the server process has at most `INITLAB_PAGES_AT_FULL_PACE` pages open (10), and
beyond that every view slows in proportion: the class's redraws together then cost what that many pages' would. The
server's reads of a live run's file (app/serving/store.py), which no page can see faster than it redraws, slow
by the same factor.

A page is open if it ran (the whole page, or one of its fragments) within the last ACTIVE_SECONDS. The presets'
background runs (app/serving/store.py) give way to open pages, and to a page being opened: its request reaches the
server a second or more before its session's first run.
"""

from __future__ import annotations

import threading
import time

from app.serving.limits import ServerLimits
from core.config import ConfigError

ACTIVE_SECONDS = 60.0  # a page that has not run for this long is closed (or idle: it redraws nothing)
SLOWEST_SECONDS = 10.0  # however large the class, a view redraws at least this often
OPENING_SECONDS = 10.0  # a request of the page counts as a page being opened for this long (then its session runs)


class Pace:
    """The pages of one server process, by session, with when each last ran."""

    def __init__(self, full_pace: int, clock=time.monotonic):
        self.full_pace, self.clock = full_pace, clock
        self._seen: dict[str, float] = {}
        self._requested = -float("inf")  # when the page was last requested (app/main.py's middleware)
        self._lock = threading.Lock()

    def saw(self, session: str) -> None:
        with self._lock:
            self._seen[session] = self.clock()

    def requested(self) -> None:
        with self._lock:
            self._requested = self.clock()

    def busy(self) -> bool:
        """Whether a page is open, or being opened (requested within OPENING_SECONDS)."""
        with self._lock:
            opening = self.clock() - self._requested < OPENING_SECONDS
        return opening or self.open_pages() > 0

    def open_pages(self) -> int:
        cutoff = self.clock() - ACTIVE_SECONDS
        with self._lock:
            for session in [s for s, seen in self._seen.items() if seen < cutoff]:
                del self._seen[session]
            return len(self._seen)

    def every(self, fastest: float) -> float:
        """Seconds between two redraws (or reads) whose own pace is every ``fastest`` seconds, with the pages open
        now: ``fastest`` for up to `full_pace` pages, then slower in proportion, up to SLOWEST_SECONDS."""
        slower = fastest * max(1.0, self.open_pages() / self.full_pace)
        return max(fastest, min(slower, SLOWEST_SECONDS))


def _full_pace() -> int:
    try:
        return ServerLimits.from_env().pages_at_full_pace
    except ConfigError:  # the page says what is malformed (app/page.py: run_store), before any live view
        return ServerLimits.pages_at_full_pace


pace = Pace(_full_pace())  # this server process's
