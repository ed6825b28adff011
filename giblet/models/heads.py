"""Decoder heads of pictures and text: stimulus predictions from the per-TR decoder vector (B, T, hidden).

Sound leaves the autoencoder through the code model instead (see :mod:`giblet.models.autoencoder`)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ThumbnailHead", "TextHead", "HEADS"]


class ThumbnailHead(nn.Module):
    """Per-TR thumbnail in [0, 1]: a linear map to a quarter-size grid, then two 2x transposed convolutions.

    Parameters
    ----------
    config : AutoencoderConfig
    channels : int, default=16
        Feature maps of the intermediate grids.
    """

    def __init__(self, config, channels=16):
        super().__init__()
        n_out, height, width = config.thumb_shape
        self.grid = (channels, height // 4, width // 4)
        self.proj = nn.Linear(config.hidden, channels * (height // 4) * (width // 4))
        self.up = nn.Sequential(
            nn.GELU(),
            nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(channels, n_out, kernel_size=4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, h):
        """(B, T, hidden) float -> (B, T, *thumb_shape) float in [0, 1]."""
        x = self.proj(h).reshape(-1, *self.grid)
        x = self.up(x)
        return x.reshape(*h.shape[:-1], *x.shape[1:])


class TextHead(nn.Module):
    """Per-TR text embedding (scored by cosine, so its norm is free).

    Parameters
    ----------
    config : AutoencoderConfig
    """

    def __init__(self, config):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.n_text_features)
        )

    def forward(self, h):
        """(B, T, hidden) float -> (B, T, n_text_features) float."""
        return self.net(h)


#: Modality -> ``build(config)``; ``head(h)`` is that modality's prediction.
HEADS = {"video": ThumbnailHead, "text": TextHead}
