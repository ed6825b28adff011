"""Modality dropout: drop whole modalities' inputs in training, always keeping at least one."""

from __future__ import annotations

import torch

__all__ = ["modality_keep_mask"]


def modality_keep_mask(batch_size, n_modalities, p, *, generator=None, device=None):
    """Which modality inputs each chunk keeps.

    Each (chunk, modality) is dropped independently with probability ``p``; a chunk that
    lost every modality gets one back, chosen uniformly.

    Parameters
    ----------
    batch_size : int
        Chunks in the batch (B).
    n_modalities : int
    p : float
        Drop probability, in [0, 1).
    generator : torch.Generator, optional
        Source of randomness (the global generator when omitted); draws happen on its device.
    device : torch.device or str, optional
        Device of the returned mask.

    Returns
    -------
    Tensor, shape (B, n_modalities), bool
        True where the modality is kept; every row has at least one True.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"modality dropout p must be in [0, 1), got {p}")
    draw_on = generator.device if generator is not None else device
    keep = torch.rand(batch_size, n_modalities, generator=generator, device=draw_on) >= p
    rescue = torch.randint(n_modalities, (batch_size,), generator=generator, device=draw_on)
    keep[torch.arange(batch_size, device=keep.device), rescue] |= ~keep.any(dim=1)
    return keep.to(device) if device is not None else keep
