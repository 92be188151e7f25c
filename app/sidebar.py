"""The sidebar: its widgets -> one validated `Config`, the presets that fill them, and the URL that mirrors them.

`render()` draws the sidebar and returns the config (None while a setting is invalid, with the reason shown);
`boot()` starts a session from its URL; `resolve_dataset(config)` loads the config's data (or the session's upload).
The plain-data half (config <-> widget values <-> URL) is app/state.py.
"""

from __future__ import annotations

import uuid

import streamlit as st

from app.markup import escape_markdown, with_file_names_as_code
from app.presets import presets
from app.state import (EDITABLE, PAGE_PARAMS, compact_layers, config_from_widgets, from_query,
                       to_query, versioned, widget_key, widget_values)
from app.ui import SessionState, set_kept, state
from core.activations import ACTIVATIONS
from core.config import DTYPES, FAN_MODES, MAX_DEPTH, NORMS, OPTIMIZERS, RNG_MODES, Config, ConfigError
from core.data import (DatasetError, UploadedFile, dataset_names, default_data_dir, load_dataset, load_uploaded_files,
                       max_upload_bytes, standardized)
from core.initializers import BIAS_INITIALIZERS, INITIALIZERS

OPTIMIZER_HELP = ("gd: W −= lr·dW. momentum: the course's average v = β₁v + (1 − β₁)dW, W −= lr·v, which is "
                  "PyTorch's SGD(momentum=β₁) with the learning rate times 1 − β₁. adam: Kingma & Ba, "
                  "W −= lr·v̂ / (√ŝ + ε) with bias-corrected averages v̂ (β₁) and ŝ (β₂).")
SCALED_INITS = {"normal", "uniform", "truncated_normal", "constant"}  # the initialisers that use `scale`
UPLOAD_PREFIX = "upload:"
MAX_FILE_NAME = 120
NETWORK_MODES = ("sizes", "depth × width")
ss = st.session_state  # the widgets' values, under keys of the current sidebar generation


# --- a config into the widgets ---------------------------------------------------------------------------------
NETWORK_WIDGETS = ("network_mode", "net_depth", "net_width")  # set from a config too, beside the cfg_ widgets


def sidebar_key(name: str) -> str:
    """The current generation's key of a widget that loading a config sets."""
    return versioned(name, state.generation)


def cfg_key(field: str) -> str:
    return widget_key(field, state.generation)


def config_widget_keys(generation: int) -> list[str]:
    """The keys of every sidebar widget that loading a config sets, in that generation."""
    return [widget_key(f, generation) for f in EDITABLE] + [versioned(n, generation) for n in NETWORK_WIDGETS]


def load_config(config: Config) -> None:
    """Show `config` in the sidebar, in widgets of a new generation (the old ones' keys are dropped)."""
    old = state.generation
    if old is not None:
        for key in config_widget_keys(old):
            ss.pop(key, None)
    state.generation = 0 if old is None else old + 1
    state.config = config
    ss.update(widget_values(config, state.generation))
    uniform_deep = len(config.layers) > 3 and len(set(config.layers)) == 1
    ss[sidebar_key("network_mode")] = NETWORK_MODES[1] if uniform_deep else NETWORK_MODES[0]
    load_depth_width(config.layers)


def load_depth_width(layers: tuple[int, ...]) -> None:
    """Every depth a config can hold fits the depth field (MAX_DEPTH): one over this server's cap on layers is shown
    as it is and refused, with the cap, by the same check as any other config (`network_within_limits`)."""
    ss[sidebar_key("net_depth")], ss[sidebar_key("net_width")] = len(layers), max(layers)


def switch_network_mode() -> None:
    """The other way of writing the same network: sizes text from depth x width, or depth x width from sizes."""
    if ss[sidebar_key("network_mode")] == NETWORK_MODES[0]:
        ss[cfg_key("layers")] = compact_layers(state.config.layers)
    else:
        load_depth_width(state.config.layers)


def apply_preset() -> None:
    preset = presets(default_data_dir())[state.preset]
    load_config(preset.config)
    set_kept("compare", list(preset.compare))


