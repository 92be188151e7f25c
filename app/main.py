"""Init Lab's dashboard: `streamlit run app/main.py`.

This script only lays out widgets and figures. The numbers come from the engine (core/), the shared runs from
app/runs.py, the figures from app/figures.py, the sidebar's state from app/state.py.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import figures  # noqa: E402
from app.live_chart import live_chart  # noqa: E402
from app.markup import escape_markdown  # noqa: E402
from app.presets import VARIANTS, presets  # noqa: E402
from app.runs import (DIVERGED, FINISHED, HEATMAP_QUANTITIES, RUNNING, layer_figures, preflight,  # noqa: E402
                      progress_figures, run_store, steps, thin)
from app.state import (EDITABLE, compact_layers, config_from_widgets, from_query, to_query,  # noqa: E402
                       versioned, widget_key, widget_values)
from app.theory_tab import render_theory_tab  # noqa: E402
from core.activations import ACTIVATIONS  # noqa: E402
from core.config import DTYPES, FAN_MODES, MAX_DEPTH, OPTIMIZERS, RNG_MODES, Config, ConfigError  # noqa: E402
from core.data import DatasetError, dataset_names, default_data_dir, load_dataset, load_uploaded_h5  # noqa: E402
from core.data import standardized  # noqa: E402
from core.initializers import BIAS_INITIALIZERS, INITIALIZERS  # noqa: E402
from core.limits import Limits  # noqa: E402
from core.network import Network  # noqa: E402
from core.record import RunFileError, read_uploaded_run  # noqa: E402
from core.stats import overflow_note  # noqa: E402
from core.theory import Prediction, TheoryError, predict_for  # noqa: E402
from core.train import Training, initial_cost_note, probe  # noqa: E402

PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
LIVE_PLOT_CONFIG = {"staticPlot": True}
LIVE_SECONDS = 0.2  # the Training tab's progress and curves redraw 5 times a second while its run computes
LAYER_SECONDS = 1.0  # and its per-layer figures once a second
COMPARE_SECONDS = 1.0  # the Compare tab's loss curves and table: a class watches several runs at once there
MAX_POINTS = 240  # snapshots drawn per curve: enough for any chart width, cheap to send 5 times a second
OPTIMIZER_HELP = ("gd: W −= lr·dW. momentum: the course's average v = β₁v + (1 − β₁)dW, W −= lr·v, which is "
                  "PyTorch's SGD(momentum=β₁) with the learning rate times 1 − β₁. adam: Kingma & Ba, "
                  "W −= lr·v̂ / (√ŝ + ε) with bias-corrected averages v̂ (β₁) and ŝ (β₂).")
SCALED_INITS = {"normal", "uniform", "truncated_normal", "constant"}  # the initialisers that use `scale`
UPLOAD_PREFIX = "upload:"
TAB_KEY = "view"
THEORY_KEY = "show_theory"
INSTANT_KEY = "replay_instantly"  # the sidebar's "Replay cached runs instantly"
NETWORK_MODES = ("sizes", "depth × width")
GENERATION_KEY = "widget_generation"  # of the sidebar's config widgets: see app.state.versioned
ss = st.session_state


# --- shared, cached computation ---------------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner="Probing the network at initialisation…")
def cached_probe(config_json: str, fingerprint: str, _dataset, _limits: Limits):
    """One forward/backward pass at init, shared by every session (keyed by config JSON and dataset fingerprint)."""
    network, _, snapshot = probe(Config.from_json(config_json), _dataset, _limits)
    return network, snapshot


def probe_of(config: Config, dataset, limits: Limits):
    return cached_probe(config.to_json(), dataset.fingerprint(), dataset, limits)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_cost_note(config_json: str, fingerprint: str, _dataset, _limits: Limits) -> str | None:
    return initial_cost_note(Training(Config.from_json(config_json), _dataset, _limits))


def cost_note_of(config: Config, dataset, limits: Limits) -> str | None:
    """Why the course would print cost inf at step 0 where Init Lab shows a number (None when it would not)."""
    return cached_cost_note(config.to_json(), dataset.fingerprint(), dataset, limits)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_prediction(config_json: str, fingerprint: str, _dataset) -> Prediction:
    return predict_for(Config.from_json(config_json), _dataset)


def prediction_of(config: Config, dataset) -> Prediction | None:
    """The mean-field prediction, if the tab's theory toggle (drawn by the caller) is on and theory applies."""
    if not ss.get(kept(THEORY_KEY)) or dataset is None:
        return None
    try:
        return cached_prediction(config.to_json(), dataset.fingerprint(), dataset)
    except TheoryError as e:
        st.caption(f"No prediction: {escape_markdown(e)}.")
        return None


