"""The verdict: what the statistics at initialisation say about whether this network will learn, in words.

Teaching text computed from the engine's numbers, for any config (nothing is written per preset): the dashboard
shows it above its charts and ``python -m core probe`` prints it. `verdict` reads one probe's `Snapshot` (and,
optionally, the probes of the same network with Xavier and He weights, `REFERENCE_INITS`); `probe_verdict` runs
all of them. Every number in a finding's text is also in its ``values``, so a test (or a program) can check the
text against the statistics.

Thresholds, and why:

- ``FLAT_OUTPUT_STD = 0.01``: sigmoid'(0) = 1/4, so an output Z of std s gives probabilities 0.5 +- s/4. Below
  0.01 every example's probability is within 0.0025 of 0.5 (softmax: within 1% of 1/K): the output does not depend
  on the input, the cost is ln 2 (ln K), and gradient descent first moves the output bias towards the class balance,
  so the network predicts the majority class of its training set.
- ``SATURATED_OUTPUT_STD = 5``: sigmoid(5) = 0.993. With a typical |Z| beyond 5 the outputs are near-certain 0 or 1,
  about half of them wrong, and each wrong one costs about |Z| (the course's ×10 circles start at a cost of 1774).
- ``SIGNAL_BAND = (0.1, 10)``: the std of Z from the first to the output layer may change by at most a factor 10
  before we call the signal vanishing or exploding; ``SIGNAL_DRIFT = (0.5, 2)`` marks a drift worth a warning. A
  per-layer factor f compounds to f^L: Xavier with relu (f = 1/sqrt 2) is harmless over 3 layers and a collapse
  over 30 (He et al. 2015).
- ``GRADIENT_BAND = (0.01, 100)``: the std of dZ at layer 1 against the output layer's. Beyond a factor 100 one
  learning rate cannot suit both ends: it moves the first layer 100 times slower (or faster) than the last.
- ``DEAD_FRACTION = 0.9``: a relu layer at initialisation zeroes about half its values (its Z is symmetric about 0);
  with nine in ten at exactly 0 only one value in ten passes a gradient.
- ``SATURATED_FRACTION = 0.2``: tanh/sigmoid values in their flat part (|tanh| > 0.99) pass a gradient at most 2%
  of the slope at 0. Xavier tanh has under 1% there, std-1 weights 90%; one value in five is already a layer
  whose gradient is cut by a fifth or more.
- ``UPDATE_RATIO_GUIDE = 1e-3``: Karpathy's rule of thumb for ||lr dW|| / ||W||; the verdict quotes layer 1's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from .config import Config
from .limits import Limits
from .measures import (Baseline, Reference, baseline, beats, examples_above, final_accuracy, gradient_ratio,
                       identical_units, reference, reference_configs, signal_factor, signal_layers)
from .network import Network
from .normtheory import batchnorm_gradient_factor, gradient_growth
from .stats import Snapshot
from .train import probe

FLAT_OUTPUT_STD = 0.01
SATURATED_OUTPUT_STD = 5.0
SIGNAL_BAND = (0.1, 10.0)
SIGNAL_DRIFT = (0.5, 2.0)
GRADIENT_BAND = (0.01, 100.0)
DEAD_FRACTION = 0.9
SATURATED_FRACTION = 0.2
UPDATE_RATIO_GUIDE = 1e-3
OK, WARNING, PROBLEM = "ok", "warning", "problem"  # a finding's severity, mildest first
# What the start promises: STUCK when gradient descent cannot get past the majority class (units that stay
# identical, an output that ignores the input); SLOW when a problem only holds it back (a saturated start, dead or
# saturated layers, gradients that vanish or explode: the course's ×10 circles reach 86% after 15,000 steps).
LEARNS, SLOW, STUCK = "learns", "slow", "stuck"
SEVERITY_ORDER = (OK, WARNING, PROBLEM)


def number(x: float) -> str:
    """A figure as the text prints it: 3 significant digits, powers of ten written short (4.4e-6, not 4.4e-06)."""
    if not math.isfinite(x):
        return "∞" if x > 0 else "-∞" if x < 0 else "undefined"
    if x == 0:
        return "0"
    if 100 <= abs(x) < 1e4:
        return f"{x:.0f}"
    if 1e-3 <= abs(x) < 100:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def factor(x: float) -> str:
    """A ratio as "×0.021 (÷48)" when it shrinks, "×16" when it grows (or barely shrinks)."""
    if 0 < x < 0.9:  # near 1 the inverse adds nothing
        return f"×{number(x)} (÷{number(1 / x)})"
    return f"×{number(x)}"


@dataclass(frozen=True)
class Finding:
    """One observation: its kind, how bad it is, a sentence, and the figures that sentence quotes."""

    kind: str  # "symmetry", "signal", "output", "dead", "saturated", "gradient", "architecture", "comparison",
    # "outcome"
    severity: str  # OK, WARNING or PROBLEM
    text: str
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    headline: str
    severity: str  # the worst finding's
    prognosis: str  # LEARNS, SLOW or STUCK
    findings: tuple[Finding, ...]
    baseline: Baseline
    references: tuple[Reference, ...]  # the chosen initialiser first, then REFERENCE_INITS probed on the same net

    def lines(self) -> list[str]:
        return [self.headline, *(f"- {f.text}" for f in self.findings)]

    def to_dict(self) -> dict:
        return _finite(asdict(self))

    def finding(self, kind: str) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)


def _finite(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _layers(indices) -> str:
    names = [str(i + 1) for i in indices]
    return ("layer " if len(names) == 1 else "layers ") + (", ".join(names[:-1]) + " and " + names[-1]
                                                         if len(names) > 1 else names[0])


def _init_name(config: Config) -> str:
    return f"{config.init} ×{number(config.init_scale)}" if config.init in ("normal", "uniform",
                                                                             "truncated_normal") else config.init


# --- the findings ------------------------------------------------------------------------------------------------
def _symmetry(network: Network, snapshot: Snapshot, identical: tuple[bool, ...]) -> Finding | None:
    # a residual block's units differ in their gradient (the skip brings each its own), so zeroed branches part
    layers = [i for i, same in enumerate(identical) if same and not network.is_block(i)]
    if not layers:
        return None
    z_std = snapshot.stats["z_std"]
    zero = [i for i in layers if z_std[i] == 0]
    detail = ("; their std of Z is exactly 0" if len(zero) == len(layers)
              else f" (std of Z {', '.join(number(z_std[i]) for i in layers)})")
    return Finding("symmetry", PROBLEM,
                   f"All units identical in {_layers(layers)}{detail}: every unit gets the same gradient, so the "
                   "symmetry is never broken and each such layer learns no more than one unit would.",
                   {"layers": [i + 1 for i in layers], "z_std": [float(z_std[i]) for i in layers]})


def _signal(snapshot: Snapshot) -> Finding | None:
    z = signal_layers(snapshot.stats["z_std"])
    f = signal_factor(snapshot.stats["z_std"])
    if not math.isfinite(f):
        return None
    total = float(z[-1] / z[0])
    span = f"the std of Z goes from {number(z[0])} at layer 1 to {number(z[-1])} at layer {len(z)}"
    values = {"factor": f, "total": total, "first": float(z[0]), "last": float(z[-1]), "last_layer": len(z)}
    if not SIGNAL_BAND[0] <= total <= SIGNAL_BAND[1]:
        trend = "fades" if f < 1 else "explodes"
        return Finding("signal", PROBLEM, f"The signal {trend} {factor(f)} per layer: {span}, {factor(total)} in all.",
                       values)
    if not SIGNAL_DRIFT[0] <= total <= SIGNAL_DRIFT[1]:
        trend = "shrinks" if f < 1 else "grows"
        return Finding("signal", WARNING, f"The signal {trend} a little, {factor(f)} per layer: {span}.", values)
    return Finding("signal", OK, f"The signal keeps its scale ({factor(f)} per layer): {span}.", values)


def _output(network: Network, snapshot: Snapshot, base: Baseline) -> Finding:
    s = snapshot.stats
    std = float(s["z_std"][-1])
    k = network.dims[-1]
    chance = "ln 2 = 0.693" if k == 1 else f"ln {k} = {number(math.log(k))}"
    values = {"z_std": std, "loss": float(snapshot.loss), "majority_accuracy": base.accuracy}
    if std < FLAT_OUTPUT_STD:
        squash = "sigmoid(≈0) = 0.5" if k == 1 else f"softmax(≈0) = 1/{k} per class"
        return Finding("output", PROBLEM,
                       f"The output layer's std of Z is {number(std)}: {squash} for every example, whatever the input "
                       f"(cost {number(snapshot.loss)}, {chance}). Gradient descent first learns the class balance, "
                       f"so the network predicts the majority class ({base.label}) for everything: "
                       f"{base.correct}/{base.total} = {base.accuracy:.0%} on the {base.split} set.", values)
    if std > SATURATED_OUTPUT_STD:
        return Finding("output", PROBLEM,
                       f"The output layer's std of Z is {number(std)}: the outputs are near-certain 0s and 1s, about "
                       f"half of them wrong, so the cost starts at {number(snapshot.loss)} instead of {chance}.",
                       values)
    return Finding("output", OK, f"The output layer's std of Z is {number(std)}: the outputs depend on the input "
                   f"(cost {number(snapshot.loss)}; {chance} is a guess).", values)


def _shares(shares: list[float]) -> str:
    """"100%" when every layer has the same share, else each one's (the first four)."""
    text = {f"{v:.0%}" for v in shares}
    if len(text) == 1:
        return text.pop()
    return ", ".join(f"{v:.0%}" for v in shares[:4]) + (", …" if len(shares) > 4 else "")


