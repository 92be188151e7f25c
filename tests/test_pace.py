"""How often live views redraw and live files are read, by the number of pages a server process has open."""

from __future__ import annotations

import pytest

from app.serving.pace import ACTIVE_SECONDS, OPENING_SECONDS, SLOWEST_SECONDS, Pace

PAGES_AT_FULL_PACE = 10


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pace_with(pages: int) -> tuple[Pace, Clock]:
    clock = Clock()
    pace = Pace(PAGES_AT_FULL_PACE, clock)
    for i in range(pages):
        pace.saw(f"session-{i}")
    return pace, clock


@pytest.mark.parametrize("pages", [0, 1, PAGES_AT_FULL_PACE])
def test_a_small_class_sees_every_view_at_its_own_pace(pages):
    pace, _ = pace_with(pages)
    assert pace.every(0.2) == 0.2 and pace.every(1.0) == 1.0


@pytest.mark.parametrize("times", [2, 5])
def test_a_larger_class_slows_every_view_in_proportion(times):
    pace, _ = pace_with(PAGES_AT_FULL_PACE * times)
    assert pace.every(0.2) == pytest.approx(0.2 * times) and pace.every(1.0) == pytest.approx(1.0 * times)


def test_no_class_slows_a_view_past_the_slowest_pace_nor_speeds_a_slow_one():
    pace, _ = pace_with(PAGES_AT_FULL_PACE * 100)
    assert pace.every(1.0) == SLOWEST_SECONDS
    assert pace.every(2 * SLOWEST_SECONDS) == 2 * SLOWEST_SECONDS


def test_a_page_counts_once_and_leaves_when_it_has_not_run_for_a_while():
    pace, clock = pace_with(PAGES_AT_FULL_PACE * 2)
    for _ in range(3):
        pace.saw("session-0")
    assert pace.open_pages() == PAGES_AT_FULL_PACE * 2
    clock.now += ACTIVE_SECONDS / 2
    for i in range(PAGES_AT_FULL_PACE // 2):  # a quarter of the class still runs its page
        pace.saw(f"session-{i}")
    clock.now += ACTIVE_SECONDS / 2 + 1
    assert pace.open_pages() == PAGES_AT_FULL_PACE // 2
    assert pace.every(1.0) == 1.0


def test_a_server_is_busy_while_a_page_is_open_or_being_opened():
    """What the presets' background runs give way to: an open page, or a request of the page whose session has
    not run yet (for OPENING_SECONDS)."""
    pace, clock = pace_with(0)
    assert not pace.busy()
    pace.requested()
    clock.now += OPENING_SECONDS - 1
    assert pace.busy() and pace.open_pages() == 0  # requested, not yet counted as an open page by the pace
    clock.now += 2
    assert not pace.busy()
    pace.saw("a student")
    clock.now += ACTIVE_SECONDS - 1
    assert pace.busy()
    clock.now += 2
    assert not pace.busy()


def test_the_servers_middleware_tells_the_pace_of_a_request_of_the_page_only():
    """app/main.py's PageRequests, in a fresh interpreter (app/main.py builds the server's st.App): a GET of the page
    makes the server busy; the health check, /ready and a page's static files do not."""
    from tests import serving

    script = ("import asyncio\n"
              "import app.main as main\n"
              "async def nothing(scope, receive, send):\n"
              "    pass\n"
              "def busy_after(method, path):\n"
              "    main.pace._requested = -float('inf')\n"
              "    scope = {'type': 'http', 'method': method, 'path': path}\n"
              "    asyncio.run(main.PageRequests(nothing)(scope, None, None))\n"
              "    return main.pace.busy()\n"
              "print([busy_after(m, p) for m, p in [('GET', '/_stcore/health'), ('GET', '/ready'),\n"
              "       ('GET', '/static/js/index.js'), ('POST', '/'), ('GET', '/')]])\n")
    assert serving.fresh_python(script).strip().splitlines()[-1] == "[False, False, False, False, True]"
