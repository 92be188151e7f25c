"""Jobs the tests run in the sandboxed parser's children (core.sandbox.parse imports a job's module in the child).

A module of its own with nothing heavy in it: importing a test module there would import Streamlit in every child
and spend the wall-clock limit the tests measure.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np


def family_job():
    return {"pid": os.getpid(), "zygote": os.getppid()}, {}


def crash_job():
    os.kill(os.getpid(), signal.SIGSEGV)


def spin_job():
    while True:
        pass


def sleep_job():
    time.sleep(60)


def greedy_job():
    hog = np.ones(2**31 // 8)  # 2 GiB: over a child capped at 3 x 64 MB
    return {}, {"hog": hog}


def echo_job(n: int):
    """n's own numbers (more than a pipe holds), and when the child ran."""
    start = time.time()
    time.sleep(0.3)
    return {"n": n, "ran": [start, time.time()]}, {"values": np.arange(n * 200_000, dtype=np.int64) * n}
