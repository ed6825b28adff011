"""Losses of the autoencoder, each restricted to valid TRs.

Every loss returns a scalar: a mean over the valid positions it scores, or a zero that
keeps the graph when nothing is valid.
"""

from __future__ import annotations

import torch.nn.functional as F

from giblet.models.config import MODALITY_TARGETS

__all__ = [
    "voxel_mse",
    "voxel_neg_pearson",
    "text_cosine",
    "FMRI_LOSSES",
    "RECONSTRUCTION_LOSSES",
    "fmri_losses",
    "reconstruction_losses",
]


def _valid_rows(pred, target, tr_valid):
    return pred[tr_valid].flatten(1), target[tr_valid].flatten(1)


def _mse(pred, target, tr_valid):
    pred, target = _valid_rows(pred, target, tr_valid)
    return F.mse_loss(pred, target) if len(pred) else pred.sum() * 0.0


def voxel_mse(pred, target, tr_valid):
    """Mean squared error over valid TRs and voxels.

    Parameters
    ----------
    pred, target : Tensor, shape (B, T, n_voxels), float
    tr_valid : Tensor, shape (B, T), bool

    Returns
    -------
    Tensor, scalar
    """
    return _mse(pred, target, tr_valid)


def voxel_neg_pearson(pred, target, tr_valid, eps=1e-8):
    """Negative Pearson correlation over valid TRs, per voxel, averaged over voxels.

    Parameters
    ----------
    pred, target : Tensor, shape (B, T, n_voxels), float
    tr_valid : Tensor, shape (B, T), bool
        The correlation runs over all valid (chunk, TR) pairs of the batch.
    eps : float, default=1e-8
        Keeps constant voxels finite (their correlation counts as 0, with a finite gradient).

    Returns
    -------
    Tensor, scalar
        In [-1, 1]; 0 with fewer than 2 valid TRs.
    """
    pred, target = _valid_rows(pred, target, tr_valid)
    if len(pred) < 2:
        return pred.sum() * 0.0
    pred, target = pred - pred.mean(0), target - target.mean(0)
    # eps inside the root: a constant prediction (a zero-initialised readout) has a finite gradient
    r = (pred * target).sum(0) / (pred.pow(2).sum(0) * target.pow(2).sum(0) + eps).sqrt()
    return -r.mean()


def text_cosine(pred, target, tr_valid):
    """Mean cosine distance ``1 - cos(pred, target)`` over valid TRs.

    Parameters
    ----------
    pred, target : Tensor, shape (B, T, n_text_features), float
    tr_valid : Tensor, shape (B, T), bool

    Returns
    -------
    Tensor, scalar
        In [0, 2]; TRs whose target is all zero score 1.
    """
    pred, target = _valid_rows(pred, target, tr_valid)
    return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean() if len(pred) else pred.sum() * 0.0


#: Name -> ``loss(pred, target, tr_valid)`` matching predicted to measured BOLD (B, T, n_voxels).
FMRI_LOSSES = {"mse": voxel_mse, "neg_pearson": voxel_neg_pearson}


def fmri_losses(pred, target, tr_valid):
    """Every :data:`FMRI_LOSSES` term: dict of name to scalar Tensor."""
    return {name: loss(pred, target, tr_valid) for name, loss in FMRI_LOSSES.items()}


#: Modality -> ``loss(prediction, target, tr_valid)`` of its head against its target in ``MODALITY_TARGETS``.
RECONSTRUCTION_LOSSES = {"text": text_cosine}


def reconstruction_losses(predictions, targets, tr_valid):
    """Loss of every trunk-decoded modality whose target is present.

    Parameters
    ----------
    predictions : dict of str to Tensor
        From ``predict_stimulus``/``decode``/``autoencode`` (the audio descriptor, decoded on its
        own route, is not scored here).
    targets : dict of str to Tensor
        Batch with the keys of :data:`~giblet.models.config.MODALITY_TARGETS`.
    tr_valid : Tensor, shape (B, T), bool

    Returns
    -------
    dict of str to Tensor
        Modality -> scalar loss (text: cosine distance).
    """
    return {m: RECONSTRUCTION_LOSSES[m](predictions[m], targets[MODALITY_TARGETS[m][0]], tr_valid)
            for m in predictions if m in RECONSTRUCTION_LOSSES and all(k in targets for k in MODALITY_TARGETS[m])}
