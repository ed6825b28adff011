"""Temporal mixing across TRs: learned FIR taps at fixed delays, zero-filled at chunk edges.

The encoder mixes the stimulus of past TRs into each TR (causal: voxels at TR ``t`` see
the stimulus at ``t - d``, ``d >= 0``); the decoder mixes the BOLD of later TRs (anti-causal:
the stimulus at TR ``t`` is read from BOLD at ``t + d``). Chunks lie inside one run, so no
tap crosses a run boundary; TRs outside the chunk read as zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["shift_trs", "trailing_means", "DelayMixer"]


def shift_trs(x, shift):
    """Shift a chunk along time: ``out[:, t] = x[:, t - shift]``, zeros where ``t - shift`` is outside.

    Parameters
    ----------
    x : Tensor, shape (B, T, n_features)
    shift : int
        TRs; positive reads the past, negative the future.

    Returns
    -------
    Tensor, shape (B, T, n_features)
    """
    n_trs = x.shape[1]
    before, after = max(shift, 0), max(-shift, 0)
    return F.pad(x, (0, 0, before, after))[:, after : after + n_trs]


def trailing_means(x, windows_trs):
    """``x`` beside its trailing means: ``[x, mean(x[t - k + 1 .. t]) for k in windows_trs]`` along features.

    The mean at ``t`` is over the last ``k`` TRs of the chunk up to ``t`` (fewer at the chunk's start, as at a
    run's start: :func:`giblet.training.encoder_routes.trailing_means` gives the same on whole runs).

    Parameters
    ----------
    x : Tensor, shape (B, T, n_features)
    windows_trs : sequence of int

    Returns
    -------
    Tensor, shape (B, T, n_features * (1 + len(windows_trs)))
    """
    if not windows_trs:
        return x
    total = F.pad(torch.cumsum(x, dim=1), (0, 0, 1, 0))
    t = torch.arange(x.shape[1], device=x.device)
    parts = [x]
    for k in windows_trs:
        start = (t + 1 - int(k)).clamp(min=0)
        parts.append((total[:, t + 1] - total[:, start]) / (t + 1 - start).to(x.dtype)[:, None])
    return torch.cat(parts, dim=-1)


class DelayMixer(nn.Module):
    """Learned FIR filter over TRs: a linear map of the input at ``t - s`` for every shift ``s``.

    Parameters
    ----------
    n_features : int
    shifts_trs : sequence of int
        Encoder: the delays ``(1, 2, 3, 4)``; decoder: their negatives.
    """

    def __init__(self, n_features, shifts_trs):
        super().__init__()
        self.shifts_trs = tuple(int(s) for s in shifts_trs)
        self.mix = nn.Linear(n_features * len(self.shifts_trs), n_features)

    def forward(self, x):
        """(B, T, n_features) float -> (B, T, n_features) float."""
        return self.mix(torch.cat([shift_trs(x, s) for s in self.shifts_trs], dim=-1))
