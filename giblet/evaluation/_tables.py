"""Tidy tables written atomically."""

from __future__ import annotations

import math
from pathlib import Path

from giblet.io import atomic_path


def write_tsv(frame, path):
    """Write a DataFrame as a tab-separated table (6 significant digits; ``.gz`` compresses) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return Path(path)


def json_number(value):
    """A float for JSON, or None where it is NaN or infinite (strict JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None
