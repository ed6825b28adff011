"""Ridge baselines on the same features: a voxelwise encoding model and a BOLD-window decoder."""

from __future__ import annotations

import logging

import numpy as np
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from giblet.features import FeatureTable
from giblet.splits import BLOCKS

__all__ = ["ALPHAS", "fit_ridge", "encoding_design", "decoding_design", "DECODING_TARGETS"]

log = logging.getLogger(__name__)

ALPHAS = np.logspace(-1, 7, 17)
#: modality -> (per-TR target table in the features folder) for the ridge decoder
DECODING_TARGETS = {"audio": "audio_pooled.npz", "video": "video_lowlevel_tr.npz", "text": "text_tr.npz"}


def fit_ridge(X, Y, rows, n_folds=5):
    """Standardise (training rows only) and fit ridge with one alpha per target chosen by contiguous K-fold.

    Parameters
    ----------
    X : ndarray, shape (n_trs, n_features)
    Y : ndarray, shape (n_trs, n_targets)
    rows : ndarray, shape (n_trs,), bool
        Training TRs; folds are contiguous (no shuffling: fMRI is autocorrelated).

    Returns
    -------
    sklearn Pipeline (StandardScaler -> himalaya RidgeCV, or its linear-kernel form when there
    are more features than training TRs), fitted.
    """
    cv = KFold(n_splits=n_folds, shuffle=False)
    wide = X.shape[1] > rows.sum()
    ridge = (KernelRidgeCV(kernel="linear", alphas=ALPHAS, fit_intercept=True, cv=cv) if wide
             else RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=cv))
    model = make_pipeline(StandardScaler(), ridge)
    # One BLAS thread: many small products, and parallel Snakemake jobs share the cores.
    with threadpool_limits(1, user_api="blas"):
        model.fit(X[rows].astype(np.float64), Y[rows].astype(np.float64))
    return model


def encoding_design(aligned_paths):
    """FIR-delayed stimulus features on the fMRI's stored clock, concatenated: (n_trs, n_features)."""
    tables = [FeatureTable.load(p) for p in aligned_paths]
    n = {len(t.values) for t in tables}
    if len(n) != 1:
        raise ValueError(f"aligned tables disagree on the number of volumes: {sorted(n)}")
    return np.concatenate([t.values for t in tables], axis=1).astype(np.float32)


def decoding_design(bold, valid, labels, runs, block, delays):
    """BOLD windows after each TR on the clock: X[t] = [bold[t + d] for d in delays].

    Returns the design (n_trs, n_voxels * n_delays) and the TRs of ``block`` whose every
    window row is a valid BOLD volume of ``block`` in the same run.
    """
    n = len(bold)
    ok = valid & (labels == BLOCKS.index(block))
    X = np.zeros((n, bold.shape[1] * len(delays)), np.float32)
    rows = labels == BLOCKS.index(block)
    for i, d in enumerate(delays):
        shifted = np.zeros_like(bold)
        shifted[: n - d] = bold[d:]
        X[:, i * bold.shape[1] : (i + 1) * bold.shape[1]] = shifted
        rows &= np.r_[ok[d:] & (runs[d:] == runs[: n - d]), np.zeros(d, bool)]
    return X, rows
