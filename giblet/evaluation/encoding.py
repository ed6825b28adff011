"""Encoding: predicted against measured BOLD on a held-out block, next to the ISC ceiling and a null."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from giblet.evaluation._batches import block_batch, scatter
from giblet.evaluation.metrics import block_resamples, fdr_bh, pearson_columns
from giblet.evaluation.nulls import permutation_test
from giblet.training.ridge import fit_ridge
from giblet.training.data import shift_within_runs
from giblet.training.routes import encoding_rows

__all__ = ["predict_bold", "EncodingScores", "block_bootstrap_r", "score_encoding", "isc_ceiling", "roi_ceiling_on",
           "ceiling_floor", "encoding_table",
           "codebook_feature_sets", "feature_set_encoding"]


def predict_bold(model, data, subject, block="test", device="cpu"):
    """The autoencoder's predicted BOLD (its encoder) for the TRs of ``block``.

    Parameters
    ----------
    model : GibletAutoencoder
    data : MovieData
    subject : str
    block : str, default="test"
    device : str or torch.device

    Returns
    -------
    ndarray, shape (n_trs, n_voxels), float32
        On the model clock (``data``'s); NaN outside ``block``.
    """
    spans, stimulus, _ = block_batch(model, data, subject, block, device)
    with torch.no_grad():
        predicted = model.encode(stimulus, subject)
    return scatter(spans, predicted.float(), data.n_trs, np.nan)


@dataclass(frozen=True)
class EncodingScores:
    """Pearson r of an encoding model per voxel and per ROI-mean time course, with permutation p-values.

    Attributes
    ----------
    voxel_r, voxel_p, voxel_q : ndarray, shape (n_voxels,), float64
        r, one-sided p under a normal fit to the voxel's permutation null (an empirical p cannot go below
        ``1 / (1 + n_permutations)``, too coarse for a false-discovery rate over thousands of voxels) and the
        Benjamini-Hochberg q across voxels.
    roi_r, roi_p, roi_null_mean : ndarray, shape (n_rois,), float64
        r of the ROI-mean prediction with the ROI-mean measurement, its p and null mean.
    n_trs : int
        TRs scored.
    roi_ci : ndarray, shape (2, n_rois), float64
        Moving-block bootstrap 95 % interval of ``roi_r`` (TRs resampled in blocks).
    """

    voxel_r: np.ndarray
    voxel_p: np.ndarray
    voxel_q: np.ndarray
    roi_r: np.ndarray
    roi_p: np.ndarray
    roi_null_mean: np.ndarray
    n_trs: int
    roi_ci: np.ndarray


def _roi_means(values, roi_membership):
    counts = roi_membership.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (values @ roi_membership.astype(values.dtype)) / np.where(counts, counts, np.nan)


def block_bootstrap_r(predicted, measured, *, n_bootstrap=1000, seed=0, block_trs=5, level=0.95):
    """Moving-block bootstrap interval of the Pearson r of every column: (2, n_columns) float64.

    TRs are resampled in blocks of ``block_trs`` consecutive TRs (keeping BOLD autocorrelation), the
    same blocks for every column.
    """
    predicted, measured = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    index = block_resamples(len(predicted), n_bootstrap=n_bootstrap, block_trs=min(block_trs, len(predicted)),
                            seed=seed)
    draws = np.stack([pearson_columns(predicted[rows], measured[rows]) for rows in index])
    with np.errstate(invalid="ignore"):
        return np.nanquantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)


def score_encoding(predicted, measured, roi_membership, *, n_permutations=1000, seed=0, null_method="phase",
                   n_bootstrap=1000, block_trs=5):
    """Score predicted BOLD against measured BOLD on the same TRs.

    Parameters
    ----------
    predicted, measured : ndarray, shape (n_trs, n_voxels), float
        The scored TRs only, in time order (one held-out block).
    roi_membership : ndarray, shape (n_voxels, n_rois), bool
    n_permutations : int, default=1000
    seed : int, default=0
    null_method : {"phase", "circular"}, default="phase"
        Surrogates of the prediction (see :mod:`giblet.evaluation.nulls`).
    n_bootstrap, block_trs : int, default=1000, 5
        The ROI r's moving-block bootstrap interval (:func:`block_bootstrap_r`).

    Returns
    -------
    EncodingScores
    """
    predicted, measured = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    if predicted.shape != measured.shape or roi_membership.shape[0] != predicted.shape[1]:
        raise ValueError(f"predicted {predicted.shape}, measured {measured.shape} and roi_membership "
                         f"{roi_membership.shape} must agree on TRs and voxels")
    if not np.isfinite(predicted).all() or not np.isfinite(measured).all():
        raise ValueError("predicted and measured BOLD must be finite on the scored TRs; select valid TRs first")
    measured_rois = _roi_means(measured, roi_membership)
    n_voxels = predicted.shape[1]

    def score(prediction):
        return np.r_[pearson_columns(prediction, measured), pearson_columns(
            _roi_means(prediction, roi_membership), measured_rois)]

    result = permutation_test(score, predicted, method=null_method, n_permutations=n_permutations, seed=seed)
    roi_ci = block_bootstrap_r(_roi_means(predicted, roi_membership), measured_rois, n_bootstrap=n_bootstrap,
                               seed=seed, block_trs=block_trs)
    voxel_p = result.normal_p()[:n_voxels]
    return EncodingScores(result.observed[:n_voxels], voxel_p, fdr_bh(voxel_p),
                          result.observed[n_voxels:], result.p[n_voxels:], result.null_mean[n_voxels:], len(predicted),
                          roi_ci)


def isc_ceiling(group, subject, voxel_ijk, roi_names, block="test"):
    """The subject's leave-one-subject-out ISC (``group``: a :class:`~giblet.fmri.group_isc.GroupIsc`) on
    ``block``, in its voxel order.

    Returns
    -------
    voxel_ceiling : ndarray, shape (n_voxels,), float64
        NaN for voxels the group file lacks (not kept in every subject).
    roi_ceiling : ndarray, shape (n_rois,), float64
    """
    b, s = group.index(subject, block, roi_names)
    group_flat = np.ravel_multi_index(tuple(group.voxel_ijk.T), group.grid_shape)
    voxel_isc, roi_isc = group.voxel_isc[b, s].astype(np.float64), group.roi_isc[b, s].astype(np.float64)
    own_flat = np.ravel_multi_index(tuple(np.asarray(voxel_ijk).T), group.grid_shape)
    order = np.argsort(group_flat)
    where = np.clip(np.searchsorted(group_flat, own_flat, sorter=order), 0, len(order) - 1)
    found = group_flat[order[where]] == own_flat
    return np.where(found, voxel_isc[order[where]], np.nan), roi_isc


def roi_ceiling_on(group, subject, roi_names, rows, runs, preshift_trs=0):
    """The subject's leave-one-subject-out ROI ISC on exactly ``rows`` (the TRs its encoding r is scored on).

    Parameters
    ----------
    group : GroupIsc
        The ``group-isc`` file (every subject's ROI means, stored clock).
    subject : str
    roi_names : sequence of str
    rows : ndarray, shape (n_rows,), int
        Scored TRs on the model clock.
    runs : ndarray, shape (n_trs,), int
    preshift_trs : int, default=0
        TRs the stored BOLD is shifted earlier (the model clock is ``preshift_trs`` later).

    Returns
    -------
    ndarray, shape (n_rois,), float64
        r of the subject's ROI mean with the mean of the other subjects' (those valid at each TR),
        over the rows where both are defined.
    """
    s = group.index(subject, "all", roi_names)[1]
    courses = group.roi_timecourses.astype(np.float64)
    courses = shift_within_runs(np.moveaxis(courses, 0, 1), runs, preshift_trs, np.nan)[rows]  # (rows, subj, roi)
    own = courses[:, s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # TRs no other subject has
        others = np.nanmean(np.delete(courses, s, axis=1), axis=1)
    out = np.full(len(roi_names), np.nan)
    for r in range(len(roi_names)):
        both = np.isfinite(own[:, r]) & np.isfinite(others[:, r])
        if both.sum() > 2:
            out[r] = pearson_columns(own[both, r], others[both, r])
    return out


def ceiling_floor(n_trs):
    """The ceiling below which r / ceiling is not reported: ``max(0.1, 2 / sqrt(n_trs))`` (a ceiling near chance
    divides r by noise)."""
    return max(0.1, 2.0 / np.sqrt(max(n_trs, 1)))


def encoding_table(scores, roi_names, roi_membership, voxel_ceiling, roi_ceiling, q_threshold=0.05):
    """Tidy per-ROI table: one row per ROI and model.

    Parameters
    ----------
    scores : dict of str to EncodingScores
        Model name (``"autoencoder"``, ``"ridge"``) -> its scores.
    roi_names : sequence of str, length n_rois
    roi_membership : ndarray, shape (n_voxels, n_rois), bool
    voxel_ceiling, roi_ceiling : ndarray, shape (n_voxels,), (n_rois,)
        From :func:`isc_ceiling`.
    q_threshold : float, default=0.05

    Returns
    -------
    pandas.DataFrame
        Columns ``roi, model, n_voxels, n_trs, r, r_ci_low, r_ci_high, null_mean, p, ceiling, r_over_ceiling,
        above_ceiling,
        mean_voxel_r, mean_voxel_ceiling, fraction_voxels_significant``; ``r`` is the ROI-mean
        prediction's correlation, ``ceiling`` the ROI-mean leave-one-subject-out ISC (on the same
        TRs: :func:`roi_ceiling_on`), ``r_over_ceiling`` NaN where the ceiling is at most
        :func:`ceiling_floor`, ``above_ceiling`` where r exceeds the ceiling (a flag: the ceiling of so few TRs
        is itself noisy, or the model fits what is not shared between subjects).
    """
    rows = []
    for model, s in scores.items():
        for r, roi in enumerate(roi_names):
            members = roi_membership[:, r]
            some = members.any()
            rows.append({
                "roi": roi, "model": model, "n_voxels": int(members.sum()), "n_trs": s.n_trs,
                "r": s.roi_r[r], "r_ci_low": s.roi_ci[0, r], "r_ci_high": s.roi_ci[1, r],
                "null_mean": s.roi_null_mean[r], "p": s.roi_p[r],
                "ceiling": roi_ceiling[r],
                "r_over_ceiling": s.roi_r[r] / roi_ceiling[r] if roi_ceiling[r] > ceiling_floor(s.n_trs) else np.nan,
                "above_ceiling": bool(s.roi_r[r] > roi_ceiling[r]),
                "mean_voxel_r": np.nanmean(s.voxel_r[members]) if some else np.nan,
                "mean_voxel_ceiling": np.nanmean(voxel_ceiling[members]) if some else np.nan,
                "fraction_voxels_significant": (s.voxel_q[members] < q_threshold).mean() if some else np.nan,
            })
    return pd.DataFrame(rows)


def codebook_feature_sets(pooled, n_codebooks, descriptor=None):
    """Per-TR feature sets of the sound: each codebook level's pooled code vectors, their sum, the log-mel.

    Parameters
    ----------
    pooled : ndarray, shape (n_trs, (n_codebooks + 1) * dim)
        ``audio_pooled.npz`` (per codebook, then summed over codebooks: the TR-mean quantized latent).
    n_codebooks : int
    descriptor : ndarray, shape (n_trs, n_descriptor), optional
        The log-mel of the original sound (a reference set).

    Returns
    -------
    dict of str to ndarray
        ``cb0`` .. ``cb{n-1}``, ``all_codebooks`` and, given, ``log_mel``.
    """
    per_level = np.asarray(pooled).reshape(len(pooled), n_codebooks + 1, -1)
    sets = {f"cb{q}": per_level[:, q] for q in range(n_codebooks)}
    sets["all_codebooks"] = per_level[:, n_codebooks]
    if descriptor is not None:
        sets["log_mel"] = np.asarray(descriptor)
    return sets


def feature_set_encoding(feature_sets, bold, valid, labels, runs, delays, roi_names, roi_membership):
    """Ridge encoding of every voxel from each feature set alone, scored on the test block.

    For each set a ridge (contiguous-fold penalty search) maps the features at TRs ``u - d``
    (``d`` in ``delays``) to the voxels at ``u``, fitted on the training block and scored on the
    test block: which codebook levels does each region track?

    Parameters
    ----------
    feature_sets : dict of str to ndarray, shape (n_trs, n_features)
        :func:`codebook_feature_sets`.
    bold : ndarray, shape (n_trs, n_voxels)
    valid : ndarray, shape (n_trs,), bool
    labels, runs : ndarray, shape (n_trs,), int
        Block labels and runs on the same clock.
    delays : sequence of int
        Encoder delays (>= 1: causal).
    roi_names : sequence of str
    roi_membership : ndarray, shape (n_voxels, n_rois), bool

    Returns
    -------
    DataFrame
        Columns ``features, roi, n_voxels, n_trs, r`` (the ROI-mean time course's) and ``mean_voxel_r``.
    """
    delays = tuple(int(d) for d in delays)
    train = encoding_rows(valid, labels, runs, "train", delays)
    test = np.flatnonzero(encoding_rows(valid, labels, runs, "test", delays))
    in_roi = np.flatnonzero(np.asarray(roi_membership).any(axis=1))  # only ROI voxels are scored: fit only them
    bold, roi_membership = bold[:, in_roi], np.asarray(roi_membership)[in_roi]
    measured = bold[test].astype(np.float64)
    rows = []
    for name, X in feature_sets.items():
        ridge = fit_ridge(X, bold, train, lags=tuple(-d for d in delays))
        predicted = ridge.predict(np.concatenate([X[test - d] for d in delays], axis=1)).astype(np.float64)
        voxel_r = pearson_columns(predicted, measured)
        roi_r = pearson_columns(_roi_means(predicted, roi_membership), _roi_means(measured, roi_membership))
        for r, roi in enumerate(roi_names):
            members = roi_membership[:, r]
            rows.append({"features": name, "roi": roi, "n_voxels": int(members.sum()), "n_trs": len(test),
                         "r": roi_r[r], "mean_voxel_r": np.nanmean(voxel_r[members]) if members.any() else np.nan})
    return pd.DataFrame(rows)
