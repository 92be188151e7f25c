"""The figures a verdict is made of, measured from a probe's statistics: the majority-class baseline, the signal's
per-layer factor, the gradient's ratio from the output to layer 1, units that start identical, and the probes of
the same network with the reference initialisers. The verdict (verdict.py) judges them and puts them in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import Config
from .network import Network, Params
from .stats import Snapshot

REFERENCE_INITS = ("xavier_normal", "he_normal")  # what the chosen initialiser is compared with


@dataclass(frozen=True)
class Reference:
    """The figures that compare initialisers on one network: output std of Z, dZ^1 / dZ^L, per-layer signal factor."""

    init: str
    output_z_std: float
    gradient_ratio: float
    signal_factor: float


@dataclass(frozen=True)
class Baseline:
    """Always answering the training set's most common class: that class and its accuracy on the test labels
    (on the training labels when there is no test split)."""

    label: str
    accuracy: float
    correct: int
    total: int
    split: str  # "test" or "training"



def baseline(dataset) -> Baseline:
    """The majority-class baseline: what a network that learned only the class balance scores."""
    counts = np.bincount(dataset.y_train.ravel(), minlength=len(dataset.classes))
    majority = int(np.argmax(counts))
    split, labels = ("test", dataset.y_test) if dataset.y_test.size else ("training", dataset.y_train)
    correct = int(np.sum(labels == majority))
    return Baseline(dataset.classes[majority], correct / labels.size, correct, int(labels.size), split)


def signal_layers(z_std) -> np.ndarray:
    """The stds of Z whose trend the verdict reads: the hidden layers', when there are two or more. The output
    layer is judged on its own: with one unit its std over the examples leaves out what every example shares (a
    deep relu net's 30 hidden layers at std 1.2-1.6 can end in an output std of 0.09)."""
    z = np.asarray(z_std, dtype=float)
    return z[:-1] if len(z) >= 3 else z


def signal_factor(z_std) -> float:
    """The geometric mean of the ratios std(Z^{l+1}) / std(Z^l) over `signal_layers`: (last / first)^(1/(n-1)).
    NaN when a std is 0 (no ratio) or there is one layer."""
    z = signal_layers(z_std)
    if len(z) < 2 or z[0] <= 0 or z[-1] <= 0:
        return math.nan
    return float((z[-1] / z[0]) ** (1.0 / (len(z) - 1)))


def gradient_ratio(dz_std) -> float:
    """std(dZ^1) / std(dZ^L): how much of the output's gradient reaches the first layer (NaN if the output's is 0)."""
    dz = np.asarray(dz_std, dtype=float)
    return float(dz[0] / dz[-1]) if dz[-1] > 0 else math.nan


def identical_units(params: Params) -> tuple[bool, ...]:
    """Per layer: every unit has the same weights and bias. Gradient descent then gives them the same update, so
    they stay copies of one unit for ever (the symmetry is never broken). A one-unit layer is never flagged."""
    return tuple(bool(W.shape[0] > 1 and np.all(W == W[:1]) and np.all(b == b[:1])) for W, b in zip(params.W, params.b))


def reference(init: str, snapshot: Snapshot) -> Reference:
    s = snapshot.stats
    return Reference(init, float(s["z_std"][-1]), gradient_ratio(s["dz_std"]), signal_factor(s["z_std"]))




def reference_configs(config: Config) -> dict[str, Config]:
    """The configs the chosen initialiser is compared with: the same network and seed with each of REFERENCE_INITS
    that is not the chosen one."""
    return {name: config.replace(init=name) for name in REFERENCE_INITS if name != config.init}




def chance_cost(network: Network) -> float:
    """The cost of a guess that ignores the input: ln 2 for a sigmoid output, ln K for K classes."""
    return math.log(max(network.dims[-1], 2))


def final_accuracy(base: Baseline, final: Snapshot) -> float:
    """A trained run's accuracy on the split its baseline is measured on."""
    return final.test_accuracy if base.split == "test" else final.train_accuracy


def examples_above(base: Baseline, accuracy: float) -> float:
    """How many more examples an accuracy gets right than always answering the majority class."""
    return (accuracy - base.accuracy) * base.total


def beats(base: Baseline, accuracy: float) -> bool:
    """At least one example better than always answering the majority class (half an example: rounding)."""
    return examples_above(base, accuracy) >= 0.5