def theory_toggle(container) -> None:
    container.toggle("Mean-field prediction (dashed)", key=THEORY_KEY, **keep(THEORY_KEY, True),
                     help="What theory predicts for each layer before anything is measured: see the Theory tab.")


def kept(key: str) -> str:
    return f"kept_{key}"


def keep(key: str, default) -> dict:
    """Streamlit forgets the state of a widget that a run does not draw (one in a closed tab), so a widget's value
    lives in a copy: loaded into the widget before it is drawn, stored back when it changes. Returns the widget's
    on_change; the widget itself must not pass a default value."""
    ss.setdefault(kept(key), default)
    ss[key] = ss[kept(key)]
    return dict(on_change=lambda: ss.update({kept(key): ss[key]}))


def chart(fig, key: str, caption: str, live: bool = False) -> None:
    """A figure and what to look for in it. A `live` one is redrawn in place (`live_chart`) as a static picture: it is
    replaced several times a second, so hover and zoom could not be used anyway, and skipping their setup makes the
    browser's redraw cheaper."""
    if live:
        live_chart(fig, key, LIVE_PLOT_CONFIG)
    else:
        st.plotly_chart(fig, key=key, config=PLOT_CONFIG, theme=None)
    st.caption(caption)


# --- sidebar state ----------------------------------------------------------------------------------------------
NETWORK_WIDGETS = ("network_mode", "net_depth", "net_width")  # set from a config too, beside the cfg_ widgets


def sidebar_key(name: str) -> str:
    """The current generation's key of a widget that loading a config sets."""
    return versioned(name, ss[GENERATION_KEY])


def cfg_key(field: str) -> str:
    return widget_key(field, ss[GENERATION_KEY])


def config_widget_keys(generation: int) -> list[str]:
    """The keys of every sidebar widget that loading a config sets, in that generation."""
    return [widget_key(f, generation) for f in EDITABLE] + [versioned(n, generation) for n in NETWORK_WIDGETS]


def load_config(config: Config) -> None:
    """Show `config` in the sidebar, in widgets of a new generation (the old ones' keys are dropped)."""
    old = ss.get(GENERATION_KEY)
    if old is not None:
        for key in config_widget_keys(old):
            ss.pop(key, None)
    ss[GENERATION_KEY] = 0 if old is None else old + 1
    ss.config = config
    ss.update(widget_values(config, ss[GENERATION_KEY]))
    uniform_deep = len(config.layers) > 3 and len(set(config.layers)) == 1
    ss[sidebar_key("network_mode")] = NETWORK_MODES[1] if uniform_deep else NETWORK_MODES[0]
    load_depth_width(config.layers)


def load_depth_width(layers: tuple[int, ...]) -> None:
    """Every depth a config can hold fits the depth field (MAX_DEPTH): one over this server's cap on layers is shown
    as it is and refused, with the cap, by the same check as any other config (`preflight`)."""
    ss[sidebar_key("net_depth")], ss[sidebar_key("net_width")] = len(layers), max(layers)


def switch_network_mode() -> None:
    """The other way of writing the same network: sizes text from depth x width, or depth x width from sizes."""
    if ss[sidebar_key("network_mode")] == NETWORK_MODES[0]:
        ss[cfg_key("layers")] = compact_layers(ss.config.layers)
    else:
        load_depth_width(ss.config.layers)


def apply_preset() -> None:
    preset = presets(default_data_dir())[ss.preset]
    load_config(preset.config)
    ss[kept("compare")] = list(preset.compare)


def boot() -> None:
    """First run of a session: the URL's config if it holds one, else the default preset."""
    if "session_id" in ss:
        return
    ss.session_id = uuid.uuid4().hex
    all_presets = presets(default_data_dir())
    config, preset, warning = from_query(st.query_params.to_dict(), all_presets)
    ss.boot_warning = warning
    ss.preset = preset
    ss[kept("compare")] = list(all_presets[preset].compare)
    ss.uploaded_dataset = None  # one per session: a new upload replaces it
    load_config(config or all_presets[preset].config)


