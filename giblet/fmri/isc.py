"""Leave-one-subject-out inter-subject correlation (the encoding noise ceiling)."""

from __future__ import annotations

import numpy as np

__all__ = ["loso_isc"]


def loso_isc(data):
    """Correlate each subject with the mean of all the others.

    Parameters
    ----------
    data : ndarray, shape (n_subjects, n_trs) or (n_subjects, n_trs, n_voxels)
        Time courses on a common TR grid (a ROI mean, or voxels in the same order).
        TRs that are NaN for any subject are left out of every correlation.

    Returns
    -------
    ndarray, shape (n_subjects,) or (n_subjects, n_voxels)
        Pearson r of subject s against the mean of the other subjects.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim not in (2, 3) or data.shape[0] < 2:
        raise ValueError(f"data must be (n_subjects>=2, n_trs[, n_voxels]), got shape {data.shape}")
    squeeze = data.ndim == 2
    if squeeze:
        data = data[..., None]
    keep = ~np.isnan(data).any(axis=(0, 2))
    data = data[:, keep]
    total = data.sum(axis=0)
    n = data.shape[0]
    out = np.empty((n, data.shape[2]))
    for s in range(n):
        others = (total - data[s]) / (n - 1)
        out[s] = _pearson_columns(data[s], others)
    return out[:, 0] if squeeze else out


def _pearson_columns(a, b):
    """Pearson r between matching columns of two (n_trs, n_columns) arrays; NaN for constant columns."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=0) / denom, np.nan)
