"""The Theory tab: what mean-field theory predicts for the chosen network, beside what the probe measures.

`render(config, dataset, limits)` draws everything; app/page.py calls it inside its Theory tab. The numbers come
from core/theory.py, the figures from app/charts/theory.py; expensive results are cached across sessions.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app.charts import theory as figures
from app.glossary import explain, glossary_markdown
from app.markup import escape_markdown
from app.ui import chart, table
from core.config import Config, ConfigError
from core.data import Dataset
from core.limits import Limits
from core.criticality import NO_FIXED_POINT, Criticality, critical_line, criticality, describe, phase_grid
from core.meanfield import TheoryError
from core.normtheory import batchnorm_gradient_factor, gradient_growth
from core.theory import compare, jacobian_singular_values, measure

JACOBIAN_WIDTHS = (32, 64, 128, 256)
JACOBIAN_MAX_DEPTH = 60  # 60 products of 256 x 256 per input: well under a second
JACOBIAN_INPUTS = 4
MAX_SETTINGS = 12  # rows of the order-and-chaos table: a fixed-scale initialiser on varying widths has one per layer


@st.cache_data(max_entries=32, show_spinner="Predicting and probing…")
def _comparison(config_json: str, fingerprint: str, _dataset: Dataset, _limits: Limits):
    return compare(Config.from_json(config_json), _dataset, _limits)


@st.cache_data(max_entries=32, show_spinner="Probing…")
def _measurement(config_json: str, fingerprint: str, _dataset: Dataset, _limits: Limits):
    return measure(Config.from_json(config_json), _dataset, _limits)


@st.cache_data(max_entries=32, show_spinner="Computing the phase diagram…")
def _phase(activation: str, sigma_w2: tuple[float, ...], sigma_b2: tuple[float, ...]):
    sw2, sb2 = np.array(sigma_w2), np.array(sigma_b2)
    return phase_grid(activation, sw2, sb2), critical_line(activation)


@st.cache_data(max_entries=256, show_spinner="Solving for the fixed points…")
def _criticality(activation: str, sigma_w2: float, sigma_b2: float, q0: float) -> Criticality:
    return criticality(activation, sigma_w2, sigma_b2, q0)


@st.cache_data(max_entries=32, show_spinner="Multiplying Jacobians…")
def _spectrum(activation: str, init: str, width: int, depth: int, scale: float, gain: float, seed: int):
    return jacobian_singular_values(activation, init, width, depth, scale=scale, gain=gain,
                                    n_inputs=JACOBIAN_INPUTS, seed=seed)


def render(config: Config, dataset: Dataset, limits: Limits) -> None:
    """The phase diagram, predicted against measured statistics with depth, the Jacobian spectrum, and why."""
    st.markdown(
        "Mean-field theory predicts, before any measurement, how the spread of the signal changes from layer to "
        "layer. Dashed lines are the prediction, solid lines the probe (one forward and backward pass at "
        "initialisation).", help=explain("mean-field", "q", "sigma_w2", "sigma_b2")
    )
    try:
        result = _comparison(config.to_json(), dataset.fingerprint(), dataset, limits)
    except TheoryError as e:
        st.info(f"No prediction for this setting: {escape_markdown(e)}.")
        _measured_alone(config, dataset, limits)
        result = None
    except (ConfigError, FloatingPointError) as e:
        st.warning(f"The probe could not run: {escape_markdown(e)}")
        result = None
    plain = config.norm == "none" and not config.residual
    if result is not None:
        _depth_charts(result, config)
        if plain:
            _phase_section(config, result.prediction)
    if not plain:
        st.caption("The phase diagram, the order-and-chaos table and the Jacobian's spectrum describe plain stacks "
                   "of identical layers; with normalisation or skips they would describe a different network, so "
                   "they are not drawn. Turn norm and residual off to see them.")
    else:
        _jacobian_section(config)
    _why()


def _measured_alone(config: Config, dataset: Dataset, limits: Limits) -> None:
    """The probe's curves without a dashed prediction, where the theory has none."""
    try:
        measured = _measurement(config.to_json(), dataset.fingerprint(), dataset, limits)
    except (ConfigError, FloatingPointError) as e:
        st.warning(f"The probe could not run: {escape_markdown(e)}")
        return
    left, right = st.columns(2)
    with left:
        chart(figures.depth_comparison(None, measured["z_std"], "Std of Z with depth (measured)", "std of Z"),
              "theory_z_std", "The probe alone: no prediction is drawn for this setting.", csv=False)
    with right:
        chart(figures.depth_comparison(None, measured["dz_rms"], "Gradient dZ with depth (measured)", "rms of dZ"),
              "theory_dz_rms", "The probe alone: no prediction is drawn for this setting.", csv=False)


