"""The ``Dataset`` type: train and test splits in the course's layout, read-only, fingerprinted."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np


class DatasetError(ValueError):
    """A dataset could not be loaded. The message names the file, the key and the fix in plain sentences.

    ``file`` and ``key`` repeat those names for a caller that wants to show them separately (either may be None).
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        super().__init__(message)
        self.file = file
        self.key = key


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: a Dataset can be cached and shared without anyone changing it under a fingerprint."""
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test splits in the course layout: X (n_features, m) float64, Y (1, m) int64 class indices.

    The arrays are read-only views. ``image_shape`` is the shape of one example before flattening (None for points
    and plain vectors); ``description`` says in one sentence where the data came from.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    image_shape: tuple[int, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        if len(classes) < 2:
            raise DatasetError(f"dataset {self.name!r}: classes must name at least two classes, got {classes!r}.")
        arrays = {}
        for split in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{split}"))
            y = np.asarray(getattr(self, f"y_{split}"))
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
                raise DatasetError(f"dataset {self.name!r}: x_{split} must be a 2-D float array (n_features, m), "
                                   f"got {x.dtype} {x.shape}.")
            if y.shape != (1, x.shape[1]) or not np.issubdtype(y.dtype, np.integer):
                raise DatasetError(f"dataset {self.name!r}: y_{split} must be an integer array of shape "
                                   f"(1, {x.shape[1]}), got {y.dtype} {y.shape}.")
            if y.size and (y.min() < 0 or y.max() >= len(classes)):
                raise DatasetError(f"dataset {self.name!r}: y_{split} holds labels outside 0..{len(classes) - 1}.")
            arrays[f"x_{split}"] = readonly(x.astype(np.float64, copy=False))
            arrays[f"y_{split}"] = readonly(y.astype(np.int64, copy=False))
        if arrays["x_train"].shape[0] != arrays["x_test"].shape[0]:
            raise DatasetError(f"dataset {self.name!r}: train has {arrays['x_train'].shape[0]} features but test has "
                               f"{arrays['x_test'].shape[0]}.")
        for key, value in arrays.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "classes", classes)
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def output_size(self) -> int:
        """Units in the output layer: one sigmoid for two classes, else one softmax unit per class."""
        return 1 if self.n_classes == 2 else self.n_classes

    def fingerprint(self) -> str:
        """sha256 over dtype, shape and bytes of the four arrays and the class names (not the name)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256()
            for a in (self.x_train, self.y_train, self.x_test, self.y_test):
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape};".encode())
                h.update(a.tobytes())
            h.update("\x1f".join(self.classes).encode())
            cached = h.hexdigest()
            self.__dict__["_fingerprint"] = cached
        return cached

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, x_train {self.x_train.shape}, x_test {self.x_test.shape}, "
                f"classes={self.classes!r})")


def standardized(ds: Dataset) -> Dataset:
    """Per-feature zero mean and unit variance using the train split's statistics, applied to both splits.

    Features that are constant on the train split carry no information and become 0 in both splits.
    """
    mean = ds.x_train.mean(axis=1, keepdims=True)
    std = ds.x_train.std(axis=1, keepdims=True)
    constant = np.ptp(ds.x_train, axis=1, keepdims=True) == 0
    scale = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, std))
    return dataclasses.replace(
        ds,
        x_train=(ds.x_train - mean) * scale,
        x_test=(ds.x_test - mean) * scale,
        description=(ds.description.rstrip(".") + ". " if ds.description else "")
        + "Standardised per feature with the train split's mean and std.",
    )