def _units(network: Network, snapshot: Snapshot) -> list[Finding]:
    s = snapshot.stats
    hidden = range(network.depth - 1)
    out = []
    dead = [i for i in hidden if s["dead_fraction"][i] >= DEAD_FRACTION]
    if dead:
        shares = [float(s["dead_fraction"][i]) for i in dead]
        out.append(Finding("dead", PROBLEM, f"Dead: {_layers(dead)} output exactly 0 for "
                           f"{_shares(shares)} of their values, which pass no gradient.",
                           {"layers": [i + 1 for i in dead], "fractions": shares}))
    saturated = [i for i in hidden if s["saturated_fraction"][i] >= SATURATED_FRACTION]
    if saturated:
        shares = [float(s["saturated_fraction"][i]) for i in saturated]
        out.append(Finding("saturated", PROBLEM, f"Saturated: {_layers(saturated)} have {_shares(shares)} of their "
                           "values in the activation's flat part, where almost no gradient passes.",
                           {"layers": [i + 1 for i in saturated], "fractions": shares}))
    return out


def _gradient(config: Config, snapshot: Snapshot) -> Finding | None:
    s = snapshot.stats
    dz, dw = s["dz_std"], s["dw_norm"]
    if len(dz) < 2:
        return None
    ratio = gradient_ratio(dz)
    update = float(s["update_ratio"][0])
    values = {"ratio": ratio, "first_dz_std": float(dz[0]), "output_dz_std": float(dz[-1]),
              "first_dw_norm": float(dw[0]), "output_dw_norm": float(dw[-1]), "first_update_ratio": update}
    pace = (f" One gradient-descent step (lr {number(config.lr)}) would change W¹ by {number(update)} of its size "
            f"({number(UPDATE_RATIO_GUIDE)} is a healthy pace)." if math.isfinite(update) else "")
    where = (f"std of dZ {number(float(dz[-1]))} at the output, {number(float(dz[0]))} at layer 1 "
             f"(‖dW‖ {number(float(dw[-1]))} and {number(float(dw[0]))})")
    if dz[0] == 0:
        return Finding("gradient", PROBLEM, f"No gradient reaches layer 1: {where}.{pace}", values)
    if ratio < GRADIENT_BAND[0]:
        return Finding("gradient", PROBLEM, f"Vanishing gradients: {where}, {factor(ratio)} on the way back."
                       + pace, values)
    if ratio > GRADIENT_BAND[1]:
        return Finding("gradient", PROBLEM, f"Exploding gradients: {where}, {factor(ratio)} on the way back."
                       + pace, values)
    return Finding("gradient", OK, f"Gradients reach layer 1: {where}, {factor(ratio)} on the way back.", values)


