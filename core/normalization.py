"""Batch and layer normalisation of a hidden layer's pre-activation Z (units x examples), forward and backward.

Batch norm (Ioffe & Szegedy 2015) normalises each unit over the examples of the batch; layer norm (Ba et al. 2016)
each example over its units. Both then scale and shift per unit: Y = gamma * X_hat + beta, with gamma = 1 and
beta = 0 at initialisation, as torch.nn.BatchNorm1d(n) and torch.nn.LayerNorm(n) (tests/test_normalization.py
checks them against PyTorch). Batch norm evaluates with running averages of the batch statistics
(`update_running_stats`: PyTorch's momentum 0.1, and its unbiased variance), so that a test example's output does
not depend on the others beside it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

Array = np.ndarray

NORM_EPS = 1e-5  # added to the variance: PyTorch's default for both norms
RUNNING_MOMENTUM = 0.1  # running = (1 - momentum) running + momentum batch, as PyTorch's BatchNorm1d


def norm_axis(kind: str) -> int:
    """The axis a norm averages over: examples (1, the columns) for batch norm, units (0, the rows) for layer."""
    return 1 if kind == "batch" else 0


class Normalized(NamedTuple):
    """What the backward pass and the statistics need of one normalisation."""

    z: Array  # the pre-normalisation Z = W A + b
    x_hat: Array  # (Z - mean) * inv_std
    inv_std: Array  # 1 / sqrt(var + eps): (n, 1) for batch norm, (1, m) for layer norm
    mean: Array | None  # the batch statistics, for `update_running_stats` (None when normalised with running ones)
    var: Array | None  # biased, as used to normalise


def normalize(kind: str, z: Array, gamma: Array, beta: Array, running: tuple[Array, Array] | None = None
              ) -> tuple[Array, Normalized]:
    """Y = gamma * X_hat + beta, and what backward needs. ``running`` = (mean, var) normalises with those instead
    of the batch's own statistics (batch norm's evaluation)."""
    if running is not None:
        mean, var = running
        inv_std = 1.0 / np.sqrt(var + z.dtype.type(NORM_EPS))
        x_hat = (z - mean) * inv_std
        return gamma * x_hat + beta, Normalized(z, x_hat, inv_std, None, None)
    axis = norm_axis(kind)
    mean = z.mean(axis=axis, keepdims=True)
    centred = z - mean
    var = np.mean(centred * centred, axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + z.dtype.type(NORM_EPS))
    x_hat = centred
    x_hat *= inv_std
    return gamma * x_hat + beta, Normalized(z, x_hat, inv_std, mean, var)


def normalize_backward(kind: str, dy: Array, cached: Normalized, gamma: Array) -> tuple[Array, Array, Array]:
    """dZ (pre-normalisation), dgamma and dbeta from dY, the gradient at Y.

    dY is per example, as every dZ of the engine (m times the gradient of the mean cost), so dZ is too, and dgamma,
    dbeta are the gradients of the mean cost (summed over examples and divided by m). With g = gamma * dY:
    dZ = inv_std * (g - mean(g) - X_hat * mean(g * X_hat)), means over the normalised axis; with the running
    statistics (evaluation) the mean and variance are constants, and dZ = inv_std * g.
    """
    m = dy.shape[1]
    dgamma = np.sum(dy * cached.x_hat, axis=1, keepdims=True) / m
    dbeta = dy.sum(axis=1, keepdims=True) / m
    g = dy * gamma
    if cached.mean is None:
        return g * cached.inv_std, dgamma, dbeta
    axis = norm_axis(kind)
    dz = g - g.mean(axis=axis, keepdims=True)
    dz -= cached.x_hat * np.mean(g * cached.x_hat, axis=axis, keepdims=True)
    dz *= cached.inv_std
    return dz, dgamma, dbeta


def update_running_stats(running_mean: Array, running_var: Array, cached: Normalized) -> None:
    """Batch norm's running averages after one training batch, in place, as PyTorch: the mean's, and the
    unbiased variance's (m / (m - 1) times the one used to normalise)."""
    m = cached.z.shape[1]
    momentum = running_mean.dtype.type(RUNNING_MOMENTUM)
    keep = running_mean.dtype.type(1.0 - RUNNING_MOMENTUM)
    running_mean *= keep
    running_mean += momentum * cached.mean
    running_var *= keep
    running_var += (momentum * m / (m - 1)) * cached.var
