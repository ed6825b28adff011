"""Statistics every layer uses: Pearson r of matching columns, moving-block bootstrap resamples of TRs."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson_columns", "block_resamples"]


def pearson_columns(prediction, target):
    """Pearson r between matching columns.

    Parameters
    ----------
    prediction, target : ndarray, shape (n_samples, n_columns) or (n_samples,)

    Returns
    -------
    ndarray, shape (n_columns,), float64 (a float for 1-D inputs)
        NaN where the target column is constant (nothing to predict); 0 where only the prediction is
        (a model that abstains on a column predicts none of it: it must not leave the column out of a mean).
    """
    a, b = np.asarray(prediction, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or len(a) < 2:
        raise ValueError(f"prediction {a.shape} and target {b.shape} must have one shape (n_samples>=2[, n_columns])")
    squeeze = a.ndim == 1
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    spread_a, spread_b = (a * a).sum(axis=0), (b * b).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(spread_a > 0, (a * b).sum(axis=0) / np.sqrt(spread_a * spread_b), 0.0)
    r[spread_b == 0] = np.nan
    return float(r[0]) if squeeze else r


def block_resamples(n_trs, *, n_bootstrap=1000, block_trs=1, seed=0):
    """Moving-block bootstrap resamples of ``n_trs`` TRs: (n_bootstrap, n_trs) int indices, each row the TRs of
    random blocks of ``block_trs`` consecutive TRs, cut to ``n_trs``."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_trs - block_trs + 1, size=(n_bootstrap, -(-n_trs // block_trs)))
    return (starts[..., None] + np.arange(block_trs)).reshape(n_bootstrap, -1)[:, :n_trs]