FORWARD_CAPTIONS = {
    "plain": r"Forward: $q^l = \sigma_{w,l}^2\,\mathbb{E}[\phi(Z^{l-1})^2] + \sigma_b^2$. A straight fall on this "
             "log axis is a signal shrinking by the same factor at every layer.",
    "residual": r"Forward with the skip $A^l = A^{l-1} + \alpha\,\phi(Z^l)$: $\mathbb{E}[(A^l)^2] = "
                r"\mathbb{E}[(A^{l-1})^2] + 2\alpha\,\mathbb{E}[A^{l-1}]\,\mathbb{E}[\phi(Z^l)] + "
                r"\alpha^2\,\mathbb{E}[\phi(Z^l)^2]$ and $q^l = \sigma_w^2\,\mathbb{E}[(A^{l-1})^2]$ (Yang & "
                r"Schoenholz 2017). The skip never lets the signal shrink; relu's positive mean makes it grow.",
    "batch": r"Forward with batch norm: each unit's $Z$ is divided by its own spread over the batch, so its std is "
             r"1 whatever the weights' scale (less only where that spread is as small as $\epsilon = 10^{-5}$).",
}
BACKWARD_CAPTIONS = {
    "plain": r"Backward: $\mathbb{E}[(dZ^l)^2] = \mathbb{E}[(dZ^{l+1})^2]\; n_{l+1}\,\mathrm{Var}(W^{l+1})\; "
             r"\mathbb{E}[\phi'(Z^l)^2]$, from the output's $A - Y$.",
    "residual": r"Backward: the skip adds the gradient from above, $\mathbb{E}[(dA^{l-1})^2] = "
                r"\mathbb{E}[(dA^l)^2]\,(1 + \alpha^2\sigma_w^2\,\mathbb{E}[\phi'(Z^l)^2])$: it grows towards "
                "the input, never vanishes.",
    "batch": r"Backward through batch norm: the weights' scale cancels, and the gradient grows towards the input by "
             r"$\sqrt{\mathbb{E}[\phi'(u)^2] / \mathrm{Var}\,\phi(u)}$ per layer (Yang et al. 2019).",
}


def _depth_charts(result, config: Config) -> None:
    p = result.prediction
    kind = "batch" if config.norm == "batch" else "residual" if config.residual else "plain"
    left, right = st.columns(2)
    with left:
        chart(figures.depth_comparison(p.z_std, result.z_std, "Std of Z with depth", "std of Z"), "theory_z_std",
              FORWARD_CAPTIONS[kind], csv=False, help=explain("q", "sigma_w2", "sigma_b2"))
    with right:
        chart(figures.depth_comparison(p.dz_rms, result.dz_rms, "Gradient dZ with depth", "rms of dZ"),
              "theory_dz_rms", BACKWARD_CAPTIONS[kind], csv=False, help=explain("dZ"))
    if p.unpredicted:
        st.caption(f"Dashed line missing: {escape_markdown(p.unpredicted)}.")
    if kind == "batch":
        _growth_line(config, p.dz_rms, result.dz_rms)
    st.caption("Dashed: the average over weight draws of what the probe measures (the spread of a layer's values "
               "about their mean). One draw wanders from it, more in deep narrow stacks: the spread of $\\log q$ grows "
               "like depth / width (Hanin & Nica 2019), about 14% at the top of 30 relu layers of 1000 units.")
    narrow = [i + 1 for i, n in enumerate(p.dims[1:]) if n < 10]
    if narrow:
        which = f"Layer {narrow[0]} has" if len(narrow) == 1 else f"Layers {', '.join(map(str, narrow))} have"
        st.caption(f"{which} fewer than 10 units: one draw of a narrow layer can sit a factor of 2 away from the "
                   "average.")


def _growth_line(config: Config, predicted: np.ndarray, measured: np.ndarray) -> None:
    """Batch norm's per-layer gradient growth, predicted beside measured, in numbers."""
    growth_predicted, growth_measured = gradient_growth(predicted), gradient_growth(measured)
    if not (math.isfinite(growth_predicted) and math.isfinite(growth_measured)):
        st.caption("With fewer than four layers there is no per-layer growth of the gradient to read off.")
        return
    names = list(dict.fromkeys(config.hidden_activations))
    limits = ", ".join(f"{name} {batchnorm_gradient_factor(name):.4g}" for name in names)
    st.markdown(f"**Gradient growth per layer towards the input**: predicted ×{growth_predicted:.4g}, measured "
                f"×{growth_measured:.4g} (geometric mean over the hidden layers below the top one); from the top "
                f"hidden layer down to layer 1: ×{predicted[0] / predicted[-2]:.3g} predicted, "
                f"×{measured[0] / measured[-2]:.3g} measured. The large-batch factor of equal-width layers, "
                f"whatever their weights' scale: {limits}.")


