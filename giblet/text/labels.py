"""Categorical annotation columns as indicator (one-hot or multi-hot) features."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["label_indicators"]


def label_indicators(labels, separator=None):
    """One column per (annotation column, category) pair.

    Parameters
    ----------
    labels : pandas.DataFrame, shape (n_segments, n_label_columns)
        Category strings; missing values (``None``/NaN) mark no category.
    separator : str, optional
        Split cells into several categories (``","`` for Sherlock's ``Name - All``:
        ``"John, Soldiers"`` is both ``John`` and ``Soldiers``).

    Returns
    -------
    indicators : ndarray, shape (n_segments, n_categories), float32
        1 where the segment has the category, else 0.
    names : tuple of str, length n_categories
        ``"<column>=<category>"``, categories sorted within each column.
    """
    blocks, names = [], []
    for column in labels.columns:
        cells = labels[column].dropna().astype(str)
        if separator is not None:
            cells = cells.str.split(separator).explode()
        cells = cells.str.strip()
        cells = cells[cells != ""]
        present = pd.crosstab(cells.index, cells).reindex(labels.index, fill_value=0) > 0
        blocks.append(present.to_numpy(dtype=np.float32))
        names += [f"{column}={category}" for category in present.columns]
    values = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(labels), 0), np.float32)
    return values, tuple(names)