def take_dataset_upload() -> None:
    upload = ss.get("dataset_upload")
    if upload is None:
        return
    try:
        dataset = load_uploaded_h5(upload.getvalue(), name=Path(upload.name).stem[:60])
    except DatasetError as e:
        ss.upload_error = str(e)
        return
    ss.upload_error = None
    ss.uploaded_dataset = dataset
    ss[cfg_key("dataset")] = uploaded_name()


def uploaded_name() -> str | None:
    """The Dataset selector's name for this session's uploaded dataset, None before one is uploaded."""
    return None if ss.uploaded_dataset is None else f"{UPLOAD_PREFIX}{ss.uploaded_dataset.name}"


def sidebar() -> Config | None:
    all_presets = presets(default_data_dir())
    sb = st.sidebar
    sb.selectbox("Preset", list(all_presets), key="preset", on_change=apply_preset)
    sb.caption(all_presets[ss.preset].note)

    # Every run hands each config widget its value again, so it reaches the page as set: a busy server drops a run's
    # unsent messages when the next run starts, and a page that missed the run creating new widgets drew them at
    # their defaults, which its next click sent back.
    for key in config_widget_keys(ss[GENERATION_KEY]):
        if key in ss:
            ss[key] = ss[key]

    sb.subheader("Data")
    names = dataset_names(default_data_dir()) + ([uploaded_name()] if ss.uploaded_dataset is not None else [])
    current = ss[cfg_key("dataset")]
    sb.selectbox("Dataset", names if current in names else [current, *names], key=cfg_key("dataset"),
                 help="catvnoncat appears when the course's files are in the data folder (INITLAB_DATA_DIR).")
    sb.file_uploader("…or upload a course-layout .h5", type=["h5"], key="dataset_upload",
                     on_change=take_dataset_upload,
                     help="Keys train_set_x, train_set_y, test_set_x, test_set_y (and optionally list_classes).")
    if ss.get("upload_error"):
        sb.error(escape_markdown(ss.upload_error))
    sb.checkbox("Standardise features", key=cfg_key("standardize"))

    sb.subheader("Network")
    sb.segmented_control("Hidden layers as", NETWORK_MODES, key=sidebar_key("network_mode"),
                         on_change=switch_network_mode, required=True, label_visibility="collapsed")
    by_depth = ss[sidebar_key("network_mode")] == NETWORK_MODES[1]
    if by_depth:
        left, right = sb.columns(2)
        left.number_input("Depth", key=sidebar_key("net_depth"), min_value=1, max_value=MAX_DEPTH, step=1,
                          help="Hidden layers, all of the same width (the output layer makes one more): a deep probe.")
        right.number_input("Width", key=sidebar_key("net_width"), min_value=1, step=10,
                           help="Units in every hidden layer.")
    else:
        sb.text_input("Hidden layers", key=cfg_key("layers"),
                      help="Sizes separated by commas (20,7,5), or width x depth for deep nets: 500x30.")
    acts = list(ACTIVATIONS)
    if ss[cfg_key("activation")] not in acts:
        acts.append(ss[cfg_key("activation")])
    sb.selectbox("Activation", acts, key=cfg_key("activation"))

    sb.subheader("Initialisation")
    sb.selectbox("Initialiser", list(INITIALIZERS), key=cfg_key("init"),
                 format_func=lambda name: INITIALIZERS[name].label)
    init = ss[cfg_key("init")]
    sb.latex(INITIALIZERS[init].latex)
    sb.caption(INITIALIZERS[init].doc)
    left, right = sb.columns(2)
    left.number_input("Scale s", key=cfg_key("init_scale"), format="%g", step=0.01,
                      disabled=init not in SCALED_INITS)
    right.number_input("Gain ×", key=cfg_key("init_gain"), format="%g", step=0.1,
                       help="Multiplies every weight matrix after drawing it.")
    sb.selectbox("Fan mode", FAN_MODES, key=cfg_key("init_mode"), disabled=not init.startswith("he_"))
    left, right = sb.columns(2)
    left.selectbox("Bias", BIAS_INITIALIZERS, key=cfg_key("bias_init"))
    right.number_input("Bias value", key=cfg_key("bias_value"), format="%g",
                       disabled=ss[cfg_key("bias_init")] != "constant")
    left, right = sb.columns(2)
    left.number_input("Seed", key=cfg_key("seed"), min_value=0, step=1)
    right.selectbox("RNG", RNG_MODES, key=cfg_key("rng"),
                    help="legacy: the course's np.random.seed stream; default: NumPy's PCG64.")

    sb.subheader("Training")
    left, right = sb.columns(2)
    left.selectbox("Optimiser", OPTIMIZERS, key=cfg_key("optimizer"), help=OPTIMIZER_HELP)
    right.number_input("Learning rate", key=cfg_key("lr"), format="%g", step=0.001)
    optimizer = ss[cfg_key("optimizer")]
    beta1, beta2, eps = sb.columns(3)
    beta1.number_input("β₁", key=cfg_key("beta1"), format="%g", step=0.01, disabled=optimizer == "gd",
                       help="Decay of the average of gradients (momentum, Adam); from 0 to below 1.")
    beta2.number_input("β₂", key=cfg_key("beta2"), format="%g", step=0.001, disabled=optimizer != "adam",
                       help="Decay of Adam's average of squared gradients; from 0 to below 1.")
    eps.number_input("ε", key=cfg_key("eps"), format="%g", step=1e-8, disabled=optimizer != "adam",
                     help="Adam's ε in √ŝ + ε; above 0.")
    left, right = sb.columns(2)
    left.number_input("Iterations", key=cfg_key("iterations"), min_value=0, step=100)
    right.number_input("Batch size", key=cfg_key("batch_size"), min_value=0, step=32, help="0: full batch")
    left, right = sb.columns(2)
    left.number_input("Record every", key=cfg_key("record_every"), min_value=1, step=5,
                      help="Steps between snapshots: smaller means smoother live charts.")
    right.selectbox("dtype", DTYPES, key=cfg_key("dtype"))
    sb.toggle("Replay cached runs instantly", key=INSTANT_KEY,
              help="A run already trained (by anyone, or in the run cache) replays at the pace it was computed; "
                   "on, it shows at once.")

    try:
        config = config_from_widgets(ss, ss.config, ss[GENERATION_KEY])
        if by_depth:
            config = config.replace(layers=(int(ss[sidebar_key("net_width")]),) * int(ss[sidebar_key("net_depth")]))
    except ConfigError as e:
        sb.error(escape_markdown(e))
        return None
    ss.config = config
    query = to_query(config, ss.preset)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    return config


