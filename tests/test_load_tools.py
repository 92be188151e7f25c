"""The load test's own tools, so that the figures in deploy/README.md can be re-measured: the protocol client
drives a real server through the seed question, and the script reports every session completed."""

import pytest

from tests.load import load_test

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