def boot() -> None:
    """First run of a session: the URL's config if it holds one, else the default preset."""
    if state.session_id is not None:
        return
    state.session_id = uuid.uuid4().hex
    all_presets = presets(default_data_dir())
    config, preset, warning = from_query(st.query_params.to_dict(), all_presets)
    state.boot_warning = warning
    state.preset = preset
    set_kept("compare", list(all_presets[preset].compare))
    state.uploaded_dataset = None  # one per session: a new upload replaces it
    load_config(config or all_presets[preset].config)


def take_dataset_upload() -> None:
    uploads = state.dataset_upload
    if not uploads:
        return
    files = [UploadedFile(printable_name(u.name), u.getvalue()) for u in uploads]
    try:
        dataset = load_uploaded_files(files, max_bytes=max_upload_bytes())
    except DatasetError as e:
        state.upload_error = with_file_names_as_code(e, [f.name for f in files])
        return
    state.upload_error = None
    state.uploaded_dataset = dataset
    ss[cfg_key("dataset")] = uploaded_name()


def printable_name(name: str) -> str:
    """An uploaded file's name as one line of at most MAX_FILE_NAME printable characters, for messages."""
    return "".join(c if c.isprintable() else "?" for c in name)[:MAX_FILE_NAME]


def uploaded_name() -> str | None:
    """The Dataset selector's name for this session's uploaded dataset, None before one is uploaded."""
    return None if state.uploaded_dataset is None else f"{UPLOAD_PREFIX}{state.uploaded_dataset.name}"


def render() -> Config | None:
    """The sidebar, drawn; its config, or None (with the reason shown) while a setting is invalid."""
    all_presets = presets(default_data_dir())
    sb = st.sidebar
    sb.selectbox("Preset", list(all_presets), key=SessionState.preset.key, on_change=apply_preset)
    preset_note = sb.empty()  # filled once this run's config is known

    # Every run hands each config widget its value again, so it reaches the page as set: a busy server drops a run's
    # unsent messages when the next run starts, and a page that missed the run creating new widgets drew them at
    # their defaults, which its next click sent back.
    for key in config_widget_keys(state.generation):
        if key in ss:
            ss[key] = ss[key]

    sb.subheader("Data")
    names = dataset_names(default_data_dir()) + ([uploaded_name()] if state.uploaded_dataset is not None else [])
    current = ss[cfg_key("dataset")]
    sb.selectbox("Dataset", names if current in names else [current, *names], key=cfg_key("dataset"),
                 help="catvnoncat appears when the course's files are in the data folder (INITLAB_DATA_DIR).")
    sb.file_uploader("…or upload course-layout data", type=["h5", "hdf5", "zip"], accept_multiple_files=True,
                     key=SessionState.dataset_upload.key, on_change=take_dataset_upload,
                     help="The course's two files together (train_catvnoncat.h5 and test_catvnoncat.h5: select "
                          "both), one .h5 holding both splits, or a .zip of them. Keys train_set_x, train_set_y, "
                          "test_set_x, test_set_y (and optionally list_classes).")
    if state.upload_error:
        sb.error(state.upload_error)  # Markdown already: escaped, file names as code
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
    render_norm_and_residual(sb)

    sb.subheader("Initialisation")
    sb.selectbox("Initialiser", list(INITIALIZERS), key=cfg_key("init"),
                 format_func=lambda name: INITIALIZERS[name].label)
    init = ss[cfg_key("init")]
    sb.latex(INITIALIZERS[init].latex)
    sb.caption(INITIALIZERS[init].doc)
    left, right = sb.columns(2)
    if init in SCALED_INITS:
        # the field is not drawn while another initialiser is chosen, and Streamlit forgets an undrawn widget's value
        ss.setdefault(cfg_key("init_scale"), state.config.init_scale)
        left.number_input("Scale s", key=cfg_key("init_scale"), format="%g", step=0.01,
                          help="The std of normal and truncated normal, the bound of uniform, the value of constant.")
    else:  # the config keeps its s for when a scaled initialiser is chosen again; none is in force now
        left.text_input("Scale s", "not used", key=sidebar_key("scale_unused"), disabled=True,
                        help=f"{INITIALIZERS[init].label} sets the weights' variance by the formula above: no s.")
    right.number_input("Gain ×", key=cfg_key("init_gain"), format="%g", step=0.1,
                       help="Multiplies every weight matrix after drawing it.")
    sb.selectbox("Fan mode", FAN_MODES, key=cfg_key("init_mode"), disabled=not init.startswith("he_"))
    left, right = sb.columns(2)
    left.selectbox("Bias", BIAS_INITIALIZERS, key=cfg_key("bias_init"))
    right.number_input("Bias value", key=cfg_key("bias_value"), format="%g",
                       disabled=ss[cfg_key("bias_init")] not in ("constant", "normal"),
                       help="constant: every bias; normal: the std of N(0, value²) (σ_b² = value²).")
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
    sb.toggle("Replay cached runs instantly", key=SessionState.instant.key,
              help="A run already trained (by anyone, or in the run cache) replays at the pace it was computed; "
                   "on, it shows at once.")

    try:
        config = config_from_widgets(ss, state.config, state.generation)
        if by_depth:
            config = config.replace(layers=(int(ss[sidebar_key("net_width")]),) * int(ss[sidebar_key("net_depth")]))
    except ConfigError as e:
        sb.error(escape_markdown(e))
        return None
    preset = all_presets[state.preset]
    preset_note.caption(preset.note if preset.describes(config) else
                        f"Your own network now: the {preset.name} preset's note no longer applies (pick the preset "
                        "again to go back to it).")
    state.config = config
    show_in_url(to_query(config, state.preset))
    return config