def _architecture(network: Network, snapshot: Snapshot) -> Finding | None:
    """What normalisation or skips do to this network's signal and gradient, from the probe's figures."""
    s, hidden = snapshot.stats, network.depth - 1
    if network.plain or hidden < 2:
        return None
    z, dz, a = (np.asarray(s[k][:hidden], float) for k in ("z_std", "dz_std", "a_std"))
    if network.norm != "none":
        pre = np.asarray(s["z_pre_std"][:hidden], float)
        growth = gradient_growth(s["dz_std"]) if network.norm == "batch" else math.nan
        values = {"pre_first": float(pre[0]), "pre_last": float(pre[-1]), "z_min": float(z.min()),
                  "z_max": float(z.max()), "gradient_growth": growth}
        text = (f"{network.norm.capitalize()} norm rescales every hidden layer: its std of Z before normalising goes "
                f"from {number(pre[0])} at layer 1 to {number(pre[-1])} at layer {hidden}, after it stays between "
                f"{number(z.min())} and {number(z.max())}.")
        if math.isfinite(growth):
            expected = batchnorm_gradient_factor(network.activations[0])
            text += (f" Back through the normalised layers the gradient grows {factor(growth)} per layer (Yang et al. "
                     f"2019: ×{number(expected)} for {network.activations[0]} in a large batch).")
        held = 0.5 <= z.min() and z.max() <= 2.0
        return Finding("architecture", OK if held else WARNING, text if held else text + " Where the weights are so "
                       "small that Z's spread is near ε = 1e-5, batch norm cannot restore it.", values)
    per_block = float((a[-1] / a[0]) ** (1 / (hidden - 1))) if a[0] > 0 else math.nan
    values = {"a_first": float(a[0]), "a_last": float(a[-1]), "per_block": per_block, "dz_first": float(dz[0]),
              "dz_top": float(dz[-1])}
    text = (f"Residual blocks (α = {number(network.residual_scale)}): the std of A goes from {number(a[0])} after "
            f"layer 1 to {number(a[-1])} after layer {hidden} ({factor(per_block)} per block), and the skips carry "
            f"the gradient down: std of dZ {number(dz[-1])} at layer {hidden}, {number(dz[0])} at layer 1.")
    grows = a[-1] > SIGNAL_BAND[1] * a[0] or dz[0] > GRADIENT_BAND[1] * dz[-1]
    return Finding("architecture", WARNING if grows else OK, text + (" They add up: a smaller α (1/√depth) or "
                   "zero-initialised branches keep the sum bounded." if grows else ""), values)


