"""Sampling codes from per-TR code distributions: seeded Gumbel-max draws with each TR's exact frame count."""

from __future__ import annotations

import numpy as np
import torch

from giblet.audio.codes import PAD_CODE, _frames_per_tr, stream_from_trs, tr_frame_spans

__all__ = ["sample_codes", "sample_stream"]

_SAMPLE_CHUNK_TRS = 8  # TRs of Gumbel noise drawn at once


def sample_codes(log_probs, mask, seed=0):
    """One code per frame slot and codebook, drawn from its TR's code distribution (seeded Gumbel-max).

    The noise is drawn on the CPU with a generator seeded by ``seed``, ``8`` TRs at a time in the layout
    (TRs, slots, codebooks, codes): the same seed gives the same noise, so two predictions (intact and
    lesioned, or from two subjects) differ only where their probabilities do.

    Parameters
    ----------
    log_probs : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Per-TR (log-)probabilities up to a constant per row (e.g. :meth:`CodeModel.log_probs`).
    mask : ndarray, shape (n_trs, width), bool
        Real frame slots of these TRs (``codes_by_tr``'s mask; :func:`sample_stream` makes it).
    seed : int, default=0

    Returns
    -------
    ndarray, shape (n_trs, n_codebooks, width), int64
        Code indices in ``codes_by_tr``'s layout; ``PAD_CODE`` where ``mask`` is False (feed to
        ``trs_waveform`` or ``stream_from_trs``).
    """
    log_probs = torch.as_tensor(log_probs).detach().float().cpu()
    mask = np.asarray(mask, dtype=bool)
    if log_probs.ndim != 3 or mask.ndim != 2 or len(mask) != len(log_probs):
        raise ValueError(f"log_probs {tuple(log_probs.shape)} (n_trs, n_codebooks, codebook_size) and mask "
                         f"{mask.shape} (n_trs, width) must cover the same TRs")
    generator = torch.Generator().manual_seed(int(seed))
    width, draws = mask.shape[1], []
    for start in range(0, len(log_probs), _SAMPLE_CHUNK_TRS):
        chunk = log_probs[start : start + _SAMPLE_CHUNK_TRS]
        shape = (len(chunk), width) + tuple(chunk.shape[1:])
        uniform = torch.rand(shape, generator=generator).clamp(1e-12, 1 - 1e-12)
        draws.append((chunk[:, None] - torch.log(-torch.log(uniform))).argmax(-1).numpy())
    codes = np.concatenate(draws).transpose(0, 2, 1).astype(np.int64) if draws else np.zeros(
        (0, log_probs.shape[1], width), np.int64)
    codes[np.broadcast_to(~mask[:, None, :], codes.shape)] = PAD_CODE
    return codes


def _trs_mask(n_trs, tr_s, frame_rate_hz, first_tr):
    """``codes_by_tr``'s mask of TRs ``first_tr, ...``: (n_trs, width) bool."""
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    spans = tr_frame_spans(n_trs, tr_s, frame_rate_hz, first_tr)
    return np.arange(-(-p // q)) < (spans[:, 1] - spans[:, 0])[:, None]


def sample_stream(log_probs, *, tr_s, frame_rate_hz, first_tr=0, seed=0, **stream_meta):
    """A seeded code stream for a stretch of TRs, with each TR's exact frame count.

    Parameters
    ----------
    log_probs : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Per-TR code log-probabilities of consecutive TRs.
    tr_s : float
        Repetition time, in seconds.
    frame_rate_hz : float
        Codec frame rate, in hertz.
    first_tr : int, default=0
        Scan index of the first TR (sets the 112/113-frame pattern at 1.5 s and 75 Hz).
    seed : int, default=0
    **stream_meta
        ``codec_id``, ``bandwidth_kbps``, ``codec_status`` of the stream.

    Returns
    -------
    CodeStream
        ``codes`` (n_codebooks, n_frames) int16, ``first_frame`` the first TR's first frame.
    """
    mask = _trs_mask(len(log_probs), tr_s, frame_rate_hz, first_tr)
    codes = sample_codes(log_probs, mask, seed)
    return stream_from_trs(np.where(mask[:, None, :], codes, 0), mask, tr_s=tr_s, frame_rate_hz=frame_rate_hz,
                           first_tr=first_tr, **stream_meta)
