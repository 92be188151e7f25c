"""A step's numbers: the measured value of its answer, and what the theory predicts beside it. No Streamlit.

The measured value comes from the step's run (its snapshots), except the Jacobian's spread, measured on the step's
initialiser by core.theory.jacobian_singular_values. The predictions are core/theory.py's mean-field numbers for
the same config and data, and core/criticality.py's order-and-chaos numbers for its hidden layers.
"""

from __future__ import annotations

import math

import numpy as np

from app.lessons.model import JACOBIAN, Measure
from core.config import Config
from core.criticality import criticality, describe
from core.meanfield import TheoryError
from core.theory import jacobian_singular_values, predict_for

PREDICTED = {"z_std": "z_std", "a_std": "a_std", "dz_std": "dz_std"}  # measures the mean field predicts at step 0
JACOBIAN_INPUTS = 4


def jacobian_spectrum(config: Config) -> np.ndarray:
    """The singular values of the input-output Jacobian of the config's hidden layers (one width, one activation),
    drawn by its initialiser (a lesson's config is checked to be square: app/lessons/model.py)."""
    return jacobian_singular_values(config.hidden_activations[0], config.init, config.layers[0], len(config.layers),
                                    scale=config.init_scale, gain=config.init_gain, n_inputs=JACOBIAN_INPUTS,
                                    seed=config.seed)


def spread(singular_values: np.ndarray) -> float:
    """90th over 10th percentile: 1 for an isometry; robust to the few values rounding makes 0 or 1e-19."""
    low, high = np.percentile(singular_values, [10, 90])
    return float(high / low) if low > 0 else math.inf


def measured(measure: Measure, config: Config, snapshots) -> float:
    if measure.quantity in JACOBIAN:
        return spread(jacobian_spectrum(config))
    return measure.value(snapshots)


def predicted(measure: Measure, config: Config, dataset) -> float | None:
    """The mean-field prediction of the measured value, where the theory makes one (per-layer stds at step 0)."""
    if measure.quantity not in PREDICTED or measure.at != "start":
        return None
    try:
        values = getattr(predict_for(config, dataset), PREDICTED[measure.quantity])
    except TheoryError:
        return None
    value = float(values[measure.layer - 1])
    return value / float(values[measure.relative_to - 1]) if measure.relative_to is not None else value


def order_and_chaos(config: Config, dataset) -> str | None:
    """χ₁, the phase and the depth scale of the config's deeper hidden layers, when they share one activation and one
    σ_w² (the first layer's differs with the input's width); None otherwise."""
    try:
        p = predict_for(config, dataset)
    except TheoryError:
        return None
    hidden = len(config.layers)
    deeper = slice(1, hidden) if hidden > 1 else slice(0, 1)
    sigma_w2, sigma_b2 = p.sigma_w2[deeper], p.sigma_b2[deeper] + p.bias_mean[deeper] ** 2
    if (len(set(p.activations)) > 1 or not sigma_w2.min() > 0 or np.ptp(sigma_w2) > 1e-9 * sigma_w2.max()
            or np.ptp(sigma_b2) > 1e-12):
        return None  # mixed layers have no one phase; sigma_w2 = 0 (zeros) none at all
    c = criticality(p.activations[0], float(sigma_w2[0]), float(sigma_b2[0]))
    scale = f"; depth scale ξ_c = {describe(c.xi_c, 3)} layers" if not math.isnan(c.xi_c) else ""
    return f"σ_w² = {sigma_w2[0]:.3g}, σ_b² = {sigma_b2[0]:.3g}: χ₁ = {c.chi_1:.3g} ({c.phase}){scale}"


def show(value: float | None) -> str:
    """A number for people: 3 significant digits, powers of ten for the very small and very large."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return "∞" if value > 0 else "not a number"
    if value != 0 and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e+").replace("e+", "e")
    return f"{value:.4g}"
