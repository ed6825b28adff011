"""The autoencoder's encoder routes: closed-form ridge maps from feature bands to the voxels they predict.

See :mod:`giblet.training.routes` (step 2) for why they exist; :func:`fit_encoder_routes` gives each voxel
the one band that predicts it best, :func:`fit_joint_routes` every voxel all bands (``model.route_mode``).
Both are fitted to the subject's encoding target (:meth:`~giblet.training.data.MovieData.encoding_target`)
on the training block. With ``model.route_context_trs``, every band's features are read beside their trailing
means over that many TRs (:func:`trailing_means`), at every encoder delay.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from himalaya.scoring import correlation_score

from giblet.models import temporal
from giblet.splits import BLOCKS
from giblet.training.ridge import RidgeMap, fit_dual_ridge, fit_ridge

__all__ = ["lagged_weights", "encoding_rows", "trailing_means", "fit_joint_routes", "fit_encoder_routes"]

log = logging.getLogger(__name__)


def lagged_weights(inputs, outputs, ridge):
    """:meth:`giblet.models.LaggedLinear.set_weights` keyword arguments of a fitted ridge map."""
    return {"inputs": inputs, "outputs": outputs, "mean": ridge.mean_, "scale": ridge.scale_, "weight": ridge.coef_,
            "bias": ridge.intercept_}


def trailing_means(X, runs, windows_trs):
    """:func:`giblet.models.temporal.trailing_means` of ``X`` (n_trs, n_features) with every run one chunk (each
    mean inside its TR's run, over fewer TRs at a run's start); float64."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((len(X), X.shape[1] * (1 + len(windows_trs))))
    for run in np.unique(runs):
        rows = runs == run
        out[rows] = temporal.trailing_means(torch.from_numpy(X[rows])[None], windows_trs)[0].numpy()
    return out


def encoding_rows(valid, labels, runs, block, delays):
    """TRs ``u`` of ``block`` with valid BOLD whose every ``u - d`` lies in the same run and block."""
    n = len(labels)
    inside = labels == BLOCKS.index(block)
    rows = valid & inside
    for d in delays:
        rows &= np.r_[np.zeros(d, bool), inside[: n - d] & (runs[: n - d] == runs[d:])]
    return rows


def fit_joint_routes(data, inputs, delays, n_folds=5, columns=None):
    """Per subject, one ridge from every band's features at ``t - d`` to every voxel, cut into per-band routes.

    The ridge baseline's fit (one penalty per voxel, chosen on contiguous folds of the training block) on
    the subject's encoding target; its weights are split by band so that the routes (summed) predict what
    the joint ridge predicts. Arguments and result as :func:`fit_encoder_routes`.
    """
    lags = tuple(-int(d) for d in delays)
    widths = [X.shape[1] for X in inputs.values()]
    offsets = np.r_[0, np.cumsum(widths)]
    joint = np.concatenate(list(inputs.values()), axis=1)
    out = {m: {} for m in inputs}
    for subject in data.subjects:
        rows = encoding_rows(data.bold_valid[subject], data.labels, data.runs, "train", delays)
        ridge = fit_ridge(joint, data.encoding_target(subject), rows, lags=lags, n_folds=n_folds)
        voxels = np.arange(ridge.coef_.shape[1])
        for index, band in enumerate(inputs):
            design = np.concatenate([np.arange(offsets[index], offsets[index + 1]) + i * joint.shape[1]
                                     for i in range(len(lags))])
            bias = ridge.intercept_ if index == 0 else np.zeros_like(ridge.intercept_)
            part = RidgeMap(ridge.mean_[design], ridge.scale_[design], ridge.coef_[design], bias, ridge.alphas_)
            read = np.arange(widths[index]) if columns is None else np.asarray(columns[band])
            out[band][subject] = lagged_weights(read, voxels, part)
        log.info("%s: joint encoder routes drive all %d voxels (median penalty %g)", subject, len(voxels),
                 float(np.median(ridge.alphas_)))
    return out


def fit_encoder_routes(data, inputs, delays, scores, n_folds=5, columns=None):
    """Per subject and feature band, ridge from the band's features at ``t - d`` to the voxels it predicts best.

    Parameters
    ----------
    data : MovieData
    inputs : dict of str to ndarray, shape (n_trs, n_features)
        Band -> the features its route reads (as the autoencoder reads them; with route context, beside their
        :func:`trailing_means`).
    delays : sequence of int
        Encoder delays (>= 1: causal).
    scores : dict of str to dict of str to ndarray
        Band -> subject -> every voxel's cross-validated encoding r from those features
        (:func:`encoding_scores`).
    n_folds : int, default=5
    columns : dict of str to ndarray of int, optional
        Band -> the columns of the model input its features are (the weights' ``inputs``; default: all, which
        holds only without route context).

    Returns
    -------
    dict of str to dict of str to dict
        Band -> subject -> :meth:`giblet.models.LaggedLinear.set_weights` keyword arguments.
        A voxel goes to the band of highest cross-validated r (if positive), and keeps it only if
        the route, fitted on the training block, also predicts the validation block (r > 0). Each
        route's penalty is chosen per voxel by :func:`~giblet.training.ridge.fit_ridge` (as the
        ridge baseline's): a voxel the band barely predicts gets a heavily shrunk route.
    """
    lags = tuple(-int(d) for d in delays)
    out = {m: {} for m in inputs}
    for subject in data.subjects:
        bold, valid, target = data.bold[subject], data.bold_valid[subject], data.encoding_target(subject)
        rows = encoding_rows(valid, data.labels, data.runs, "train", delays)
        val = np.flatnonzero(encoding_rows(valid, data.labels, data.runs, "val", delays))
        passing = np.stack([np.where(scores[m][subject] > 0, scores[m][subject], -np.inf) for m in inputs])
        owner = np.where(np.isfinite(passing).any(axis=0), passing.argmax(axis=0), -1)
        for index, (band, X) in enumerate(inputs.items()):
            voxels = np.flatnonzero(owner == index)
            width = X.shape[1] * len(lags)
            ridge = RidgeMap(np.zeros(width), np.ones(width), np.zeros((width, 0), np.float32), np.zeros(0),
                             np.zeros(0))
            if len(voxels):
                stored = fit_dual_ridge(X, target, rows, lags=lags, n_folds=n_folds, columns=voxels)
                if len(val):  # keep the voxels whose route also predicts the validation block
                    keep = np.asarray(correlation_score(bold[val][:, voxels].astype(np.float64),
                                                        stored.predict_at(X, val).astype(np.float64))) > 0
                    voxels, stored = voxels[keep], stored.select(keep)
                ridge = stored.materialise(X)  # primal weights of the kept voxels only
            read = np.arange(X.shape[1]) if columns is None else np.asarray(columns[band])
            out[band][subject] = lagged_weights(read, voxels, ridge)
        log.info("%s: encoder routes drive %s of %d voxels", subject,
                 {m: len(out[m][subject]["outputs"]) for m in inputs}, bold.shape[1])
    return out
