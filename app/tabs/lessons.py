"""The Lessons tab: a guided path through initialisation. Each step asks a question, takes the student's guess, runs
the step's config (through the shared run store and its cache: a class doing the same lesson trains each config
once), then scores the guess against the measured value and shows it beside the theory's prediction, the published
figure, the explanation and the chart to look at. The lessons are data (app/lessons/); the place is in the URL
(?lesson=2&step=3) so that a teacher can send a link to a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from app.charts import figures
from app.charts import theory as theory_figures
from app.charts.training import progress_figures
from app.lessons.evaluate import jacobian_spectrum, measured, order_and_chaos, predicted, show
from app.lessons.model import CHARTS, Lesson, Step, lesson_folders, load_lessons
from app.lessons.summary import summary_html
from app.markup import escape_markdown, lesson_markdown
from app.serving.server import run_store
from app.serving.store import DIVERGED, STOPPED
from app.state import LESSON_PARAM, STEP_PARAM, compact_layers
from app.ui import MAX_POINTS, Slot, chart, data_download, live_fragment, state
from core.config import Config, ConfigError
from core.criticality import critical_line, phase_grid
from core.data import DatasetError, default_data_dir, load_dataset
from core.limits import Limits
from core.measures import chance_cost
from core.meanfield import TheoryError
from core.theory import predict_for

POLL_SECONDS = 0.5  # how often a step waiting for its run looks again


@dataclass(frozen=True)
class Result:
    """A revealed step: the guess (an option's index, or a number), what the run measured, and the run's key."""

    guess: object
    measured: float
    run_key: str


class LessonState:
    lesson: Slot[int] = Slot(0, key="lesson_index")
    step: Slot[int] = Slot(0, key="lesson_step")
    url: Slot[tuple | None] = Slot(None, key="lesson_url")  # the (lesson, step) last written to the URL
    pending: Slot[tuple | None] = Slot(None, key="lesson_pending")  # (step id, run key) of the run computing
    results: Slot[dict] = Slot({}, key="lesson_results")  # step id -> Result
    error: Slot[str | None] = Slot(None, key="lesson_error")


lesson_state = LessonState()


def step_id(lesson: Lesson, index: int) -> str:
    return f"{lesson.name}#{index + 1}"


def watcher() -> str:
    return f"{state.session_id}:lesson"


def step_dataset(config: Config):
    return load_dataset(config.dataset, default_data_dir(), standardize=config.standardize)


# --- the place: session and URL -------------------------------------------------------------------------------------
def follow_url(lessons: list[Lesson]) -> None:
    """Go where the URL points (a teacher's link, ?lesson=2&step=3, 1-based) when it names a place this session has
    not written itself; then write the session's place back."""
    params = st.query_params
    try:
        wanted = (int(params.get(LESSON_PARAM, "")) - 1, int(params.get(STEP_PARAM, "1")) - 1)
    except ValueError:
        wanted = None
    if wanted is not None and wanted != lesson_state.url:
        if 0 <= wanted[0] < len(lessons) and 0 <= wanted[1] < len(lessons[wanted[0]].steps):
            lesson_state.lesson, lesson_state.step = wanted
        else:
            st.warning("The link points to a lesson step that does not exist here; showing the first lesson.")
            lesson_state.lesson, lesson_state.step = 0, 0
    lesson_state.lesson = min(lesson_state.lesson, len(lessons) - 1)
    lesson_state.step = min(lesson_state.step, len(lessons[lesson_state.lesson].steps) - 1)
    place = (lesson_state.lesson, lesson_state.step)
    params[LESSON_PARAM], params[STEP_PARAM] = str(place[0] + 1), str(place[1] + 1)
    lesson_state.url = place


def forget_url() -> None:
    """Another tab is open: its links must not open the Lessons tab."""
    for name in (LESSON_PARAM, STEP_PARAM):
        if name in st.query_params:
            del st.query_params[name]
    lesson_state.url = None


def go(lesson: int, step: int) -> None:
    lesson_state.lesson, lesson_state.step, lesson_state.error = lesson, step, None


def choose_lesson() -> None:
    go(st.session_state["lesson_choice"], 0)


# --- running a step -------------------------------------------------------------------------------------------------
def start_step(step: Step, sid: str, limits: Limits) -> None:
    try:
        dataset = step_dataset(step.config)
        run_store().reserve(state.session_id, "training")
        run = run_store().start(step.config, dataset, watcher(), limits, instant=True, session=state.session_id)
    except (ConfigError, DatasetError) as e:
        lesson_state.error = f"This step cannot run here: {e}"
        return
    lesson_state.error, lesson_state.pending = None, (sid, run.key)


def collect(step: Step, sid: str, guess) -> bool:
    """If the pending run of this step has ended, record its measured answer; True once it has (or was lost)."""
    run = run_store().get(lesson_state.pending[1], watcher())
    if run is None:
        lesson_state.pending, lesson_state.error = None, "The run was dropped from the server's cache; press Run again."
        return True
    if not run.done:
        return False
    if run.status == STOPPED or not run.snapshots:
        lesson_state.error = f"The run stopped before its end: {run.message}. Press Run again."
    else:
        results = dict(lesson_state.results)
        results[sid] = Result(guess, measured(step.answer.measure, step.config, run.snapshots), run.key)
        lesson_state.results = results
    lesson_state.pending = None
    return True


def settle(lesson: Lesson, index: int) -> None:
    """Record the answer of the step's run if it has ended since the page last looked."""
    sid = step_id(lesson, index)
    if lesson_state.pending is not None and lesson_state.pending[0] == sid:
        collect(lesson.steps[index], sid, st.session_state.get(f"lesson_guess_{sid}"))


def waiting(step: Step, sid: str, guess) -> None:
    """The step's run, computing: its progress, until it has ended (then the page reruns to reveal the answer)."""
    if collect(step, sid, guess):
        st.rerun()
    run = run_store().get(lesson_state.pending[1], watcher())
    last = run.snapshots[-1].step if run.snapshots else 0
    st.info(f"Running the step's network… step {last:,} of {step.config.iterations:,}" if not run.queued else
            "Waiting for a free worker: the server's workers are busy with other students' runs.")


# --- the page -------------------------------------------------------------------------------------------------------
def render(limits: Limits) -> None:
    lessons, problems = load_lessons(lesson_folders())
    if problems:
        with st.expander(f"{len(problems)} problem(s) in the lesson files: those lessons are left out"):
            st.markdown("\n".join(f"- {escape_markdown(p)}" for p in problems))
    if not lessons:
        st.info("No lesson could be loaded. Check the lesson files with `python -m app.lessons check FILE`.")
        return
    follow_url(lessons)
    lesson = lessons[lesson_state.lesson]
    settle(lesson, lesson_state.step)  # first: the progress in the lesson list counts a run that has just ended
    done = lesson_state.results
    names = [f"{i + 1}. {l.title} ({sum(step_id(l, k) in done for k in range(len(l.steps)))}/{len(l.steps)})"
             for i, l in enumerate(lessons)]
    st.session_state["lesson_choice"] = lesson_state.lesson
    pick, summary = st.columns([4, 1], vertical_alignment="bottom")
    pick.selectbox("Lesson (steps done)", range(len(lessons)), format_func=names.__getitem__, key="lesson_choice",
                   on_change=choose_lesson)
    found = {k: done[step_id(lesson, k)].measured for k in range(len(lesson.steps)) if step_id(lesson, k) in done}
    summary.download_button("Teacher's summary", data=summary_html(lesson, found), mime="text/html",
                            file_name=f"initlab-lesson-{lesson.name.removesuffix('.toml')}.html", on_click="ignore",
                            help="The questions and answers of this lesson on one page (with the values measured by "
                                 "the steps you have run): open it and print it.")
    if lesson_state.step == 0:
        st.markdown(lesson_markdown(lesson.goal))
    draw_step(lesson, lesson_state.step, limits)


def draw_step(lesson: Lesson, index: int, limits: Limits) -> None:
    step, sid = lesson.steps[index], step_id(lesson, index)
    pending = lesson_state.pending is not None and lesson_state.pending[0] == sid
    result = lesson_state.results.get(sid)
    back, where, forward = st.columns([1, 6, 1], vertical_alignment="center")
    back.button("← Previous", key="lesson_back", disabled=index == 0, on_click=go,
                args=(lesson_state.lesson, index - 1), width="stretch")
    where.markdown(f"**{escape_markdown(lesson.title)}** · step {index + 1} of {len(lesson.steps)}")
    forward.button("Next →", key="lesson_next", disabled=index == len(lesson.steps) - 1 or result is None,
                   on_click=go, args=(lesson_state.lesson, index + 1), width="stretch",
                   help=None if result else "Run this step first.")
    with st.container(border=True, key="lesson_question"):
        st.markdown(f"#### {lesson_markdown(step.question)}")
        c = step.config
        training = f"{c.iterations:,} training steps" if c.iterations else "one pass at initialisation, no training"
        st.caption(f"Runs: layers {escape_markdown(compact_layers(c.layers))} · {escape_markdown(c.activation)} · "
                   f"{escape_markdown(c.init)} · {training} on {escape_markdown(c.dataset)}")
        guess = ask(step, sid, result)
        st.button("Run", key="lesson_run", type="primary", disabled=guess is None or pending or result is not None,
                  on_click=start_step, args=(step, sid, limits),
                  help="Make your guess first: the answer appears after the run." if guess is None else None)
        if guess is None and result is None:
            st.caption("Make your guess first: the run and the answer come after it.")
    if lesson_state.error:
        st.error(escape_markdown(lesson_state.error))
    if pending:
        live_fragment(waiting, POLL_SECONDS, True)(step, sid, guess)
    elif result is not None:
        reveal(step, result, limits)


def ask(step: Step, sid: str, result: Result | None):
    """The guess widget (locked once the step is revealed); returns the guess, None until one is given."""
    key = f"lesson_guess_{sid}"
    if result is not None:
        st.session_state[key] = result.guess
    unset = {} if key in st.session_state else {"index" if step.answer.kind == "choice" else "value": None}
    if step.answer.kind == "choice":
        return st.radio("Your guess", range(len(step.answer.options)), key=key, disabled=result is not None,
                        format_func=lambda i: step.answer.options[i], **unset)
    return st.number_input(f"Your guess: the {step.answer.measure.describe()}", format="%g", key=key,
                           disabled=result is not None, **unset)


def reveal(step: Step, result: Result, limits: Limits) -> None:
    a = step.answer
    dataset = step_dataset(step.config)
    right = a.is_right(result.guess, result.measured)
    with st.container(border=True, key="lesson_answer"):
        badge = ":green-badge[:material/check_circle: right]" if right else \
            ":orange-badge[:material/info: not this time]"
        guess_text = a.options[result.guess] if a.kind == "choice" else show(result.guess)
        st.markdown(f"{badge} Your guess: **{escape_markdown(guess_text)}**")
        measured_col, theory_col, published_col = st.columns(3)
        measured_col.metric("Measured", show(result.measured))
        if a.kind == "choice":
            option = a.right_option(result.measured)
            verdict = "The right answer: " + (escape_markdown(a.options[option]) if option is not None
                                              else "none of the options (the lesson's ranges miss it)")
        else:
            verdict = f"Right within ±{show(a.tolerance)} of it."
        measured_col.caption(f"The {escape_markdown(a.measure.describe())}. {verdict}")
        prediction = cached_prediction(step.config, dataset, a.measure)
        theory_col.metric("Theory predicts", show(prediction))
        chaos = cached_order_and_chaos(step.config, dataset)
        theory_col.caption(escape_markdown(chaos) if chaos else "The mean field predicts the spread of Z, A and dZ per "
                           "layer at step 0, not this measure." if prediction is None else
                           "Mean field (core/theory.py), computed before any run.")
        if a.published:
            published_col.markdown(f"**Published:** {escape_markdown(a.published)}")
        if a.source:
            published_col.caption(escape_markdown(a.source))
        st.markdown(lesson_markdown(step.explanation))
    run = run_store().get(result.run_key)
    if run is not None and run.status == DIVERGED:
        st.warning(f"The run {escape_markdown(run.message)}")
    st.markdown(f"**Look at:** {CHARTS[step.chart]}")
    draw_chart(step, run, dataset)


# --- the charts -----------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _prediction(config_json: str, measure_key: str, fingerprint: str, _dataset, _measure):
    return predicted(_measure, Config.from_json(config_json), _dataset)


def cached_prediction(config: Config, dataset, measure):
    return _prediction(config.to_json(), repr(measure), dataset.fingerprint(), dataset, measure)


@st.cache_data(max_entries=64, show_spinner=False)
def _order_and_chaos(config_json: str, fingerprint: str, _dataset):
    return order_and_chaos(Config.from_json(config_json), _dataset)


def cached_order_and_chaos(config: Config, dataset):
    return _order_and_chaos(config.to_json(), dataset.fingerprint(), dataset)


@st.cache_data(max_entries=16, show_spinner="Multiplying Jacobians…")
def _spectrum(config_json: str):
    return jacobian_spectrum(Config.from_json(config_json))


@st.cache_data(max_entries=16, show_spinner="Computing the phase diagram…")
def _phase(activation: str, sigma_w2: tuple[float, ...], sigma_b2: tuple[float, ...]):
    return phase_grid(activation, np.array(sigma_w2), np.array(sigma_b2)), critical_line(activation)


def draw_chart(step: Step, run, dataset) -> None:
    config, name = step.config, step.chart
    if name == "jacobian":
        fig = theory_figures.jacobian_histogram({config.init: _spectrum(config.to_json())})
    elif name == "phase":
        fig = phase_figure(config, dataset)
    elif run is None:
        st.warning("The run was dropped from the server's cache; press Run on the step again to see its chart.")
        return
    elif name in ("loss", "accuracy"):
        fig = progress_figures(run.snapshots, MAX_POINTS, chance_cost(run.network), False)[name]
    else:
        s, edges = run.snapshots[0].stats, run.snapshots[0].edges
        if name == "histograms":
            fig = figures.layer_histograms(edges["a"], s["a_hist"], "Activations A per layer at step 0", "A", False)
        elif name == "fractions":
            fig = figures.layer_fractions(s["dead_fraction"], s["saturated_fraction"])
        else:
            fig = figures.depth_profile({"std Z": s["z_std"], "std A": s["a_std"], "std dZ": s["dz_std"]},
                                        "Standard deviation against depth at step 0", "std", log_y=True,
                                        predicted=std_prediction(config, dataset))
    if fig is not None:
        csv = name != "phase"
        chart(fig, f"lesson_chart_{name}", f"The step's run: {CHARTS[name]}.", csv=csv)
        if csv:
            data_download(st, f"lesson-{name}")


@st.cache_data(max_entries=32, show_spinner=False)
def _mean_field(config_json: str, fingerprint: str, _dataset):
    return predict_for(Config.from_json(config_json), _dataset)


def mean_field(config: Config, dataset):
    """core.theory's prediction for the step (TheoryError where the theory does not apply), once per config."""
    return _mean_field(config.to_json(), dataset.fingerprint(), dataset)


def std_prediction(config: Config, dataset) -> dict | None:
    try:
        p = mean_field(config, dataset)
    except TheoryError:
        return None
    return {"std Z": p.z_std, "std A": p.a_std, "std dZ": p.dz_std}


def layer_span(numbers: list[int]) -> str:
    """[2, 3, ..., 30] -> "L2–L30"; layers that do not follow one another are listed."""
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"L{numbers[0]}–L{numbers[-1]}"
    return ", ".join(f"L{n}" for n in numbers)


def phase_figure(config: Config, dataset):
    """The phase diagram of the config's first activation, one marker per hidden layer (as in the Theory tab)."""
    try:
        p = mean_field(config, dataset)
    except TheoryError as e:
        st.info(f"No phase diagram for this network: {escape_markdown(e)}.")
        return None
    activation = p.activations[0]
    sigma_b2 = p.sigma_b2 + p.bias_mean**2
    places: dict[tuple[float, float], list[int]] = {}  # layers at one point share one marker: "L2–L30"
    for i, name in enumerate(p.activations):
        if name == activation:
            places.setdefault((float(p.sigma_w2[i]), float(sigma_b2[i])), []).append(i + 1)
    markers = [(layer_span(n), w, b) for (w, b), n in places.items()]
    sw2, sb2 = theory_figures.phase_axes([w for _, w, _ in markers], [b for _, _, b in markers])
    chi, critical = _phase(activation, tuple(sw2), tuple(sb2))
    return theory_figures.phase_diagram(activation, sw2, sb2, chi, critical, markers)
