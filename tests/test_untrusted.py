"""The parser's zygote (core.zygote, started by core.sandbox): one per server process, it forks a child per parse
and outlives each child, is started again after it dies, takes its children with it, and ends with the server.

Processes are watched through /proc, as the tests' own: a job reports its pid and its parent's (the zygote's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from core import sandbox
from core.sandbox import MAX_CONCURRENT_PARSES
from core.untrusted import ParseLimits, UntrustedFileError
from tests.sandbox_jobs import crash_job, echo_job, family_job, sleep_job

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------- helpers


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...), None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Every process whose parent is ``pid``, zombies included (a zombie is a child nobody reaped)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat(int(name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(name))
    return found


def wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def family() -> dict:
    """The pids of a parse's child and zygote, once the child has exited and been reaped."""
    plain, _ = sandbox.parse(family_job, label="'family.h5'")
    assert plain["zygote"] != os.getpid(), "the child is this process's own: there is no zygote"
    assert wait_until(lambda: children_of(plain["zygote"]) == [], 5), "a child left behind"
    return plain


def kill_zygote() -> int:
    zygote = family()["zygote"]
    os.kill(zygote, signal.SIGKILL)
    assert wait_until(lambda: not alive(zygote), 5)
    return zygote


# --------------------------------------------------------------------------------------------------- tests


def test_each_parse_is_a_new_child_of_one_single_threaded_zygote_that_outlives_a_crash():
    first = family()
    zygote = first["zygote"]
    assert first["pid"] != zygote
    assert os.listdir(f"/proc/{zygote}/task") == [str(zygote)]  # one thread: forking it is safe
    with pytest.raises(UntrustedFileError, match=r"'boom.h5' made the HDF5 reader crash \(SIGSEGV\)"):
        sandbox.parse(crash_job, label="'boom.h5'")
    assert children_of(zygote) == []  # the crashed child was reaped before its parse returned
    second = family()
    assert second["zygote"] == zygote and second["pid"] not in (first["pid"], zygote)


def test_the_wall_clock_limit_kills_the_child_and_only_the_child():
    zygote = family()["zygote"]
    with pytest.raises(UntrustedFileError, match="longer than 12 s"):
        sandbox.parse(sleep_job, label="'slow.h5'", limits=ParseLimits(cpu_seconds=1))
    assert children_of(zygote) == []
    assert family()["zygote"] == zygote


def test_a_zygote_killed_between_parses_is_started_again():
    dead = kill_zygote()
    again = family()
    assert again["zygote"] != dead and alive(again["zygote"])


def test_a_zygote_killed_during_a_parse_takes_its_child_along_and_the_next_parse_works():
    zygote = family()["zygote"]
    outcome = {}

    def parse_slowly():
        try:
            sandbox.parse(sleep_job, label="'slow.h5'")
        except UntrustedFileError as e:
            outcome["error"] = str(e)

    reader = threading.Thread(target=parse_slowly)
    reader.start()
    assert wait_until(lambda: children_of(zygote), 10)
    [child] = children_of(zygote)
    os.kill(zygote, signal.SIGKILL)
    reader.join(10)
    assert not reader.is_alive()
    assert "file reader was stopped while reading 'slow.h5'" in outcome["error"]
    assert wait_until(lambda: not alive(child), 5)  # not left sleeping, an orphan
    assert family()["zygote"] not in (zygote, child)


SERVER = """
import threading, time
from core import sandbox
from tests.test_untrusted import family
from tests.sandbox_jobs import sleep_job
print(family()["zygote"], flush=True)
threading.Thread(target=sandbox.parse, args=(sleep_job,), kwargs={"label": "y"}, daemon=True).start()
time.sleep(600)
"""


def test_the_zygote_and_its_children_end_when_the_server_process_is_killed():
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        zygote = int(server.stdout.readline())
        assert zygote != server.pid
        assert wait_until(lambda: children_of(zygote), 30)  # the sleeping child
        [child] = children_of(zygote)
    finally:
        server.kill()  # SIGKILL: no atexit hook runs; the zygote sees its socket close
        server.wait()
    assert wait_until(lambda: not alive(zygote) and not alive(child), 10)


def test_parses_from_many_threads_at_once_share_one_zygote_and_each_gets_its_own_answer():
    kill_zygote()  # so that all the threads below find no zygote running, and must not each start one
    with ThreadPoolExecutor(8) as pool:
        zygotes = list(pool.map(lambda _: family()["zygote"], range(8)))
        answers = list(pool.map(lambda n: sandbox.parse(echo_job, n, label=f"'{n}.h5'"), range(1, 9)))
    assert len(set(zygotes)) == 1
    for n, (plain, arrays) in enumerate(answers, start=1):
        assert plain["n"] == n
        np.testing.assert_array_equal(arrays["values"], n * np.arange(n * 200_000))
    moments = sorted([(t, +1) for (plain, _) in answers for t in plain["ran"][:1]]
                     + [(t, -1) for (plain, _) in answers for t in plain["ran"][1:]], key=lambda m: (m[0], m[1]))
    running = np.cumsum([step for _, step in moments])
    assert running.max() == MAX_CONCURRENT_PARSES  # in parallel, never more than the cap
