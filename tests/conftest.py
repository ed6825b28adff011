"""Shared fixtures: seeded RNG and the real reference data beside the project."""

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def small_blocks(monkeypatch):
    """Column blocks of 3 (``giblet.blocks``), so that tiny arrays take the whole-brain block-wise path."""
    monkeypatch.setattr("giblet.blocks.BLOCK_COLUMNS", 3)