def _phase_section(config: Config, prediction) -> None:
    hidden = prediction.activations
    names = list(dict.fromkeys(hidden))
    activation = st.selectbox("Activation for the phase diagram", names, key="theory_activation")
    sigma_b2 = prediction.sigma_b2 + prediction.bias_mean**2  # a constant bias b adds b^2 to every q
    markers = [(f"L{i + 1}", float(prediction.sigma_w2[i]), float(sigma_b2[i]))
               for i, name in enumerate(hidden) if name == activation]
    sw2, sb2 = figures.phase_axes([w for _, w, _ in markers], [b for _, _, b in markers])
    chi, critical = _phase(activation, tuple(sw2), tuple(sb2))
    chart(figures.phase_diagram(activation, sw2, sb2, chi, critical, markers), "theory_phase",
          r"Blue: ordered ($\chi_1 < 1$), signals and gradients shrink by about $\chi_1$ per layer. Red: chaotic "
          r"($\chi_1 > 1$), they grow. Each marker is one hidden layer of this network, placed by its own "
          r"$\sigma_w^2 = n_\text{in}\,\mathrm{Var}(W)$.", csv=False,
          help=explain("order / chaos", "chi_1", "sigma_w2"))
    hidden_zero = [label for label, w, _ in markers if w == 0]
    if hidden_zero:
        st.caption(f"{', '.join(hidden_zero)}: " + r"$\sigma_w^2 = 0$ (no random weights) cannot be placed on the "
                   "log axis.")
    _criticality_table(activation, markers, prediction.z_rms**2)


def _layer_span(labels: list[str]) -> str:
    numbers = [int(label[1:]) for label in labels]
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"L{numbers[0]}–L{numbers[-1]}"
    return ", ".join(labels)


def _criticality_table(activation: str, markers: list[tuple[str, float, float]], q: np.ndarray) -> None:
    """q*, chi_1 and Schoenholz et al.'s depth scales for each distinct (sigma_w^2, sigma_b^2) among the layers.

    The map starts from the predicted q of the setting's first layer: where every q is a fixed point (relu with
    sigma_w^2 = 2, no bias), that is the one the layers keep."""
    settings: dict[tuple[float, float], list[str]] = {}
    for label, w, b in markers:
        settings.setdefault((w, b), []).append(label)
    rows = []
    for (w, b), labels in list(settings.items())[:MAX_SETTINGS]:
        try:
            c = _criticality(activation, w, b, float(q[int(labels[0][1:]) - 1]))
        except TheoryError as e:
            st.caption(f"{_layer_span(labels)}: {e}.")
            continue
        rows.append({"layers": _layer_span(labels), "σ_w²": f"{w:.4g}", "σ_b²": f"{b:.3g}",
                     "q*": describe(c.q_star, 6) if math.isfinite(c.q_star) else f"none: {NO_FIXED_POINT}",
                     "χ₁": f"{c.chi_1:.7g}", "phase": c.phase, "ξ_q (layers)": describe(c.xi_q),
                     "ξ_c (layers)": describe(c.xi_c), "6 ξ_c (trainable depth)": describe(c.trainable_depth)})
    if not rows:
        return
    table(rows)
    more = len(settings) - MAX_SETTINGS
    st.caption(("The first layer settings only: " if more > 0 else "") +
               r"each row is what a deep stack of identical layers with that $\sigma_w^2$, $\sigma_b^2$ would do "
               r"(Schoenholz et al. 2017). $q^*$: the variance $q^l$ settles to. $\xi_q$: the number of layers it "
               r"takes to settle. $\xi_c$: the number of layers over which two different inputs' correlation "
               r"settles to its fixed point $c^*$ (1 unless chaotic), so how deep the network still tells inputs "
               r"apart; Schoenholz et al. find networks trainable up to about $6\,\xi_c$ layers. $\infty$: on the "
               "edge of chaos, where both scales diverge.",
               help=explain("q*", "chi_1", "depth scales", "order / chaos"))


