"""Losses of the autoencoder, each restricted to valid TRs (and, for audio, valid frames).

Every loss returns a scalar: a mean over the valid positions it scores, or a zero that
keeps the graph when nothing is valid. Code indices are only used as cross-entropy targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from giblet.models.config import MODALITY_TARGETS

__all__ = [
    "code_cross_entropy",
    "audio_code_loss",
    "voxel_mse",
    "voxel_neg_pearson",
    "thumbnail_mse",
    "text_cosine",
    "FMRI_LOSSES",
    "RECONSTRUCTION_LOSSES",
    "fmri_losses",
    "reconstruction_losses",
]


def _frame_major(codes):
    """(..., n_codebooks, W) -> (..., W, n_codebooks), the layout of latents and logits."""
    return codes.transpose(-1, -2)


def _cross_entropy(logits, codes):
    """Mean cross-entropy (nats) of selected frames: logits (N, n_codebooks, K), codes (N, n_codebooks)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1), codes.flatten().long())


def code_cross_entropy(logits, codes, frame_valid):
    """Cross-entropy of code logits over valid frames.

    Parameters
    ----------
    logits : Tensor, shape (B, T, W, n_codebooks, codebook_size), float
        From ``AudioHead.logits(latent)``.
    codes : Tensor, shape (B, T, n_codebooks, W), integer
        Target code indices; anything at invalid frames (e.g. ``PAD_CODE``).
    frame_valid : Tensor, shape (B, T, W), bool
        ``audio_mask & tr_valid[..., None]``; invalid frames contribute nothing.

    Returns
    -------
    Tensor, scalar
        Mean over valid frames and codebooks, in nats (``log(codebook_size)`` for chance).
    """
    return _cross_entropy(logits[frame_valid], _frame_major(codes)[frame_valid])


def audio_code_loss(head, latent, codes, frame_valid, *, max_frames=None, generator=None):
    """:func:`code_cross_entropy` computing logits only at valid (optionally subsampled) frames.

    Scoring every frame slot against every codebook entry is the costliest step of
    training; this scores only the valid frames, or a uniform random ``max_frames`` of them
    (an unbiased estimate of the same mean).

    Parameters
    ----------
    head : AudioHead
    latent : Tensor, shape (B, T, W, codebook_dim), float
        The head's output.
    codes : Tensor, shape (B, T, n_codebooks, W), integer
    frame_valid : Tensor, shape (B, T, W), bool
    max_frames : int, optional
        Score at most this many valid frames; all when omitted.
    generator : torch.Generator, optional
        For the frame subsample (on the CPU); the global generator when omitted.

    Returns
    -------
    Tensor, scalar
        Mean cross-entropy in nats.
    """
    index = frame_valid.nonzero()
    if max_frames is not None and len(index) > max_frames:
        index = index[torch.randperm(len(index), generator=generator)[:max_frames].to(index.device)]
    index = tuple(index.T)
    return _cross_entropy(head.logits(latent[index]), _frame_major(codes)[index])


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
        Keeps constant voxels finite (their correlation counts as 0).

    Returns
    -------
    Tensor, scalar
        In [-1, 1]; 0 with fewer than 2 valid TRs.
    """
    pred, target = _valid_rows(pred, target, tr_valid)
    if len(pred) < 2:
        return pred.sum() * 0.0
    pred, target = pred - pred.mean(0), target - target.mean(0)
    r = (pred * target).sum(0) / ((pred.pow(2).sum(0) * target.pow(2).sum(0)).sqrt() + eps)
    return -r.mean()


def thumbnail_mse(pred, target, tr_valid):
    """Pixel mean squared error of thumbnails over valid TRs.

    Parameters
    ----------
    pred, target : Tensor, shape (B, T, channels, height, width), float in [0, 1]
    tr_valid : Tensor, shape (B, T), bool

    Returns
    -------
    Tensor, scalar
    """
    return _mse(pred, target, tr_valid)


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


def _audio(model, predictions, targets, tr_valid, max_audio_frames, generator):
    frame_valid = targets["audio_mask"] & tr_valid[..., None]
    return audio_code_loss(model.audio_head, predictions["audio"], targets["audio_codes"], frame_valid,
                           max_frames=max_audio_frames, generator=generator)


def _video(model, predictions, targets, tr_valid, max_audio_frames, generator):
    return thumbnail_mse(predictions["video"], targets["thumbs"], tr_valid)


def _text(model, predictions, targets, tr_valid, max_audio_frames, generator):
    return text_cosine(predictions["text"], targets["text"], tr_valid)


#: Modality -> loss of its head's prediction against the targets in ``MODALITY_TARGETS``.
RECONSTRUCTION_LOSSES = {"audio": _audio, "video": _video, "text": _text}


def reconstruction_losses(model, predictions, targets, tr_valid, *, max_audio_frames=None, generator=None):
    """Loss of every predicted modality whose targets are present.

    Parameters
    ----------
    model : GibletAutoencoder
        Supplies the audio head's code scoring.
    predictions : dict of str to Tensor
        From ``decode``/``autoencode``.
    targets : dict of str to Tensor
        Batch with the keys of :data:`~giblet.models.config.MODALITY_TARGETS`.
    tr_valid : Tensor, shape (B, T), bool
    max_audio_frames : int, optional
        See :func:`audio_code_loss`.
    generator : torch.Generator, optional
        For the audio frame subsample.

    Returns
    -------
    dict of str to Tensor
        Modality -> scalar loss (audio: cross-entropy in nats; video: pixel MSE; text: cosine distance).
    """
    return {
        m: RECONSTRUCTION_LOSSES[m](model, predictions, targets, tr_valid, max_audio_frames, generator)
        for m in predictions
        if all(k in targets for k in MODALITY_TARGETS[m])
    }
