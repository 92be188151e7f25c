"""Lesson files without a browser: the shipped lessons load, every kind of mistake in a teacher's file is reported
with its file, step and field (and the other lessons still load), answers are scored against the measured value,
lesson text cannot link away, and the checker's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.lessons.__main__ import main as check_main
from app.lessons.model import (MAX_FILE_BYTES, SHIPPED_DIR, LessonError, lesson_folders, load_lessons,
                               parse_lesson)
from app.lessons.summary import summary_html
from app.markup import lesson_markdown

REPO = Path(__file__).resolve().parents[1]
GOOD = """
title = "A lesson"
goal = "What it teaches."

[[steps]]
question = "What test accuracy?"
config = "dataset=circles&layers=10,5&init=zeros&iterations=0"
chart = "accuracy"
explanation = "Because."
[steps.answer]
kind = "choice"
measure = "test_accuracy"
options = ["low", "high"]
ranges = [[0, 0.6], [0.6, 1.01]]

[[steps]]
question = "Std of layer 2's Z?"
config = { dataset = "gaussian:500", layers = "100x3", activation = "tanh", init = "xavier_normal", iterations = 0 }
chart = "std"
explanation = "Because."
[steps.answer]
kind = "number"
measure = "z_std"
at = "start"
layer = 2
tolerance = 0.1
"""


def test_every_shipped_lesson_loads_and_there_are_six_at_least():
    lessons, problems = load_lessons([SHIPPED_DIR])
    assert problems == []
    assert len(lessons) >= 6
    titles = " ".join(lesson.title for lesson in lessons).lower()
    for topic in ("zeros", "seed", "too large", "xavier", "chaos", "orthogonal"):
        assert topic in titles


def broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


MISTAKES = {  # kind of mistake: (the file's text, words its one problem line must hold)
    "bad TOML": (broken('title = "A lesson"', 'title = "A lesson'), ["lesson.toml:", "not valid TOML", "line"]),
    "missing field": (broken('question = "What test accuracy?"\n', ""), ["step 1: question", "missing"]),
    "unknown field": (broken('chart = "accuracy"', 'chart = "accuracy"\nchrat = "std"'), ["step 1: chrat",
                                                                                          "unknown field"]),
    "unknown chart": (broken('chart = "accuracy"', 'chart = "pie"'), ["step 1: chart", "'pie'", "jacobian"]),
    "bad config key": (broken("&init=zeros", "&initt=zeros"), ["step 1: config", "'initt'"]),
    "bad config value": (broken("layers = \"100x3\"", "layers = \"100x0\""), ["step 2: config", "layers"]),
    "bad answer kind": (broken('kind = "number"', 'kind = "slider"'), ["step 2: answer.kind", "'slider'", "choice"]),
    "tolerance missing": (broken("tolerance = 0.1\n", ""), ["step 2: answer.tolerance", "missing"]),
    "unknown measure": (broken('measure = "z_std"', 'measure = "z_sd"'), ["step 2: answer.measure", "'z_sd'"]),
    "layer out of range": (broken("layer = 2", "layer = 9"), ["step 2: answer.layer", "1 to 4"]),
    "ranges per option": (broken("ranges = [[0, 0.6], [0.6, 1.01]]", "ranges = [[0, 0.6]]"),
                          ["step 1: answer.ranges", "2 options"]),
    "ranges overlap": (broken("[0.6, 1.01]]", "[0.5, 1.01]]"), ["step 1: answer.ranges", "overlap"]),
    "no right option": (broken("ranges = [[0, 0.6], [0.6, 1.01]]\n", ""), ["step 1: answer.ranges", "correct"]),
    "no steps": (GOOD[:GOOD.index("[[steps]]")], ["lesson.toml: steps", "missing"]),
    "too large": (GOOD + "#" * MAX_FILE_BYTES, ["lesson.toml:", "bytes", "split it"]),
    "not UTF-8": (GOOD.replace("Because.", "Caf\udce9", 1), ["lesson.toml:", "UTF-8"]),
}


@pytest.mark.parametrize("kind", list(MISTAKES))
def test_each_kind_of_mistake_is_one_line_naming_the_file_the_step_and_the_field(kind):
    text, words = MISTAKES[kind]
    with pytest.raises(LessonError) as caught:
        parse_lesson(text.encode("utf-8", "surrogateescape"), "lesson.toml")
    assert len(caught.value.problems) == 1, caught.value.problems
    line = caught.value.problems[0]
    assert line.startswith("lesson.toml: ")
    for word in words:
        assert word in line, line


def test_a_malformed_file_in_the_teachers_folder_leaves_the_others_loading(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text(broken('chart = "accuracy"', 'chart = "pie"'))
    (tmp_path / "notes.txt").write_text("not a lesson")
    lessons, problems = load_lessons(lesson_folders({"INITLAB_LESSONS_DIR": str(tmp_path)}))
    shipped, _ = load_lessons([SHIPPED_DIR])
    assert [lesson.name for lesson in lessons] == [lesson.name for lesson in shipped] + ["good.toml"]
    assert len(problems) == 1 and problems[0].startswith("bad.toml: step 1: chart")
    assert str(tmp_path) not in problems[0]


def test_a_step_config_may_be_a_shared_links_query_string():
    link = GOOD.replace('"dataset=circles&layers=10,5&init=zeros&iterations=0"',
                        '"http://host:8501/?dataset=circles&layers=10,5&init=zeros&iterations=0&preset=custom"')
    first_config = lambda text: parse_lesson(text.encode(), "l.toml").steps[0].config  # noqa: E731
    assert first_config(link) == first_config(GOOD)


def test_the_right_option_is_decided_by_the_measured_value_and_a_number_by_its_tolerance():
    choice, number = (step.answer for step in parse_lesson(GOOD.encode(), "l.toml").steps)
    assert choice.right_option(0.5) == 0 and choice.right_option(0.96) == 1
    assert choice.is_right(1, 0.96) and not choice.is_right(0, 0.96)
    assert choice.right_option(1.5) is None  # the lesson's ranges miss the value: no option is right
    assert number.is_right(1.05, 1.0) and number.is_right(0.91, 1.0) and not number.is_right(1.2, 1.0)
    assert not number.is_right(1.0, float("nan"))
    fixed = parse_lesson(broken("ranges = [[0, 0.6], [0.6, 1.01]]", "correct = 2").encode(), "l.toml").steps[0]
    assert fixed.answer.right_option(0.1) == 1  # a fixed answer whatever the run measures


def test_lesson_text_keeps_its_emphasis_and_math_but_cannot_link_or_load_anything():
    text = lesson_markdown("**Look** at $\\sigma_w^2$: [this](https://evil.example/x) ![i](http://e.x/a.png) "
                           "<img src=x onerror=alert(1)> www.evil.example [a [b]](http://e.x) <https://e.x>")
    assert "**Look**" in text and "$\\sigma_w^2$" in text
    assert "](" not in text.replace("]\\(", "") and "<img" not in text.replace("\\<img", "")
    assert "www." not in text and "https://" not in text and "http://" not in text


def test_the_teachers_summary_holds_every_question_and_answer_and_escapes_the_text():
    lesson = parse_lesson(GOOD.replace("What test accuracy?", "<b>What</b> test accuracy?").encode(), "l.toml")
    page = summary_html(lesson)
    assert "&lt;b&gt;What&lt;/b&gt; test accuracy?" in page and "<b>What" not in page
    assert "Std of layer 2&#x27;s Z?" in page and "within ±0.1" in page
    assert "@media print" in page and "run the step once" in page
    measured = summary_html(lesson, {0: 0.96, 1: 0.5})
    assert "Answer: Option 2: high. Measured here: 0.96." in measured and "Measured here: 0.5." in measured


def test_the_checker_exits_0_on_the_shipped_lessons_and_2_with_one_line_per_problem(tmp_path, capsys):
    assert check_main(["check", *map(str, sorted(SHIPPED_DIR.glob("*.toml")))]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(broken('kind = "number"', 'kind = "slider"').replace('chart = "accuracy"', 'chart = "pie"'))
    capsys.readouterr()
    assert check_main(["check", str(bad), str(tmp_path / "missing.toml")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["bad.toml: step 1: chart: 'pie' is not a chart; choose one of: std, histograms, fractions, loss, "
                     "accuracy, phase, jacobian",
                     "bad.toml: step 2: answer.kind: 'slider' is not a kind of answer; choose one of: choice, number",
                     "missing.toml: cannot be read (No such file or directory)"]
    done = subprocess.run([sys.executable, "-m", "app.lessons", "check", str(bad)], cwd=REPO, capture_output=True)
    assert done.returncode == 2 and len(done.stderr.decode().splitlines()) == 2
