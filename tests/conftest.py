"""Shared fixtures: the course's data (from ../shared/data, never copied into the repo) and small datasets."""

import re
from pathlib import Path

import pytest

from core.data import load_dataset
from core.train import Training

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def cat_data():
    if not (SHARED_DATA / "train_catvnoncat.h5").exists():
        pytest.skip(f"the course's cat files are not in {SHARED_DATA}")
    return load_dataset("catvnoncat", SHARED_DATA)


def shown_text(markdown: str) -> str:
    """What a reader sees of Markdown text without syntax: CommonMark drops the backslash before ASCII punctuation,
    and the word joiner (U+2060) is invisible."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


class CountingFactory:
    """A training factory for the run cache that counts how many trainings it was asked to build."""

    def __init__(self):
        self.calls = 0

    def __call__(self, config, dataset):
        self.calls += 1
        return Training(config, dataset)
