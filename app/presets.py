"""The dashboard's presets (a starting Config and the initialisers Compare trains) and the named init variants."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Config
from core.data import dataset_names


@dataclass(frozen=True)
class Variant:
    """One setting for Compare: a label, the initialiser, and any architecture fields it also overrides (norm,
    residual...). Raises ConfigError where the network cannot take them (a residual variant on unequal widths)."""

    label: str
    init: str
    scale: float = 0.01
    architecture: tuple[tuple[str, object], ...] = ()

    def apply(self, config: Config) -> Config:
        return config.replace(init=self.init, init_scale=self.scale, **dict(self.architecture))


PLAIN = (("norm", "none"), ("residual", False), ("zero_init_residual", False))
RESIDUAL = (("norm", "none"), ("residual", True), ("residual_scale", 1.0), ("zero_init_residual", False))
BATCH_NORM = (("norm", "batch"), ("residual", False), ("zero_init_residual", False))
DEEP_RESIDUAL_DEPTH = 100  # layers in all: 99 hidden (the server's cap is 100 layers) and the output


def architecture_variants() -> tuple[Variant, ...]:
    """The same bad and good initialiser on a plain, a residual and a batch-normalised stack; and a deep residual
    stack with alpha = 1, alpha = 1/sqrt(L) and zero-initialised branches."""
    out = [Variant(f"{name} · {label}", init, scale, arch)
           for name, arch in (("plain", PLAIN), ("residual", RESIDUAL), ("batch norm", BATCH_NORM))
           for label, init, scale in (("normal ×0.01", "normal", 0.01), ("he_normal", "he_normal", 0.01))]
    small = 1 / DEEP_RESIDUAL_DEPTH**0.5
    out += [Variant("residual α = 1", "xavier_normal", 0.01, RESIDUAL),
            Variant(f"residual α = {small:g} (1/√{DEEP_RESIDUAL_DEPTH})", "xavier_normal", 0.01,
                    RESIDUAL[:2] + (("residual_scale", small), ("zero_init_residual", False))),
            Variant("residual, zero-init branches", "xavier_normal", 0.01, RESIDUAL[:3] + (("zero_init_residual", True),))]
    return tuple(out)


VARIANTS: dict[str, Variant] = {v.label: v for v in (
    Variant("normal ×0.01", "normal", 0.01),
    Variant("normal ×1", "normal", 1.0),
    Variant("normal ×10", "normal", 10.0),
    Variant("course_sqrt", "course_sqrt"),
    Variant("course_he", "course_he"),
    Variant("he_normal", "he_normal"),
    Variant("he_uniform", "he_uniform"),
    Variant("xavier_normal", "xavier_normal"),
    Variant("xavier_uniform", "xavier_uniform"),
    Variant("lecun_normal", "lecun_normal"),
    Variant("orthogonal", "orthogonal"),
    Variant("torch_default", "torch_default"),
    Variant("lsuv", "lsuv"),
    Variant("zeros", "zeros"),
    *architecture_variants(),
)}


NETWORK_FIELDS = ("dataset", "standardize", "layers", "activation", "norm", "residual", "residual_scale",
                  "zero_init_residual")  # what a preset's note is about


@dataclass(frozen=True)
class Preset:
    name: str
    config: Config
    compare: tuple[str, ...]  # VARIANTS labels
    note: str
    forward_only: bool = False  # Compare's point is the picture at step 0; training is optional
    fixed: tuple[str, ...] = NETWORK_FIELDS  # the config fields the note describes

    def describes(self, config: Config) -> bool:
        """Whether the note still describes `config`: the same data and network. The initialiser and the training
        settings may change: comparing them on this network is what the preset is for."""
        return all(getattr(config, f) == getattr(self.config, f) for f in self.fixed)


def _seed_dataset(data_dir) -> str:
    names = dataset_names() if data_dir is None else dataset_names(data_dir)  # None: the repository's data/
    return "catvnoncat" if "catvnoncat" in names else "shapes64"


def presets(data_dir=None) -> dict[str, Preset]:
    """All presets; the seed question uses the course's cat files when they are in data_dir, else shapes64."""
    seed = Config(dataset=_seed_dataset(data_dir), layers=(20, 7, 5), activation="relu", init="normal",
                  init_scale=0.01, rng="legacy", seed=1, lr=0.0075, iterations=2500, record_every=25)
    return {p.name: p for p in (
        Preset("seed question", seed, ("normal ×0.01", "course_sqrt"),
               "The course's 4-layer cat classifier: randn×0.01 gets 34% test accuracy, randn/√n_prev 80%."),
        Preset("course 2 circles",
               Config(dataset="circles", layers=(10, 5), activation="relu", init="course_he", rng="legacy", seed=3,
                      lr=0.01, iterations=15000, record_every=100),  # the course prints every 1000 steps
               ("zeros", "normal ×10", "course_he", "he_normal"),
               "The course's Initialization exercise: zeros never break symmetry, ×10 saturates, He learns. "
               "course_he is the course's He (√(2/n_prev) on every layer, output too: cost 0.883054 at step 0, "
               "0.073579 at 14000, as printed); he_normal is PyTorch's (gain 1 on the sigmoid output: 0.8011 at "
               "step 0, same accuracies). With ×10 the course prints cost inf at step 0 (from probabilities that "
               "round to 0 or 1); Init Lab computes it from the logits: 1773.59."),
        Preset("tanh 10×500",
               Config(dataset="gaussian:500", layers=(500,) * 10, activation="tanh", init="normal", init_scale=0.01,
                      lr=0.01, iterations=200, record_every=10),
               ("normal ×0.01", "normal ×1", "xavier_normal"),
               "CS231n's experiment: std 0.01 collapses to zero, std 1 saturates, Xavier keeps tanh alive.",
               forward_only=True),
        Preset("30-layer ReLU",
               Config(dataset="gaussian:500", layers=(100,) * 30, activation="relu", init="xavier_normal",
                      lr=0.01, iterations=200, record_every=10),
               ("xavier_normal", "he_normal"),
               "He et al. 2015: with ReLU, Xavier halves the variance at every layer; He's 2/n keeps it.",
               forward_only=True),
        Preset("50 layers: plain vs residual vs batch norm",
               Config(dataset="digits", layers=(64,) * 50, activation="relu", init="he_normal", optimizer="adam",
                      lr=0.001, iterations=300, batch_size=128, record_every=10),
               tuple(v.label for v in architecture_variants()[:6]),
               "50 relu layers of 64 units on the digits: the same bad (×0.01) and good (He) initialiser on a plain "
               "stack, with skips (α = 1) and with batch norm on every hidden layer. Does either rescue ×0.01, and "
               "what does each do to the signal and the gradient?", forward_only=True),
        Preset("seed question with batch norm", seed.replace(norm="batch"), ("normal ×0.01", "course_sqrt"),
               "The course's cat classifier with batch norm on every hidden layer: does randn×0.01 still give 34% "
               "(without batch norm it does; randn/√n_prev gives 80%)? Train both to see."),
        Preset(f"{DEEP_RESIDUAL_DEPTH}-layer residual, α = 1 vs 1/√L vs zero-init",
               Config(dataset="digits", layers=(32,) * (DEEP_RESIDUAL_DEPTH - 1), activation="tanh",
                      init="xavier_normal",
                      residual=True, optimizer="adam", lr=0.001, iterations=300, batch_size=128, record_every=10),
               tuple(v.label for v in architecture_variants()[6:]),
               f"{DEEP_RESIDUAL_DEPTH} layers on the digits: 32 tanh units, hidden layers 2–{DEEP_RESIDUAL_DEPTH - 1} "
               "residual blocks A = A + α·tanh(W A + b), Xavier weights. α = 1 lets the skips add up, "
               f"α = 1/√{DEEP_RESIDUAL_DEPTH} keeps the sum bounded, zero-initialised branches start as the identity "
               "(Goyal et al. 2017; Fixup; SkipInit).", forward_only=True),
        Preset("custom", Config(),
               ("normal ×0.01", "course_sqrt", "he_normal", "xavier_normal", "zeros"),
               "Your own settings: change anything in the sidebar.", fixed=()),
    )}


DEFAULT_PRESET = "seed question"


def preset_configs(data_dir=None) -> list[Config]:
    """Every config a preset trains, in the order of the preset list: its own and its Compare initialisers'. The
    run cache keeps their runs; a server probes them as it starts."""
    return list(dict.fromkeys(config for p in presets(data_dir).values()
                              for config in (p.config, *(VARIANTS[label].apply(p.config) for label in p.compare))))
