"""A lesson as data: its TOML file parsed and checked into `Lesson` / `Step` / `Answer` / `Measure`. No Streamlit.

A lesson file may come from a teacher's folder ($INITLAB_LESSONS_DIR), so it is read as untrusted input: a size
cap, no evaluation of anything, every field checked against a plain rule. Every problem is reported as one line
naming the file (by its name, never its server path), the step and the field, and what to do; a bad file never
stops the other lessons from loading. The format is documented in app/lessons/README.md.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from core.config import Config, ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent
LESSONS_ENV = "INITLAB_LESSONS_DIR"
MAX_FILE_BYTES = 64_000  # a lesson is a page of text: anything larger is a mistake or an attack
MAX_LESSON_FILES = 100  # files read from a teacher's folder
MAX_STEPS = 30
MAX_TEXT = 4_000  # characters of one text field
MAX_OPTIONS = 8

# What an answer can measure. Per-layer statistics of a run's snapshot (layer 1 = the first hidden layer, the
# output layer last), scalars of a snapshot, and the spread of the input-output Jacobian's singular values of the
# step's initialiser (measured by core.theory.jacobian_singular_values on a square network of the step's width).
PER_LAYER = {"z_std": "std of Z", "a_std": "std of A", "dz_std": "std of dZ", "a_mean": "mean of A",
             "dead_fraction": "fraction of dead units", "saturated_fraction": "fraction of saturated units"}
SCALARS = {"loss": "cost", "train_accuracy": "train accuracy", "test_accuracy": "test accuracy"}
JACOBIAN = {"jacobian_spread": "spread of the Jacobian's singular values (90th / 10th percentile)"}
MEASURES = {**PER_LAYER, **SCALARS, **JACOBIAN}
MOMENTS = {"start": "at step 0", "end": "after training"}
# The charts a step can point at (drawn by app/tabs/lessons.py from app/charts figures).
CHARTS = {"std": "standard deviation against depth at step 0", "histograms": "activations per layer at step 0",
          "fractions": "dead and saturated units per layer at step 0", "loss": "the loss curve",
          "accuracy": "the accuracy curves", "phase": "the order-and-chaos phase diagram",
          "jacobian": "the Jacobian's singular values"}
KINDS = ("choice", "number")

LESSON_FIELDS = {"title", "goal", "steps"}
STEP_FIELDS = {"question", "config", "chart", "explanation", "answer"}
ANSWER_FIELDS = {"kind", "measure", "at", "layer", "relative_to", "options", "ranges", "correct", "tolerance",
                 "published", "source"}


class LessonError(ValueError):
    """A lesson file is malformed: `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Measure:
    quantity: str
    at: str = "end"  # "start": the snapshot at step 0; "end": the last one
    layer: int | None = None  # 1-based, for a per-layer quantity
    relative_to: int | None = None  # divide by the same quantity at this layer

    def describe(self) -> str:
        """'std of Z at layer 30 ÷ layer 1, at step 0'."""
        text = MEASURES[self.quantity]
        if self.layer is not None:
            text += f" at layer {self.layer}"
        if self.relative_to is not None:
            text += f" ÷ layer {self.relative_to}"
        return text if self.quantity in JACOBIAN else f"{text}, {MOMENTS[self.at]}"

    def value(self, snapshots) -> float:
        """The measured value from a run's snapshots (not for the Jacobian, which needs no run)."""
        snapshot = snapshots[0] if self.at == "start" else snapshots[-1]
        if self.quantity in SCALARS:
            return float(getattr(snapshot, self.quantity))
        values = snapshot.stats[self.quantity]
        number = float(values[self.layer - 1])
        return number / float(values[self.relative_to - 1]) if self.relative_to is not None else number


@dataclass(frozen=True)
class Answer:
    kind: str  # "choice" or "number"
    measure: Measure
    options: tuple[str, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()  # one per option: the right one holds the measured value
    correct: int | None = None  # 1-based: an option that is right whatever the run measures
    tolerance: float | None = None
    published: str | None = None  # the published figure, as text to show beside the measured one
    source: str | None = None

    def right_option(self, measured: float) -> int | None:
        """The 0-based index of the right option for this measured value (None: the value fits no option)."""
        if self.correct is not None:
            return self.correct - 1
        return next((i for i, (low, high) in enumerate(self.ranges) if low <= measured < high), None)

    def is_right(self, guess, measured: float) -> bool:
        if self.kind == "number":
            return math.isfinite(measured) and abs(float(guess) - measured) <= self.tolerance
        return guess == self.right_option(measured)


@dataclass(frozen=True)
class Step:
    question: str
    config: Config
    chart: str
    explanation: str
    answer: Answer


@dataclass(frozen=True)
class Lesson:
    name: str  # the file's name, shown in messages
    title: str
    goal: str
    steps: tuple[Step, ...]


# --- parsing ------------------------------------------------------------------------------------------------------
class _Checker:
    """Collects the problems of one file; each names the file, the step and the field."""

    def __init__(self, name: str):
        self.name, self.problems = name, []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{self.name}: {where}: {message}")

    def text(self, table: dict, field: str, where: str, required: bool = True) -> str | None:
        value = table.get(field)
        if value is None:
            if required:
                self.add(f"{where}{field}", "missing; write it as a text in quotes")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(f"{where}{field}", "must be a non-empty text in quotes")
            return None
        if len(value) > MAX_TEXT:
            self.add(f"{where}{field}", f"is {len(value):,} characters long; at most {MAX_TEXT:,} are accepted")
            return None
        return value.strip()

    def unknown(self, table: dict, known: set[str], where: str) -> None:
        for field in sorted(set(table) - known):
            self.add(f"{where}{field}", f"unknown field; the known ones are {', '.join(sorted(known))}")


def parse_lesson(data: bytes, name: str) -> Lesson:
    """The lesson in `data` (a TOML file's bytes; `name` is its file name, used in messages). Raises LessonError."""
    if len(data) > MAX_FILE_BYTES:
        raise LessonError([f"{name}: the file is {len(data):,} bytes; a lesson file may have at most "
                           f"{MAX_FILE_BYTES:,}: split it into several lessons"])
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise LessonError([f"{name}: not a text file in UTF-8; save it as UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as e:
        raise LessonError([f"{name}: not valid TOML ({e}); check the quotes and brackets on that line"]) from None
    check = _Checker(name)
    check.unknown(table, LESSON_FIELDS, "")
    title, goal = check.text(table, "title", ""), check.text(table, "goal", "")
    raw_steps = table.get("steps")
    steps = []
    if not isinstance(raw_steps, list) or not raw_steps or not all(isinstance(s, dict) for s in raw_steps):
        check.add("steps", "missing; give at least one step as a [[steps]] table")
    elif len(raw_steps) > MAX_STEPS:
        check.add("steps", f"{len(raw_steps)} steps; a lesson has at most {MAX_STEPS}: split it")
    else:
        steps = [_step(check, raw, i + 1) for i, raw in enumerate(raw_steps)]
    if check.problems:
        raise LessonError(check.problems)
    return Lesson(name, title, goal, tuple(steps))


def _step(check: _Checker, raw: dict, number: int) -> Step | None:
    where = f"step {number}: "
    check.unknown(raw, STEP_FIELDS, where)
    question = check.text(raw, "question", where)
    explanation = check.text(raw, "explanation", where)
    config = _config(check, raw.get("config"), where)
    chart = raw.get("chart")
    if chart not in CHARTS:
        check.add(f"{where}chart", f"{str(chart)[:40]!r} is not a chart; choose one of: {', '.join(CHARTS)}")
    answer = raw.get("answer")
    if not isinstance(answer, dict):
        check.add(f"{where}answer", "missing; give it as a [steps.answer] table with its kind and measure")
        return None
    answer = _answer(check, answer, config, f"{where}answer.")
    if None in (question, explanation, config, answer) or chart not in CHARTS:
        return None
    return Step(question, config, chart, explanation, answer)


def _config(check: _Checker, raw, where: str) -> Config | None:
    """A config as the URL writes it: a table of query parameters, or the query string of a shared link."""
    if isinstance(raw, str):
        params = dict(parse_qsl(raw.partition("?")[2] or raw, keep_blank_values=True))
    elif isinstance(raw, dict):
        params = raw
    else:
        check.add(f"{where}config", "missing; give the settings as a table (layers = \"20,7,5\") or a link's query "
                                    "string (\"layers=20,7,5&init=he_normal\")")
        return None
    params = {key: value for key, value in params.items() if key != "preset"}  # a shared link names its preset
    bad = [key for key, value in params.items() if not isinstance(value, (str, int, float, bool))]
    if bad:
        check.add(f"{where}config", f"{bad[0]} must be a single value (text, number or true/false)")
        return None
    try:
        return Config.from_query({key: _query_text(value) for key, value in params.items()})
    except ConfigError as e:
        check.add(f"{where}config", str(e))
        return None


def _query_text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _answer(check: _Checker, raw: dict, config: Config | None, where: str) -> Answer | None:
    check.unknown(raw, ANSWER_FIELDS, where)
    before = len(check.problems)
    kind = raw.get("kind")
    if kind not in KINDS:
        check.add(f"{where}kind", f"{str(kind)[:40]!r} is not a kind of answer; choose one of: {', '.join(KINDS)}")
    measure = _measure(check, raw, config, where)
    published = raw.get("published")
    if published is not None and (isinstance(published, bool) or not isinstance(published, (str, int, float))):
        check.add(f"{where}published", "must be the published figure as a number or a text")
    source = check.text(raw, "source", where, required=False)
    options, ranges, correct, tolerance = (), (), None, None
    if kind == "choice":
        options, ranges, correct = _choices(check, raw, where)
    elif kind == "number":
        tolerance = raw.get("tolerance")
        if tolerance is None:
            check.add(f"{where}tolerance", "missing: a number answer is right within tolerance of the measured "
                                           "value; give e.g. tolerance = 0.05")
        elif isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
            check.add(f"{where}tolerance", "must be a number above 0")
    if len(check.problems) > before or measure is None:
        return None
    return Answer(kind, measure, options, ranges, correct, tolerance and float(tolerance),
                  None if published is None else str(published), source)


def _measure(check: _Checker, raw: dict, config: Config | None, where: str) -> Measure | None:
    quantity, at = raw.get("measure"), raw.get("at", "end")
    if quantity not in MEASURES:
        check.add(f"{where}measure", f"{str(quantity)[:40]!r} cannot be measured; choose one of: "
                                     f"{', '.join(MEASURES)}")
        return None
    if at not in MOMENTS:
        check.add(f"{where}at", f"{str(at)[:40]!r}: choose start (step 0) or end (after training)")
        return None
    depth = None if config is None else len(config.layers) + 1  # the output layer is the last
    layers = {}
    for field in ("layer", "relative_to"):
        value = raw.get(field)
        if value is None:
            continue
        if quantity not in PER_LAYER:
            check.add(f"{where}{field}", f"{quantity} is not per layer: leave {field} out")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1 or (depth and value > depth):
            check.add(f"{where}{field}", f"must be a layer number from 1 to {depth or 'the number of layers'} "
                                         "(the output layer is the last)")
        else:
            layers[field] = value
    if quantity in JACOBIAN and config is not None and (len(set(config.layers)) > 1
                                                         or len(set(config.hidden_activations)) > 1):
        check.add(f"{where}measure", "the Jacobian is measured on a square network: give the config layers of one "
                                     "width and one activation")
    if quantity in PER_LAYER and "layer" not in layers:
        if "layer" not in raw:
            check.add(f"{where}layer", f"missing: {quantity} is per layer; say which, e.g. layer = 4")
        return None
    return Measure(quantity, at, layers.get("layer"), layers.get("relative_to"))


def _choices(check: _Checker, raw: dict, where: str):
    options = raw.get("options")
    if (not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS
            or not all(isinstance(o, str) and o.strip() and len(o) <= MAX_TEXT for o in options)):
        check.add(f"{where}options", f"give 2 to {MAX_OPTIONS} options, each a text in quotes")
        return (), (), None
    ranges, correct = raw.get("ranges"), raw.get("correct")
    if (ranges is None) == (correct is None):
        check.add(f"{where}ranges", "give either ranges (one [low, high] per option: the right option is the one "
                                    "whose range holds the measured value) or correct (the right option's number)")
        return (), (), None
    if correct is not None:
        if isinstance(correct, bool) or not isinstance(correct, int) or not 1 <= correct <= len(options):
            check.add(f"{where}correct", f"must be an option's number, 1 to {len(options)}")
        return tuple(options), (), correct
    if not isinstance(ranges, list) or len(ranges) != len(options):
        check.add(f"{where}ranges", f"give one [low, high] per option ({len(options)} options)")
        return (), (), None
    parsed = []
    for i, r in enumerate(ranges):
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in r) and r[0] < r[1]):
            check.add(f"{where}ranges", f"range {i + 1} must be [low, high] with low < high (use inf for no bound)")
            return (), (), None
        parsed.append((float(r[0]), float(r[1])))
    ordered = sorted(parsed)
    if any(a[1] > b[0] for a, b in zip(ordered, ordered[1:])):
        check.add(f"{where}ranges", "the ranges overlap: a measured value must fit one option only")
    return tuple(options), tuple(parsed), None


# --- the lessons on this server -------------------------------------------------------------------------------------
def lesson_folders(environ=os.environ) -> list[Path]:
    """The shipped lessons, then the teacher's folder ($INITLAB_LESSONS_DIR) if set."""
    extra = environ.get(LESSONS_ENV, "").strip()
    return [SHIPPED_DIR] + ([Path(extra).expanduser()] if extra else [])


def read_lesson(path: Path) -> Lesson:
    """One lesson file; LessonError (naming the file, not its folder) if it is too large, unreadable or malformed."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise LessonError([f"{path.name}: cannot be read ({e.strerror or 'unreadable'})"]) from None
    return parse_lesson(data, path.name)


def load_lessons(folders: list[Path]) -> tuple[list[Lesson], list[str]]:
    """Every lesson of the folders, in file-name order, and the problems of the files that failed to load."""
    lessons, problems = [], []
    for folder in folders:
        try:
            paths = sorted(p for p in folder.iterdir() if p.suffix == ".toml" and p.is_file())
        except OSError:
            problems.append(f"the lessons folder given by {LESSONS_ENV} cannot be read; check the setting")
            continue
        if len(paths) > MAX_LESSON_FILES:
            problems.append(f"the lessons folder holds {len(paths)} lesson files; the first {MAX_LESSON_FILES} "
                            "are loaded")
        for path in paths[:MAX_LESSON_FILES]:
            try:
                lessons.append(read_lesson(path))
            except LessonError as e:
                problems.extend(e.problems)
    return lessons, problems