def show_in_url(query: dict[str, str]) -> None:
    """The URL's config parameters made ``query``'s, one by one: the page's place (the tab, which Streamlit owns once
    the tabs are drawn, and the lesson step) stays as it is."""
    current = st.query_params.to_dict()
    for name in current.keys() - query.keys() - set(PAGE_PARAMS):
        del st.query_params[name]
    changed = {name: value for name, value in query.items() if current.get(name) != value}
    if changed:
        st.query_params.update(changed)


NORM_LABELS = {"none": "none", "batch": "batch norm", "layer": "layer norm"}


def render_norm_and_residual(sb) -> None:
    """Normalisation, residual blocks with their α, and zero-init: drawn always (an undrawn widget's value is
    forgotten), α disabled while residual is off; zero-init stays clickable so that it can be turned off too."""
    sb.selectbox("Normalisation", NORMS, key=cfg_key("norm"), format_func=NORM_LABELS.get,
                 help="Normalise every hidden layer's Z before its activation, then scale by γ and shift by β "
                      "(learnt). Batch norm: each unit over the batch (running averages for test accuracy); layer "
                      "norm: each example over its units.")
    left, right = sb.columns([3, 2], vertical_alignment="bottom")  # the toggle's label needs the wider half
    left.toggle("Residual", key=cfg_key("residual"),
                help="Hidden layers 2.. add their input: A = A_prev + α·φ(Z). They need the width of layer 1.")
    right.number_input("α", key=cfg_key("residual_scale"), format="%g", step=0.1, min_value=0.0,
                       disabled=not ss[cfg_key("residual")],
                       help="The residual branch's factor: 1, or 1/√depth to keep a deep stack's variance bounded.")
    sb.checkbox("Zero-init residual branches", key=cfg_key("zero_init_residual"),
                help="Each branch starts at zero (its weights, or γ with a normalisation): every block starts as the "
                     "identity (Goyal et al. 2017; Fixup; SkipInit). Needs φ(0) = 0 and φ′(0) ≠ 0: not relu.")


def resolve_dataset(config: Config):
    if config.dataset.startswith(UPLOAD_PREFIX):
        if config.dataset != uploaded_name():
            raise DatasetError(f"{config.dataset} was uploaded in another session, or replaced by a newer upload "
                               "(a session keeps one uploaded dataset); upload the file again here.")
        dataset = state.uploaded_dataset
        return standardized(dataset) if config.standardize else dataset
    return load_dataset(config.dataset, default_data_dir(), standardize=config.standardize)


