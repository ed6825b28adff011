"""Statistics every layer uses: Pearson r of matching columns, moving-block bootstrap resamples of TRs."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson_columns", "block_resamples", "block_bootstrap_pearson"]


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


def block_bootstrap_pearson(predictions, target, *, n_bootstrap=1000, block_trs=1, seed=0):
    """:func:`pearson_columns` of every prediction with ``target`` on every resample of :func:`block_resamples`
    (the same arguments give the same resamples), from weighted sums: one matrix product, no resample copied.

    Parameters
    ----------
    predictions : ndarray, shape (n_predictions, n_trs, n_columns)
    target : ndarray, shape (n_trs, n_columns)
    n_bootstrap, block_trs, seed : int

    Returns
    -------
    ndarray, shape (n_bootstrap, n_predictions, n_columns), float64
        NaN where the target column is constant, 0 where only the prediction is (as :func:`pearson_columns`).
    """
    p, y = np.asarray(predictions, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != y.shape:
        raise ValueError(f"predictions {p.shape} must be (n_predictions, *target.shape), target {y.shape}")
    k, n = len(p), len(y)
    p, y = p - p.mean(axis=1, keepdims=True), y - y.mean(axis=0)  # r does not move; the sums stay accurate
    # a resample's sums of x, x^2, xy per column are the TRs' terms weighted by how often it draws each TR
    terms = np.concatenate([p, p * p, p * y, y[None], y[None] ** 2])  # (3k + 2, n_trs, n_columns)
    draws = block_resamples(n, n_bootstrap=n_bootstrap, block_trs=block_trs, seed=seed)
    weights = np.zeros((n_bootstrap, n))  # how often each resample holds each TR
    np.add.at(weights, (np.arange(n_bootstrap)[:, None], draws), 1.0)
    sums = (weights @ terms.transpose(1, 0, 2).reshape(n, -1)).reshape(n_bootstrap, *terms[:, 0].shape)
    sp, spp, spy, sy, syy = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k : 3 * k], sums[:, 3 * k, None], sums[:, -1, None]
    spread_p, spread_y = spp - sp * sp / n, syy - sy * sy / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(spread_p > 0, (spy - sp * sy / n) / np.sqrt(spread_p * spread_y), 0.0)
    return np.where(np.broadcast_to(spread_y > 0, r.shape), r, np.nan)