def resolve_dataset(config: Config):
    if config.dataset.startswith(UPLOAD_PREFIX):
        if config.dataset != uploaded_name():
            raise DatasetError(f"{config.dataset} was uploaded in another session, or replaced by a newer upload "
                               "(a session keeps one uploaded dataset); upload the file again here.")
        dataset = ss.uploaded_dataset
        return standardized(dataset) if config.standardize else dataset
    return load_dataset(config.dataset, default_data_dir(), standardize=config.standardize)


# --- At initialisation -----------------------------------------------------------------------------------------
WHY_INIT = r"""
Each layer computes $Z^l = W^l A^{l-1} + b^l$. With independent zero-mean weights,
$\mathrm{Var}(Z^l) = n_{l-1}\,\mathrm{Var}(W^l)\,\mathrm{E}[(A^{l-1})^2]$: every layer multiplies the signal's
variance by a factor. Below 1 the signal shrinks geometrically with depth (randn×0.01: activations and gradients
vanish), above 1 it explodes or saturates tanh. The classic choices make the factor 1:
"""


def why(body: str) -> None:
    with st.expander("Why?"):
        st.markdown(body)
        st.latex(r"\mathrm{Var}(W) = \frac{1}{n_{in}}\ \text{(LeCun)},\qquad \frac{2}{n_{in}}\ \text{(He, ReLU)},"
                 r"\qquad \frac{2}{n_{in}+n_{out}}\ \text{(Xavier/Glorot)}")


