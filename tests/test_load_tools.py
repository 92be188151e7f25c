"""The load test's own tools, so that the figures in deploy/README.md can be re-measured: the protocol client
drives a real server through the seed question, and the script reports every session completed; and, with the same
client, how a large class's Compare pages are paced."""

import asyncio
import os
import sys
from urllib.parse import urlencode

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from app.presets import presets
from app.state import TAB_PARAM, to_query
from tests import serving
from tests.load import load_test
from tests.load.protocol import Client

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (load_test.SHARED_DATA / "train_catvnoncat.h5").is_file(),
                    reason="the course's cat files are not in ../shared/data")
def test_protocol_students_reach_the_course_result(capsys, seed_question_runs):
    """Three students without browsers: each picks the seed question, opens Compare, trains, and must receive the
    table with both runs finished and the course's 0.34 and 0.80 in it; the run cache is warm, so none trains."""
    assert load_test.main(["--protocol", "--sessions", "3", "--warm-only", "--timeout", "120", "--cold-probes",
                           "--cache-from", str(seed_question_runs)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:2] == ["3", "warm"]).split()
    k, cache, done, failed = row[:4]
    assert (k, cache, done, failed) == ("3", "warm", "3", "0")
    assert row[14] == "0"  # runs trained by the server: the warm cache answered every one
    assert row[-1] == "ms" and float(row[-2]) > 0  # the server's CPU per student, from the click


def test_a_class_over_the_full_pace_sees_compare_redrawn_slower_and_the_end_within_a_second(tmp_path):
    """Two students on a server that keeps one page at full pace: their Compare pages tick every 2 s (pace.py),
    and in the runs' last seconds once a second as well (compare.py: compare_live), until both runs show finished.
    """
    data_dir = load_test.data_folder(tmp_path)  # the course's files, else the seed question's stand-in
    # long enough for a few paced ticks before the runs' last seconds, on a loaded machine too
    seed = presets(data_dir)["seed question"].config.replace(iterations=2000)
    env = {**os.environ, "INITLAB_DATA_DIR": str(data_dir), "INITLAB_CACHE_DIR": str(tmp_path / "cache"),
           "INITLAB_PRECOMPUTE_PRESETS": "0", "INITLAB_DASK_WORKERS": "2", "INITLAB_PAGES_AT_FULL_PACE": "1",
           "TMPDIR": str(tmp_path)}
    port = serving.free_port()
    server = serving.start_app(port, tmp_path / "server.log", env, streamlit=[sys.executable, "-m", "streamlit"])
    query = urlencode({**to_query(seed, "seed question"), TAB_PARAM: "Compare"})

    async def student() -> list[float]:
        async with Client(f"http://127.0.0.1:{port}", query) as page:
            await page.run(timeout=120)
            await page.run(page.press("Train all"), timeout=120)
            await page.wait_for(lambda payload: payload.count(b"finished") >= 2, 240)
            timers = [ForwardMsg.FromString(raw) for raw in page.payloads]
            return [m.auto_rerun.interval for m in timers if m.WhichOneof("type") == "auto_rerun"]

    async def class_of_two():
        return await asyncio.gather(student(), student())

    try:
        serving.wait_for(f"http://127.0.0.1:{port}/ready", b"ready", 180, server)
        for intervals in asyncio.run(class_of_two()):
            assert 2.0 in intervals and 1.0 in intervals and intervals.index(2.0) < intervals.index(1.0), intervals
    finally:
        serving.stop(server)