def _comparison(chosen: Reference, others: tuple[Reference, ...]) -> Finding | None:
    if not others:
        return None
    cells = "; ".join(f"{r.init} {number(r.output_z_std)}, {factor(r.gradient_ratio)}" for r in others)
    return Finding("comparison", OK,
                   f"On this network (output std of Z; gradient from the output to layer 1): yours, {chosen.init}, "
                   f"{number(chosen.output_z_std)}, {factor(chosen.gradient_ratio)}; {cells}.",
                   {r.init: [r.output_z_std, r.gradient_ratio] for r in (chosen, *others)})


def _headline(findings: list[Finding], base: Baseline) -> str:
    by_kind = {f.kind: f for f in findings}
    output, signal, gradient = by_kind.get("output"), by_kind.get("signal"), by_kind.get("gradient")
    if "symmetry" in by_kind:
        return "Will not learn: its units start identical and stay identical (the symmetry is never broken)."
    if output and output.severity == PROBLEM and output.values["z_std"] < FLAT_OUTPUT_STD:
        how = f"the signal fades {factor(signal.values['factor'])} per layer, " if signal else ""
        return (f"Will predict the majority class: {how}the output's std of Z is {number(output.values['z_std'])}, "
                f"so every example gets the same answer ({base.accuracy:.0%} on the {base.split} set).")
    if output and output.severity == PROBLEM:
        return (f"Starts saturated, so it learns slowly: the output's std of Z is {number(output.values['z_std'])}, "
                f"its predictions confident and half wrong (cost {number(output.values['loss'])}).")
    worst = [f for f in findings if f.severity == PROBLEM]
    if worst:
        return "Will learn slowly, if at all: " + worst[0].text[0].lower() + worst[0].text[1:]
    if signal and gradient:
        healthy = "Healthy" if all(f.severity == OK for f in findings) else "Should learn"
        spread = max(signal.values["total"], 1 / signal.values["total"])
        return (f"{healthy}: the std of Z stays within a factor {number(spread)} of layer 1's "
                f"({factor(signal.values['factor'])} per layer) and the gradient reaches layer 1 "
                f"({factor(gradient.values['ratio'])}).")
    return "Should learn: nothing at initialisation stands in the way."


def verdict(network: Network, config: Config, snapshot: Snapshot, base: Baseline,
            references: Mapping[str, Snapshot] | None = None,
            identical: tuple[bool, ...] | None = None) -> Verdict:
    """The verdict on one probe (or a run's step-0 snapshot). `references`: the same network's probes with other
    initialisers, by name; `identical`: `identical_units` of the initial parameters (None: only layers whose std
    of Z is exactly 0, with more than one unit, count as identical)."""
    if identical is None:
        identical = tuple(bool(network.dims[i + 1] > 1 and snapshot.stats["z_std"][i] == 0)
                          for i in range(network.depth))
    chosen = reference(_init_name(config), snapshot)
    others = tuple(reference(name, snap) for name, snap in (references or {}).items())
    findings = [f for f in (_symmetry(network, snapshot, identical), _signal(snapshot),
                            _output(network, snapshot, base), *_units(network, snapshot),
                            _gradient(config, snapshot), _architecture(network, snapshot),
                            _comparison(chosen, others)) if f is not None]
    severity = max((f.severity for f in findings), key=SEVERITY_ORDER.index, default=OK)
    return Verdict(_headline(findings, base), severity, _prognosis(findings), tuple(findings), base,
                   (chosen, *others))


