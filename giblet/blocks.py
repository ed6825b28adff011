"""Column blocks: whole-brain (n_trs, n_voxels) arrays are worked on a few thousand voxels at a time.

A Sherlock-sized subject (271,633 voxels x 1976 TRs) is 2.0 GiB in float32; a float64 copy of it,
or a second float32 copy, would double that. Per-voxel operations (cleaning, z-scoring, ridge
targets) run one block of columns at a time, so their temporaries stay at the size of one block.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_COLUMNS", "column_blocks", "keep_columns"]

BLOCK_COLUMNS = 16384  # columns per block: 1976 TRs x 16,384 voxels in float64 = 247 MiB


def column_blocks(n_columns, size=None):
    """Consecutive ``slice`` objects covering ``range(n_columns)``, ``size`` (default ``BLOCK_COLUMNS``) each."""
    size = size or BLOCK_COLUMNS
    return [slice(a, min(a + size, n_columns)) for a in range(0, n_columns, size)]


def keep_columns(values, keep):
    """``values[:, keep]`` without a second copy of ``values``.

    Parameters
    ----------
    values : ndarray, shape (n_rows, n_columns)
        Overwritten: the kept columns move left, a block at a time (when some are dropped).
    keep : ndarray, shape (n_columns,), bool

    Returns
    -------
    ndarray, shape (n_rows, keep.sum())
        ``values`` itself when every column is kept, else a view of its first columns.
    """
    if keep.all():
        return values
    index = np.flatnonzero(keep)
    for block in column_blocks(len(index)):  # index[j] >= j: a block's sources are never overwritten before it
        values[:, block] = values[:, index[block]]
    return values[:, : len(index)]
