"""Fit window decoders: a per-TR descriptor decoded from the voxels that encode it.

What BOLD can tell about a TR's sound is low-dimensional (its spectral envelope), and a decoder
that reads every voxel drowns it in noise: on the demo, ridge from all voxels to the log-mel
gained nothing over the code prior, the same ridge from the voxels that encode the log-mel gained
+0.23 bits per code. So, per subject:

1. every voxel is scored by how well the descriptor predicts it (ridge from the descriptor at
   TRs ``u - d``, ``d`` in the decoder delays, to the voxel at ``u``), cross-validated over
   contiguous folds of the training block;
2. for each size ``n`` in a grid, a ridge decoder (:func:`~giblet.training.baselines.fit_ridge`,
   its penalty chosen per feature over contiguous folds of the training block) maps the window
   of the ``n`` best voxels at ``t + d`` to the descriptor at ``t``;
3. the size with the best decoding on the validation block, averaged over subjects, is kept (its
   validation predictions are kept too, e.g. to calibrate what reads the decoded descriptor);
4. the kept decoders are refitted on the training and validation blocks together.

The test block is never read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from giblet.blocks import column_blocks
from giblet.splits import BLOCKS
from giblet.training.baselines import ALPHAS, RidgeMap, decoding_design, decoding_rows, fit_ridge

__all__ = ["N_VOXELS_GRID", "WindowFit", "encoding_rows", "voxel_encoding_scores", "fit_window_decoders"]

log = logging.getLogger(__name__)

#: Numbers of best-encoded voxels tried per subject (those above a subject's voxel count are skipped).
N_VOXELS_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True)
class WindowFit:
    """One subject's fitted window decoder.

    Attributes
    ----------
    selected : ndarray, shape (n_selected,), int
        Voxel indices, ascending.
    ridge : RidgeMap
        On the window ``[bold[t + d, selected] for d in delays]``, refitted on the training and
        validation blocks.
    encoding_r : ndarray, shape (n_voxels,), float64
        Cross-validated encoding r of every voxel on the training block (the ranking).
    validation_r : dict of int to float
        Size tried -> mean r over the descriptor's features on the validation block.
    validation : tuple of ndarray
        ``(decoded (n_rows, n_features), rows (n_trs,) bool)``: the validation block decoded by the
        kept size fitted on the training block alone.
    """

    selected: np.ndarray
    ridge: RidgeMap
    encoding_r: np.ndarray
    validation_r: dict
    validation: tuple

    def weights(self):
        """Keyword arguments of :meth:`giblet.models.window_decoder.WindowDecoder.set_weights`."""
        r = self.ridge
        return {"selected": self.selected, "mean": r.mean_, "scale": r.scale_, "weight": r.coef_, "bias": r.intercept_}


def encoding_rows(valid, labels, runs, block, delays):
    """TRs ``u`` of ``block`` with valid BOLD whose every ``u - d`` lies in the same run and block."""
    n = len(labels)
    inside = labels == BLOCKS.index(block)
    rows = valid & inside
    for d in delays:
        rows &= np.r_[np.zeros(d, bool), inside[: n - d] & (runs[: n - d] == runs[d:])]
    return rows


def voxel_encoding_scores(bold, descriptor, rows, delays, n_folds=5, block_voxels=16384):
    """Cross-validated encoding r of every voxel from the descriptor at the preceding TRs.

    Parameters
    ----------
    bold : ndarray, shape (n_trs, n_voxels), float
    descriptor : ndarray, shape (n_trs, n_features), float
    rows : ndarray, shape (n_trs,), bool
        TRs ``u`` scored (:func:`encoding_rows` of the training block).
    delays : sequence of int
        The design of TR ``u`` is ``[descriptor[u - d] for d in delays]``.
    n_folds : int, default=5
        Contiguous folds (fMRI is autocorrelated: no shuffling).
    block_voxels : int, default=16384
        Voxels fitted at once (whole-brain data are never copied whole).

    Returns
    -------
    ndarray, shape (n_voxels,), float64
        Mean r over the held-out folds at each voxel's best penalty (0 for constant voxels).
    """
    index = np.flatnonzero(rows)
    design = np.concatenate([descriptor[index - d] for d in delays], axis=1).astype(np.float64)
    scale = design.std(axis=0)
    design = (design - design.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    search = RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=KFold(n_splits=n_folds),
                     solver_params={"score_func": correlation_score, "local_alpha": True})
    scores = np.zeros(bold.shape[1])
    with threadpool_limits(1, user_api="blas"):
        for block in column_blocks(bold.shape[1], block_voxels):
            y = bold[index, block].astype(np.float64)
            varies = y.std(axis=0) > 0
            if varies.any():
                search.fit(design, y[:, varies])
                scores[np.flatnonzero(varies) + block.start] = np.nan_to_num(np.asarray(search.cv_scores_))
    return scores


def _validation_predictions(bold, ridge, selected, valid, labels, runs, delays):
    """(decoded descriptor of the validation TRs, their row mask) of one decoder."""
    design, rows = decoding_design(bold[:, selected], valid, labels, runs, "val", delays)
    if not rows.any():
        raise ValueError("the split has no validation TRs to choose the decoder's voxels on; give split.fractions "
                         "a validation share")
    return ridge.predict(design[rows]).astype(np.float64), rows


def fit_window_decoders(data, descriptor, delays, grid=N_VOXELS_GRID, n_folds=5):
    """One window decoder per subject, the number of voxels chosen on the validation block.

    Parameters
    ----------
    data : MovieData
        Its BOLD, valid TRs, block labels and runs (model clock).
    descriptor : ndarray, shape (n_trs, n_features), float
        Per-TR descriptor on the same clock (e.g. ``audio_logmel_tr.npz``).
    delays : sequence of int
        Decoder delays: the descriptor at TR ``t`` is decoded from BOLD at ``t + d``.
    grid : sequence of int, default=N_VOXELS_GRID
    n_folds : int, default=5

    Returns
    -------
    fits : dict of str to WindowFit
    n_voxels : int
        The size kept (best mean validation r over subjects; smaller subjects keep all their voxels).
    """
    delays = tuple(int(d) for d in delays)
    descriptor = np.asarray(descriptor, dtype=np.float64)
    if len(descriptor) != data.n_trs:
        raise ValueError(f"the descriptor has {len(descriptor)} TRs but the fMRI has {data.n_trs}")
    ranked, candidates = {}, {}
    for subject in data.subjects:
        bold, valid = data.bold[subject], data.bold_valid[subject]
        scores = voxel_encoding_scores(bold, descriptor, encoding_rows(valid, data.labels, data.runs, "train", delays),
                                       delays, n_folds)
        order = np.argsort(-scores, kind="stable")
        train_rows = decoding_rows(valid, data.labels, data.runs, "train", delays)
        fits = {}
        for n in grid:  # sizes above the subject's voxel count take all its voxels
            capped = min(n, len(order))
            if capped not in fits:
                selected = np.sort(order[:capped])
                ridge = fit_ridge(bold[:, selected], descriptor, train_rows, lags=delays, n_folds=n_folds)
                predicted, rows = _validation_predictions(bold, ridge, selected, valid, data.labels, data.runs, delays)
                r = float(np.nanmean(np.asarray(correlation_score(descriptor[rows], predicted))))
                fits[capped] = (selected, (predicted, rows), r)
            fits[n] = fits[capped]
        ranked[subject], candidates[subject] = scores, fits
        log.info("%s: window decoder, validation r by voxels %s", subject,
                 {n: round(fit[2], 3) for n, fit in fits.items()})
    best = max(grid, key=lambda n: np.mean([candidates[s][n][2] for s in data.subjects]))
    log.info("window decoders: %d voxels per subject (best mean validation r)", best)
    out = {}
    for subject in data.subjects:  # refitted on the training and validation blocks
        valid, selected = data.bold_valid[subject], candidates[subject][best][0]
        rows = (decoding_rows(valid, data.labels, data.runs, "train", delays)
                | decoding_rows(valid, data.labels, data.runs, "val", delays))
        ridge = fit_ridge(data.bold[subject][:, selected], descriptor, rows, lags=delays, n_folds=n_folds)
        out[subject] = WindowFit(selected, ridge, ranked[subject], {n: fit[2] for n, fit in candidates[subject].items()},
                                 candidates[subject][best][1])
    return out, best