def _prognosis(findings: list[Finding]) -> str:
    by_kind = {f.kind: f for f in findings}
    output = by_kind.get("output")
    if "symmetry" in by_kind or (output and output.values["z_std"] < FLAT_OUTPUT_STD):
        return STUCK
    return SLOW if any(f.severity == PROBLEM for f in findings) else LEARNS


def probe_verdict(config: Config, dataset, limits: Limits = Limits()) -> tuple[Network, Snapshot, Verdict]:
    """Probe the config and its references on the dataset: the network, its probe, and the verdict."""
    network, params, snapshot = probe(config, dataset, limits)
    references = {name: probe(c, dataset, limits)[2] for name, c in reference_configs(config).items()}
    return network, snapshot, verdict(network, config, snapshot, baseline(dataset), references,
                                      identical_units(params))


def outcome(base: Baseline, final: Snapshot, chance: float) -> Finding:
    """What a trained run's final accuracy says next to the majority-class baseline (`chance`: `chance_cost`)."""
    accuracy = final_accuracy(base, final)
    gain = accuracy - base.accuracy
    values = {"accuracy": float(accuracy), "majority_accuracy": base.accuracy, "loss": float(final.loss)}
    where = f"after {final.step:,} steps, {base.split} accuracy {accuracy:.0%}"
    cost = f"cost {number(final.loss)} (a guess costs {number(chance)})"
    if not beats(base, accuracy):
        return Finding("outcome", PROBLEM, f"Learned nothing beyond the class balance: {where}, no better than always "
                       f"answering {base.label} ({base.accuracy:.0%}); {cost}.", values)
    return Finding("outcome", OK, f"Learned: {where}, {gain * 100:.0f} points above always answering {base.label} "
                   f"({base.accuracy:.0%}); {cost}.", values)


def cause(v: Verdict) -> str:
    """The verdict's main reason in a few words with its figure, for one line of a comparison."""
    by_kind = {f.kind: f for f in v.findings}
    if "symmetry" in by_kind:
        return "units identical (std of Z = 0): symmetry never broken"
    output = by_kind["output"]
    if output.severity == PROBLEM:
        return (f"output std of Z {number(output.values['z_std'])}: "
                + ("same answer for every example" if output.values["z_std"] < FLAT_OUTPUT_STD else "saturated"))
    for kind in ("dead", "saturated", "gradient", "signal"):
        f = by_kind.get(kind)
        if f is not None and f.severity == PROBLEM:
            return f.text.split(":")[0].lower() + (f" ({factor(f.values['ratio'])} to layer 1)" if kind == "gradient"
                                                   else "")
    gradient = by_kind.get("gradient")
    return (f"output std of Z {number(output.values['z_std'])}, gradient {factor(gradient.values['ratio'])} to layer 1"
            if gradient else f"output std of Z {number(output.values['z_std'])}")


def learns(v: Verdict, final: Snapshot | None) -> bool:
    """Whether a run learns: once trained, its final accuracy beats the majority-class baseline by at least one
    example; before that, whether its start lets it get past the majority class (slowly or not)."""
    if final is None:
        return v.prognosis != STUCK
    return beats(v.baseline, final_accuracy(v.baseline, final))


def compare_line(label: str, v: Verdict, final: Snapshot | None) -> str:
    """One run of a comparison: whether it learns (once trained: its accuracy against the baseline) and why."""
    if final is None:
        expected = {LEARNS: "should learn", SLOW: "should learn, slowly", STUCK: "should not learn"}[v.prognosis]
        return f"{label}: {expected} — {cause(v)}."
    base = v.baseline
    accuracy = final_accuracy(base, final)
    result = (f"learns ({accuracy:.0%} vs {base.accuracy:.0%} for the majority class)" if beats(base, accuracy) else
              f"does not learn ({accuracy:.0%} = always {base.label})" if abs(examples_above(base, accuracy)) < 0.5
              else f"does not learn ({accuracy:.0%}, below always {base.label}: {base.accuracy:.0%})")
    return f"{label}: {result} — {cause(v)}."
