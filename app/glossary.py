"""The words the dashboard uses, each with one line of help, in one place: the hover help (`help=`) of the widgets,
captions and headings that use them, and the Theory tab's glossary. Markdown with $...$ math, which Streamlit
typesets in tooltips as in text (written here, never from a user). No Streamlit here."""

from __future__ import annotations

from typing import NamedTuple


class Term(NamedTuple):
    name: str  # as the page shows it (Markdown, $...$ math)
    line: str  # one line of help


GLOSSARY: dict[str, Term] = {
    "Z, A": Term("$Z$, $A$", r"$Z = W A_\text{prev} + b$ is a layer's pre-activation, $A = \phi(Z)$ its activation: "
                             "what the next layer receives."),
    "dZ": Term("$dZ$", "The gradient of the cost with respect to a layer's $Z$, which back-propagation hands each "
                       "layer: if it shrinks towards layer 1, the early layers barely learn (vanishing gradients)."),
    "dW norm": Term(r"$\lVert dW \rVert$", "The size (Frobenius norm) of a layer's weight gradient: how hard gradient "
                                           "descent pulls on its weights."),
    "update-to-weight ratio": Term(
        "update-to-weight ratio", r"$\lVert \alpha\, dW \rVert / \lVert W \rVert$: how far one step moves a "
        r"layer's weights relative to their size. About $10^{-3}$ is a healthy pace; far below, the layer is frozen."),
    "dead unit": Term("dead unit", "A relu unit whose output is exactly 0 for an example: it passes no gradient back "
                                   "for it."),
    "saturated unit": Term("saturated unit", "A tanh or sigmoid unit on the flat part of its curve: its slope, and so "
                                             "the gradient it passes back, is almost 0."),
    "mean-field": Term("mean-field theory", "Predicts each layer's statistics as the average over random weight draws "
                                            "of a wide network, before anything is measured (Poole et al. 2016): the "
                                            "dashed lines."),
    "sigma_w2": Term(r"$\sigma_w^2$", r"$n_\text{in} \cdot \mathrm{Var}(W)$: a layer's weight variance times its "
                                      r"number of inputs. $\sigma_w^2 = 1$ keeps the signal of a linear or tanh "
                                      r"layer, $\sigma_w^2 = 2$ (He) that of a relu layer."),
    "sigma_b2": Term(r"$\sigma_b^2$", "The variance of the biases (a constant bias $b$ counts as $b^2$)."),
    "q": Term("$q$", "The second moment of a layer's pre-activations $Z$ (its spread, squared); mean-field theory "
                     "maps $q$ from one layer to the next."),
    "q*": Term("$q^*$", "The fixed point of that map: the $q$ that deep layers settle to, whatever the input's."),
    "chi_1": Term(r"$\chi_1$", r"$\sigma_w^2\, \mathbb{E}[\phi'(Z)^2]$ at $q^*$: the factor by which a small change of "
                               "a layer's input, and the gradient going back, grows or shrinks per layer."),
    "order / chaos": Term("order and chaos", r"Ordered ($\chi_1 < 1$): inputs become alike with depth and gradients "
                                             r"vanish. Chaotic ($\chi_1 > 1$): nearby inputs fly apart and gradients "
                                             r"explode. The edge of chaos, $\chi_1 = 1$, trains deepest."),
    "depth scales": Term(r"$\xi_q$, $\xi_c$", r"The layers over which $q$ settles ($\xi_q$) and over which two "
                                              r"inputs' correlation settles ($\xi_c$); networks train up to about "
                                              r"$6\,\xi_c$ layers (Schoenholz et al. 2017)."),
    "dynamical isometry": Term("dynamical isometry", "Every singular value of the input-output Jacobian near 1: every "
                                                     "direction of the input, and of the gradient, passes through all "
                                                     "the layers unchanged (Saxe et al. 2013)."),
}


def explain(*keys: str) -> str:
    """Hover help for these terms (GLOSSARY keys), one paragraph each: the term in bold, its line."""
    return "\n\n".join(f"**{GLOSSARY[key].name}**: {GLOSSARY[key].line}" for key in keys)


def glossary_markdown() -> str:
    """The whole glossary as a Markdown list."""
    return "\n".join(f"- **{term.name}**: {term.line}" for term in GLOSSARY.values())
