"""Run the autoencoder over whole pieces of a block, one subject at a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from giblet.training.data import make_batch, windows
from giblet.training.trainer import to_tensors


def one_subject(data, subject, bold=None):
    """``data`` restricted to ``subject`` (optionally with replaced BOLD, e.g. lesioned), sharing arrays."""
    if subject not in data.bold:
        raise ValueError(f"subject {subject!r} is not in the movie data; it has {list(data.subjects)}")
    return dataclasses.replace(data, bold={subject: data.bold[subject] if bold is None else bold},
                               bold_valid={subject: data.bold_valid[subject]})


def block_batch(model, data, subject, block, device):
    """Whole pieces of ``block`` with the encoder's past and the decoder's future context.

    Returns
    -------
    spans : list of (lo, a, b, hi)
        From :func:`giblet.training.data.windows`; row ``i`` of the batch holds TRs ``lo..hi``.
    stimulus : dict of str to Tensor, each (n_pieces, T, ...)
    bold : Tensor, shape (n_pieces, T, n_voxels)
        The subject's BOLD, zero outside ``block`` (no held-out measurement enters).
    """
    config = model.config
    spans = windows(data, block, None, None, config.encoder_past_trs, max(config.decoder_delays_trs))
    if not spans:
        raise ValueError(f"the split has no {block!r} TRs; give split.fractions a share for it")
    stimulus, _, bold, *_ = make_batch(one_subject(data, subject), spans, block)
    return spans, to_tensors(stimulus, device), to_tensors(bold[subject], device)


def scatter(spans, values, n_trs, fill):
    """Put per-window outputs (n_pieces, T, ...) back on the clock: (n_trs, ...), ``fill`` outside the pieces."""
    values = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    out = np.full((n_trs,) + values.shape[2:], fill, dtype=values.dtype)
    for i, (lo, a, b, _) in enumerate(spans):
        out[a:b] = values[i, a - lo : b - lo]
    return out
