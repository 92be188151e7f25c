"""The Lessons tab driven headlessly: every shipped lesson end to end (guess, run, reveal, the published number on
screen), the guess required before Run, the place in the URL, and a teacher's broken lesson reported by name."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.lessons.model import SHIPPED_DIR, load_lessons
from app.serving.server import close_run_store
from tests import serving
from tests.conftest import SHARED_DATA, shown_text
from tests.test_app import chart_specs

APP = str(Path(__file__).resolve().parents[1] / "app" / "page.py")
LESSONS = {lesson.name: lesson for lesson in load_lessons([SHIPPED_DIR])[0]}
# Per lesson, per step: the guess a student who knows the literature gives, and the published figure the measured
# value must match (value, relative tolerance), or None where the lesson has no number to reproduce. The figures
# come from the sources (the course's printouts, CS231n, He et al.), not from Init Lab.
PUBLISHED = {
    "01-zeros.toml": [(0, (0.50, 0.01)), (0.6931, (math.log(2), 1e-4)), (0, (0.0, 0.0))],
    "02-seed-question.toml": [(0, (0.34, 0.01)), (0.5, (0.5, 0.01)), (0.8, (0.80, 0.01))],
    "03-too-large.toml": [(0.98, (0.98, 0.01)), (2, None), (2, (1773.59, 1e-3))],
    "04-xavier-vs-he.toml": [(2, (2 ** -14.5, 0.5)), (1.0, (1.0, 0.35))],  # one draw of 100-unit layers wanders
    "05-edge-of-chaos.toml": [(0, None), (2, None), (0.12, None)],
    "06-dynamical-isometry.toml": [(2, None), (0, None), (1.0, (1.0, 0.05)), (2, None)],
    "07-normalisation-and-residuals.toml": [(0, (1.0, 0.05)), (1, None), (2, None), (1, None)],
}


@pytest.fixture(autouse=True)
def page_env(monkeypatch, tmp_path, dask_client):
    """Shipped data only (the sidebar's seed question on shapes64: a cheap page), runs on the in-process test
    cluster."""
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INITLAB_DASK_SCHEDULER", dask_client.scheduler.address)
    monkeypatch.setenv("INITLAB_PRECOMPUTE_PRESETS", "0")
    monkeypatch.delenv("INITLAB_LESSONS_DIR", raising=False)


def open_lesson(number: int, step: int = 1) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"lesson": str(number), "step": str(step)})
    return at.run()


def results(at: AppTest) -> dict:
    return at.session_state["lesson_results"] if "lesson_results" in at.session_state else {}


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def run_step(at: AppTest, step_id: str, guess, seconds: float = 300) -> None:
    """Give the guess, press Run, and rerun the page until the step is revealed (timed fragments do not fire here)."""
    widget = at.radio if isinstance(guess, int) else at.number_input
    widget(key=f"lesson_guess_{step_id}").set_value(guess).run()
    at.button(key="lesson_run").click().run()
    deadline = time.monotonic() + seconds
    while step_id not in results(at) and time.monotonic() < deadline:
        time.sleep(0.1)
        at.run()


def screen(at: AppTest) -> str:
    return "\n".join(shown_text(m.value) for m in (*at.markdown, *at.caption))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_every_lesson_runs_end_to_end_and_reproduces_its_published_numbers(name, monkeypatch, request, tmp_path):
    if name == "02-seed-question.toml":
        if not (SHARED_DATA / "train_catvnoncat.h5").exists():
            pytest.skip(f"the course's cat files are not in {SHARED_DATA}")
        monkeypatch.setenv("INITLAB_DATA_DIR", str(SHARED_DATA))
        # the two cat runs come from the session's run cache, as a class's would from the server's (test_course
        # checks the training itself); the run store is built again to read it, and once more after the test
        monkeypatch.setenv("INITLAB_CACHE_DIR",
                           str(serving.copy_runs(request.getfixturevalue("seed_question_runs"), tmp_path / "cache")))
        close_run_store()
        request.addfinalizer(close_run_store)
    lesson = LESSONS[name]
    assert len(PUBLISHED[name]) == len(lesson.steps)
    at = open_lesson(list(LESSONS).index(name) + 1)
    assert at.session_state["view"] == "Lessons"
    for index, (step, (guess, published)) in enumerate(zip(lesson.steps, PUBLISHED[name])):
        step_id = f"{name}#{index + 1}"
        assert f"step {index + 1} of {len(lesson.steps)}" in screen(at)
        assert at.button(key="lesson_run").disabled, "no Run before a guess"
        run_step(at, step_id, guess)
        no_errors(at)
        measured = next(m for m in at.metric if m.label == "Measured")
        value = float(measured.value.replace("∞", "inf"))
        if published is not None:
            assert math.isclose(value, published[0], rel_tol=published[1], abs_tol=1e-12), (step_id, value)
        text = screen(at)
        assert "right" in next(m.value for m in at.markdown if "Your guess" in m.value), (step_id, value)
        if step.answer.published:
            assert step.answer.published in text
        assert shown_text(step.explanation.split("\n")[1][:30]) in text  # the explanation appears after the run
        assert chart_specs(at), f"{step_id}: the chart to look at"
        assert at.query_params["step"] == str(index + 1)
        if index + 1 < len(lesson.steps):
            at.button(key="lesson_next").click().run()


def test_a_link_opens_its_step_keeps_the_sidebars_settings_and_reports_a_broken_teachers_lesson(
        monkeypatch, tmp_path):
    (tmp_path / "zz-broken.toml").write_text('title = "Broken"\ngoal = "x"\n[[steps]]\nquestion = "q"\n')
    monkeypatch.setenv("INITLAB_LESSONS_DIR", str(tmp_path))
    at = open_lesson(5, 3)
    no_errors(at)
    assert "The edge of chaos" in screen(at) and "step 3 of 3" in screen(at)
    problems = next(e for e in at.expander if "problem(s) in the lesson files" in e.label)
    assert "zz-broken.toml: step 1: config: missing" in shown_text(problems.markdown[0].value)
    assert str(tmp_path) not in shown_text(problems.markdown[0].value)
    assert at.query_params["lesson"] == "5" and at.query_params["preset"] == "seed question"
    assert at.button(key="lesson_next").disabled, "the last step has no next one"
    at.button(key="lesson_back").click().run()
    assert "step 2 of 3" in screen(at) and at.query_params["step"] == "2"
    at.session_state["view"] = "Training"
    at.run()
    assert "lesson" not in at.query_params, "a link copied from another tab does not open the Lessons tab"