def init_tab(config: Config, dataset, limits: Limits) -> None:
    why(WHY_INIT + "ReLU zeroes half of its inputs, hence He's factor 2.")
    try:
        network, snap = probe_of(config, dataset, limits)
    except FloatingPointError as e:
        st.error(f"The probe {e}.")
        return
    s = snap.stats
    st.markdown(f"**{network}** · {config.init} · one forward and backward pass on {dataset.x_train.shape[1]} "
                f"training examples, no update. Cost {snap.loss:.6g}.")
    note = overflow_note(s)
    if note:
        st.warning(note)
    note = cost_note_of(config, dataset, limits)
    if note:
        st.caption(f"At step 0, {note}")
    if network.depth > figures.MAX_FACETS:
        st.caption(f"The histograms show {figures.MAX_FACETS} of the {network.depth} layers, evenly spaced, "
                   "first and last included.")
    left, right = st.columns(2)
    with left:
        chart(figures.layer_histograms(snap.edges["a"], s["a_hist"], "Activations A per layer", "A"),
              "init_a_hist", "Look for layers that collapse to a spike at 0 or pile up at ±1: both stop learning.")
    with right:
        chart(figures.layer_histograms(snap.edges["dz"], s["dz_hist"], "Back-propagated gradients dZ per layer",
                                       "dZ"),
              "init_dz_hist", "Look at the spread: gradients that shrink towards layer 1 mean its weights barely move.")
    left, right = st.columns(2)
    log_y = left.toggle("Log scale for standard deviations", key="init_log_y", **keep("init_log_y", True))
    theory_toggle(right)
    p = prediction_of(config, dataset)
    predicted = None if p is None else {"std Z": p.z_std, "std A": p.a_std, "std dZ": p.dz_std}
    left, right = st.columns(2)
    with left:
        chart(figures.depth_profile({"std Z": s["z_std"], "std A": s["a_std"], "std dZ": s["dz_std"]},
                                    "Standard deviation against depth", "std", log_y=log_y, predicted=predicted),
              "init_std", "A flat line is a healthy init; a straight slope on the log scale is geometric vanishing. "
              "Dashed: the mean-field prediction, the average over weight draws; one draw of a layer of few units can "
              "sit a factor 2 from it.")
    with right:
        chart(figures.depth_profile({"mean Z": s["z_mean"], "mean A": s["a_mean"]}, "Mean against depth", "mean"),
              "init_mean", "ReLU activations have a positive mean; a drifting mean shifts every later layer.")
    chart(figures.layer_fractions(s["dead_fraction"], s["saturated_fraction"]), "init_fractions",
          "Dead ReLUs (exactly 0) pass no gradient; saturated tanh/sigmoid units pass almost none.")


# --- Training --------------------------------------------------------------------------------------------------
WHY_TRAIN = r"""
Gradient descent moves $W^l \leftarrow W^l - \alpha\, dW^l$ with $dW^l = \frac{1}{m}\, dZ^l (A^{l-1})^\top$: a layer
whose activations or back-propagated gradients vanished at initialisation gets no update, and the loss sits at
$\ln 2 \approx 0.693$ (the net predicts one class). The update-to-weight ratio
$\lVert \alpha\, dW^l\rVert / \lVert W^l\rVert$ near $10^{-3}$ is a healthy pace (Karpathy's rule of thumb).
"""


def start_training(config: Config, dataset, limits: Limits) -> None:
    try:
        run = run_store().start(config, dataset, ss.session_id, limits, instant=ss.get(INSTANT_KEY, False))
    except ConfigError as e:
        ss.train_error = f"Refused before starting: {e}"
        return
    ss.train_error = None
    ss.train_key, ss.train_frozen, ss.replay = run.key, None, None


def stop_training() -> None:
    run = run_store().get(ss.get("train_key") or "")
    if run is not None:
        ss.train_frozen = len(run.snapshots)
        run_store().detach(run.key, ss.session_id)


def watched_run():
    run = run_store().get(ss.get("train_key") or "")
    live = run is not None and not run.done and ss.get("train_frozen") is None
    return run, live


def training_tab(config: Config, dataset, limits: Limits) -> None:
    why(WHY_TRAIN)
    run, live = watched_run()
    left, middle, right = st.columns([1, 1, 5])
    left.button("Start", key="start", type="primary", disabled=live, on_click=start_training,
                args=(config, dataset, limits))
    middle.button("Stop", key="stop", disabled=not live, on_click=stop_training)
    if ss.get("train_error"):
        st.error(escape_markdown(ss.train_error))
    if ss.get("replay") is not None:
        right.info(f"Replaying a recorded run ({escape_markdown(ss.replay_name)}). Start a run to leave the replay.")
        draw_replay(ss.replay, dataset)
        return
    if run is None:
        right.info("Press Start to train this config; the charts update while it learns.")
        return
    same_data = (run.config.dataset, run.config.standardize) == (config.dataset, config.standardize)
    if run.config != config:
        st.caption("These charts show the run of an earlier setting; press Start to train the sidebar's config.")
    # Two timers: the browser redraws a changed Plotly chart from scratch, and the per-layer figures cost it ~4x the
    # loss curves, so they refresh once a second while the progress and the curves refresh 5 times.
    st.fragment(run_every=LIVE_SECONDS if live else None)(live_progress)(live)
    st.fragment(run_every=LAYER_SECONDS if live else None)(live_layers)(dataset if same_data else None, live)


