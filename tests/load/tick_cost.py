"""What one tick of a watching Compare page costs the server: K protocol students start the seed question's
comparison on a cleared cache, and while the two runs train, the server's CPU seconds over a window are divided by
the fragment reruns the students asked for in it. (A script, not a pytest test.)

    python tests/load/tick_cost.py [--students 20] [--window 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import serving  # noqa: E402
from tests.load.load_test import SEED_NOTE, data_folder  # noqa: E402
from tests.load.protocol import Client  # noqa: E402


class Counting(Client):
    """A student counting the fragment reruns (ticks) it asks for: `ticks` is the whole class's count."""

    ticks = 0

    async def rerun(self, *states, fragment_id: str = "", auto: bool = False) -> None:
        if auto:
            type(self).ticks += 1
        await super().rerun(*states, fragment_id=fragment_id, auto=auto)


async def student(url: str, ready: asyncio.Barrier, measured: asyncio.Event) -> None:
    async with Counting(url, "preset=custom") as page:
        await page.run()
        await ready.wait()
        await page.run(page.choose("Preset", "seed question"))
        await page.wait_for(lambda payload: SEED_NOTE.encode() in payload, 300)
        await page.run(page.choose("tabs", "Compare"))
        await page.run(page.press("Train all"))
        await measured.wait()


async def measure(url: str, k: int, window: float, pid: int) -> None:
    ready, measured = asyncio.Barrier(k + 1), asyncio.Event()
    tasks = [asyncio.create_task(student(url, ready, measured)) for _ in range(k)]
    await ready.wait()
    await asyncio.sleep(8)  # every page has pressed Train all, and its timer runs
    ticks0, cpu0, began = Counting.ticks, serving.cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(window)
    ticks, cpu = Counting.ticks - ticks0, serving.cpu_seconds(pid) - cpu0
    wall = time.perf_counter() - began
    measured.set()
    await asyncio.gather(*tasks)
    print(f"{k} students, {wall:.1f} s: {ticks} ticks ({ticks / wall:.1f}/s), server {cpu:.2f} CPU-s "
          f"= {1000 * cpu / max(ticks, 1):.2f} ms a tick (reads of the live files included)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--window", type=float, default=12.0)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="initlab-ticks-"))
    env = {**os.environ, "INITLAB_CACHE_DIR": str(work / "cache"), "INITLAB_DATA_DIR": str(data_folder(work)),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "INITLAB_PRECOMPUTE_PRESETS": "probes"}
    port = serving.free_port()
    server = serving.start_app(port, work / "server.log", env, streamlit=[sys.executable, "-m", "streamlit"])
    try:
        serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 300, server)
        asyncio.run(measure(f"http://127.0.0.1:{port}", args.students, args.window, server.pid))
    finally:
        serving.stop(server)


if __name__ == "__main__":
    main()