def _jacobian_section(config: Config) -> None:
    st.subheader("Dynamical isometry: the Jacobian's singular values", help=explain("dynamical isometry"))
    activation = config.hidden_activations[0]
    left, right = st.columns(2)
    width = left.select_slider("Probe width", JACOBIAN_WIDTHS, value=128, key="theory_jacobian_width")
    depth = right.slider("Probe depth", 2, JACOBIAN_MAX_DEPTH, min(max(len(config.layers), 2), JACOBIAN_MAX_DEPTH),
                         key="theory_jacobian_depth")
    spectra = {}
    for init in dict.fromkeys(("orthogonal", config.init)):
        try:
            spectra[init] = _spectrum(activation, init, width, depth, config.init_scale, config.init_gain,
                                      config.seed)
        except (ConfigError, ValueError, FloatingPointError) as e:
            st.warning(f"No Jacobian for {init}: {escape_markdown(e)}")
    if spectra:
        chart(figures.jacobian_histogram(spectra), "theory_jacobian",
              f"A square {activation} network, {depth} layers of {width} units, {JACOBIAN_INPUTS} random inputs. "
              "Values near 1 carry every direction of the input (and of the gradient) through unchanged; a wide "
              "spread means some directions are amplified and others lost.", csv=False)


def _why() -> None:
    with st.expander("Why? The formulas behind these charts", expanded=False):
        st.markdown(r"**Forward.** Each pre-activation sums $n_\text{in}$ products of a weight and an input. With "
                    r"independent weights of variance $\sigma_w^2 / n_\text{in}$, the second moment $q$ of $Z$ "
                    "follows one map per layer (Poole et al. 2016; Schoenholz et al. 2017):")
        st.latex(r"q^1 = \sigma_{w,1}^2\,\overline{x^2} + \sigma_b^2,\qquad "
                 r"q^l = \sigma_{w,l}^2\ \mathbb{E}_{z\sim\mathcal N(0,1)}\!\left[\phi\!\left(\sqrt{q^{l-1}}\,z\right)^2"
                 r"\right] + \sigma_b^2")
        st.markdown(r"For relu the expectation is $q/2$, so $\sigma_w^2 = 2$ (He) keeps $q$ constant. "
                    r"`randn * 0.01` gives $\sigma_{w,l}^2 = n_{l-1} \cdot 10^{-4}$: 1.2 for 12288 pixels, but "
                    "0.002 for 20 units, so after the first layer the signal shrinks a thousandfold per layer.")
        st.markdown(r"**Order and chaos.** At the fixed point $q^*$ of the map, the slope")
        st.latex(r"\chi_1 = \sigma_w^2\ \mathbb{E}_z\!\left[\phi'\!\left(\sqrt{q^*}\,z\right)^2\right]")
        st.markdown(r"is the factor by which gradients shrink ($\chi_1 < 1$, ordered) or grow ($\chi_1 > 1$, "
                    r"chaotic) per layer. For tanh with no bias the edge $\chi_1 = 1$ is $\sigma_w^2 = 1$; for relu, "
                    r"$\sigma_w^2 = 2$. Schoenholz et al. (2017) define two depth scales from the slopes of the "
                    r"variance map at $q^*$ ($\chi_q$) and of the map of two inputs' correlation $c$ at its stable "
                    r"fixed point $c^*$ ($\chi_{c^*}$: $c^* = 1$ and $\chi_{c^*} = \chi_1$ unless chaotic, where "
                    r"$c^* < 1$):")
        st.latex(r"\xi_q = -\frac{1}{\ln \chi_q},\qquad \xi_c = -\frac{1}{\ln \chi_{c^*}},\qquad "
                 r"\chi_{c^*} = \sigma_w^2\ \mathbb{E}\left[\phi'(u_1)\,\phi'(u_2)\right]_{q^*,\,c^*}")
        st.markdown(r"$\xi_q$ counts the layers over which $q^l$ settles, $\xi_c$ those over which correlations "
                    r"do; networks train up to about $6\,\xi_c$ layers. On the edge of chaos $\xi_c$ is infinite and "
                    "very deep networks still train.")
        st.markdown("**Backward** (Glorot & Bengio 2010; He et al. 2015). The gradient passes the same weights "
                    "transposed and the slope of each activation:")
        st.latex(r"\mathbb{E}[(dZ^l)^2] = \mathbb{E}[(dZ^{l+1})^2]\ n_{l+1}\,\mathrm{Var}(W^{l+1})\ "
                 r"\mathbb{E}[\phi'(Z^l)^2]")
        st.markdown("**Dynamical isometry** (Saxe et al. 2013; Pennington et al. 2017). The Jacobian of the output "
                    "with respect to the input is a product of one matrix per layer:")
        st.latex(r"J = \prod_{l} D^l W^l,\qquad D^l = \mathrm{diag}\,\phi'(Z^l)")
        st.markdown("Orthogonal weights keep every singular value of a linear network at exactly 1, at any depth; "
                    "Gaussian weights spread them further with every layer, even when their average is right.")
    with st.expander("Glossary: the words these tabs use", expanded=False):
        st.markdown(glossary_markdown())