def watched_snapshots():
    """The watched run (None if the server dropped it) and the snapshots this session sees: all, or up to Stop."""
    run = run_store().get(ss.get("train_key") or "")
    if run is None:
        return None, []
    frozen = ss.get("train_frozen")
    return run, run.snapshots[:frozen] if frozen is not None else run.snapshots[:]


def live_progress(live: bool) -> None:
    """The watched run's status, latest figures and loss and accuracy curves."""
    run, snapshots = watched_snapshots()
    if run is None:
        st.warning("This run was dropped from the server's cache; press Start to run it again.")
        return
    frozen = ss.get("train_frozen")
    status = run.status if frozen is None else "stopped"
    last = snapshots[-1].step if snapshots else 0
    if status == RUNNING and run.elsewhere:
        st.info(f"Another server of this class is training this run ({run.config.iterations:,} steps); it appears "
                "here, whole, as soon as it has finished.")
    elif status == RUNNING:
        st.info(f"Training… step {last:,} of {run.config.iterations:,}")
    elif status == FINISHED:
        st.success(f"Finished {run.config.iterations:,} steps" + (f" in {run.seconds:.1f} s." if run.seconds else ".")
                   + (" Replayed from the run cache." if run.cached else ""))
    elif status == DIVERGED:
        st.error(f"The run {escape_markdown(run.message)}")
    else:
        st.warning(escape_markdown(run.message) if frozen is None and run.message else
                   f"Stopped at step {last:,}: the charts show the run up to there.")
    draw_progress(snapshots, "live", run.key, live and not run.done)
    if live and run.done:
        st.rerun()  # the run ended: redraw the whole page once, without the timers


def live_layers(dataset, live: bool) -> None:
    """The watched run's per-layer figures; `dataset` (for the decision boundary) is None if it is not the run's."""
    run, snapshots = watched_snapshots()
    if run is not None:
        draw_layers(snapshots, run.config, run.network, run.params, dataset, "live", run.key, live and not run.done)


def draw_replay(recorded, dataset) -> None:
    network = Network(tuple(recorded.network_dims), tuple(recorded.activations[:len(recorded.network_dims) - 2]))
    if recorded.stopped_reason:
        st.warning(f"The recorded run ended early: {escape_markdown(recorded.stopped_reason)}")
    same_data = dataset.fingerprint() == recorded.dataset_fingerprint
    draw_progress(recorded.snapshots, "replay", ss.replay_name)
    draw_layers(recorded.snapshots, recorded.config, network, recorded.final_params, dataset if same_data else None,
                "replay", ss.replay_name)


TRAINING_CAPTIONS = {
    "loss": "A loss stuck at 0.693 (ln 2) means the net predicts one class for everything.",
    "accuracy": "The gap between train and test is overfitting; flat lines mean nothing is learned.",
    "a_std": "Lines far apart on this log scale mean the signal shrinks or grows through depth. Dashed: each "
             "layer's std predicted at initialisation.",
    "dw_norm": "Early layers (light) far below late ones (dark): vanishing gradients.",
    "update_ratio": "Near the dashed 1e-3 line is a healthy pace; far below, the layer is frozen.",
    "boundary": "Colour is P(class 1). A boundary that follows the classes is learning; one plain colour means "
                "one class everywhere.",
    "heatmap": "Bright bands that narrow to one row mean the layer's values collapsed to one value.",
}
LAYER_COLUMNS = (("a_std", "dw_norm", "boundary"), ("update_ratio", "heatmap"))


def cached_figures(slot: str, token: tuple, build):
    """`build()`'s figures, rebuilt only when `token` changes: most ticks of a slow run have no new snapshot and
    reuse the last ones, leaving the CPU to the training."""
    cached = ss.get(slot)
    if cached is None or cached[0] != token:
        cached = token, build()
        ss[slot] = cached
    return cached[1]


def draw_progress(snapshots, prefix: str, run_id: str, live: bool = False) -> None:
    if not snapshots:
        st.caption("Waiting for the first snapshot…")
        return
    last = snapshots[-1]
    a, b, c = st.columns(3)
    a.metric("Loss", f"{last.loss:.4f}")
    b.metric("Train accuracy", f"{last.train_accuracy:.2f}")
    c.metric("Test accuracy", f"{last.test_accuracy:.2f}")
    figs = cached_figures(f"{prefix}_progress_figures", (run_id, len(snapshots)),
                          lambda: progress_figures(snapshots, MAX_POINTS))
    for column, name in zip(st.columns(2), ("loss", "accuracy")):
        with column:
            chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live)


