"""Simulated colour-vision deficiency (Machado, Oliveira & Fernandes 2009, severity 1), for tests and screenshots."""

from __future__ import annotations

import numpy as np

DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968],
                         [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])


def _linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def simulate(rgb: np.ndarray, matrix: np.ndarray = DEUTERANOPIA) -> np.ndarray:
    """rgb (..., 3) in 0..255 as a deuteranope sees it (applied in linear light), 0..255 floats."""
    linear = _linear(np.asarray(rgb, dtype=float) / 255.0)
    return _srgb(linear @ matrix.T) * 255.0


def hex_rgb(colour: str) -> np.ndarray:
    colour = colour.lstrip("#")
    return np.array([int(colour[i:i + 2], 16) for i in (0, 2, 4)], dtype=float)