def draw_layers(snapshots, config: Config, network: Network, params, dataset, prefix: str, run_id: str,
                live: bool = False) -> None:
    """`dataset` is the run's own data, or None when the sidebar's is another (no boundary, no prediction)."""
    if not snapshots:
        return
    theory_toggle(st)
    prediction = prediction_of(config, dataset)
    quantity_key = f"{prefix}_heat_q"
    quantity = ss.get(quantity_key, "a")
    figs = cached_figures(f"{prefix}_layer_figures",
                          (run_id, len(snapshots), quantity, dataset is None, prediction is None),
                          lambda: layer_figures(snapshots, network, params, dataset, quantity, MAX_POINTS,
                                                predicted_a_std=None if prediction is None else prediction.a_std))
    for column, names in zip(st.columns(2), LAYER_COLUMNS):
        with column:
            for name in names:
                if name == "heatmap":  # its choice was read from session state above; the widget sits here
                    st.selectbox("Histograms over time of", list(HEATMAP_QUANTITIES), key=quantity_key,
                                 format_func=HEATMAP_QUANTITIES.get)
                if name in figs:
                    chart(figs[name], f"{prefix}_{name}", TRAINING_CAPTIONS[name], live)


# --- Compare ---------------------------------------------------------------------------------------------------
def start_compare(config: Config, dataset, limits: Limits) -> None:
    keys, errors = {}, []
    for label in ss[kept("compare")]:
        try:
            keys[label] = run_store().start(VARIANTS[label].apply(config), dataset, f"{ss.session_id}:compare",
                                            limits, instant=ss.get(INSTANT_KEY, False), session=ss.session_id).key
        except ConfigError as e:
            errors.append(f"{label}: {e}")
    ss.compare_keys, ss.compare_errors = keys, errors


def compare_tab(config: Config, dataset, limits: Limits, forward_only: bool) -> None:
    why("Same data, same network, same seed: only the initialiser changes. " + WHY_INIT)
    st.multiselect("Initialisers", list(VARIANTS), key="compare", **keep("compare", []))
    if not ss.compare:
        st.info("Pick at least one initialiser.")
        return
    stds = {}
    for label in ss.compare:
        variant = VARIANTS[label].apply(config)
        try:
            stds[label] = probe_of(variant, dataset, limits)[1].stats["a_std"]
        except FloatingPointError as e:
            st.warning(f"{label}: the probe {e}.")
            continue
        note = cost_note_of(variant, dataset, limits)
        if note:
            st.caption(f"{label}: at step 0, {note}")
    chart(figures.depth_profile(stds, "Activation std against depth at step 0", "std A", log_y=True),
          "compare_std", "The initialiser whose line stays flat keeps the signal alive through every layer.")
    st.button("Train all", key="train_all", type="secondary" if forward_only else "primary", on_click=start_compare,
              args=(config, dataset, limits),
              help=f"{len(ss.compare)} runs of {config.iterations:,} steps on the same data, network and seed.")
    for error in ss.get("compare_errors") or []:
        st.error(f"Refused before starting: {escape_markdown(error)}")
    keys = {label: key for label, key in (ss.get("compare_keys") or {}).items() if label in ss.compare}
    if not keys:
        return
    runs = {label: run_store().get(key) for label, key in keys.items()}
    live = any(r is not None and not r.done for r in runs.values())
    st.fragment(run_every=COMPARE_SECONDS if live else None)(compare_results)(keys, live)


def compare_results(keys: dict[str, str], live: bool) -> None:
    runs = {label: run_store().get(key) for label, key in keys.items()}
    runs = {label: r for label, r in runs.items() if r is not None}
    # Each run's snapshots read once: a run (or a replay's clock) may add one between two reads, and a figure keyed
    # by the later count but drawn from the earlier list would stay one snapshot short, the final one included.
    seen = {label: r.snapshots[:] for label, r in runs.items()}
    curves = {label: thin(snapshots, MAX_POINTS) for label, snapshots in seen.items()}
    counts = tuple((label, len(snapshots)) for label, snapshots in seen.items())
    # Every run has its curve from the start, empty until its first snapshot: its colour and legend entry then do
    # not move when a run listed before it starts later.
    loss = cached_figures("compare_loss_figure", (tuple(keys.values()), counts), lambda: figures.curves(
        {k: steps(v) for k, v in curves.items()}, {k: [s.loss for s in v] for k, v in curves.items()},
        "Loss by initialiser", "cross-entropy"))
    chart(loss, "compare_loss", "The curve that leaves ln 2 ≈ 0.693 first is the initialiser that lets every layer "
          "learn.", live)
    rows = []
    for label, r in runs.items():
        last = curves[label][-1] if curves[label] else None
        rows.append({"initialiser": label, "status": r.status + (" (from the run cache)" if r.cached else
                                                                 " on another server" if r.elsewhere else ""),
                     "step": f"{last.step:,}" if last else "–",
                     "loss": f"{last.loss:.4f}" if last else "–",
                     "train accuracy": f"{last.train_accuracy:.2f}" if last else "–",
                     "test accuracy": f"{last.test_accuracy:.2f}" if last else "–"})
    st.table(rows)
    st.caption("Final accuracies after training; a test accuracy equal to the share of the majority class "
               "means the net learned nothing.")
    if live and all(r.done for r in runs.values()):
        st.rerun()


# --- Run file --------------------------------------------------------------------------------------------------
def take_run_upload() -> None:
    upload = ss.get("run_upload")
    if upload is None:
        return
    try:  # one replay per session: a new upload replaces the old one
        ss.replay, ss.replay_name, ss.run_upload_error = read_uploaded_run(upload.getvalue(), upload.name), \
            upload.name, None
    except RunFileError as e:
        ss.replay, ss.run_upload_error = None, str(e)


def run_file_tab() -> None:
    why("A run file is an HDF5 file holding the config, the initial and final weights and every snapshot's "
        "statistics: share it, and anyone can replay exactly what you saw." + "\n\n" + WHY_INIT)
    run, _ = watched_run()
    st.subheader("Download the current run")
    if run is None:
        st.caption("Train a run in the Training tab first.")
    elif not run.done or not run.path.is_file():
        st.caption("The file is ready when the run ends (or is stopped).")
    else:
        last = run.snapshots[-1].step if run.snapshots else 0
        st.download_button("Download run (.h5)", run.path.read_bytes(), file_name=f"initlab-{run.key[:8]}.h5",
                           mime="application/x-hdf5", key="download_run")
        st.caption(f"{run.network} · {run.config.init} · {run.status} at step {last:,} of {run.config.iterations:,} · "
                   f"{len(run.snapshots)} snapshots · {run.path.stat().st_size / 1e6:.1f} MB. Replay it here, or "
                   "read it with `python -m core show FILE` or h5py.")
    st.subheader("Replay a recorded run")
    st.file_uploader("Recorded run (.h5)", type=["h5"], key="run_upload", on_change=take_run_upload)
    if ss.get("run_upload_error"):
        st.error(escape_markdown(ss.run_upload_error))
    elif ss.get("replay") is not None:
        st.success(f"Loaded {escape_markdown(ss.replay_name)}: {len(ss.replay.snapshots)} snapshots. See the "
                   "Training tab.")


# --- page ------------------------------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="Init Lab", page_icon="🧪", layout="wide")
    boot()
    config = sidebar()
    st.title("Init Lab")
    st.caption("Why the initial weights decide whether a deep network learns, layer by layer.")
    if ss.boot_warning:
        st.warning(escape_markdown(ss.boot_warning))
    if config is None:
        st.error("Fix the highlighted setting in the sidebar to continue.")
        return
    try:
        run_store()  # a malformed $INITLAB_CACHE_* setting is reported here as a message, not a traceback
        limits = Limits.from_env()
        dataset = resolve_dataset(config)
        network = preflight(config, dataset, limits)
    except (ConfigError, DatasetError, ValueError) as e:
        st.error(escape_markdown(e))
        return
    st.markdown(f"**{network}** · {network.n_params:,} parameters · {escape_markdown(dataset.description)}")
    views = {
        "At initialisation": lambda: init_tab(config, dataset, limits),
        "Training": lambda: training_tab(config, dataset, limits),
        "Compare": lambda: compare_tab(config, dataset, limits, presets(default_data_dir())[ss.preset].forward_only),
        "Run file": run_file_tab,
        "Theory": lambda: render_theory_tab(config, dataset),
    }
    # Only the open tab runs (and reaches the browser): a page redraw costs one tab's figures, not five.
    for tab, view in zip(st.tabs(list(views), key=TAB_KEY, on_change="rerun"), views.values()):
        if tab.open:
            with tab:
                view()


main()
