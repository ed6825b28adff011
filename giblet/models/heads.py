"""Decoder heads: stimulus predictions from the per-TR decoder vector (B, T, hidden)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AudioHead", "ThumbnailHead", "TextHead", "HEADS"]


class AudioHead(nn.Module):
    """Per-frame codec latents and per-codebook code logits for every TR.

    A TR vector is upsampled to ``frames_per_tr`` frame latents by learned frame queries and
    a temporal convolution over the frames. The latent lives in the codec's latent space
    (dimension ``codebook_dim``); :meth:`logits` scores it coarse to fine against the
    codebook tables shared with the input tower, as the codec's residual quantizer does
    (negative squared distance to every entry, softly subtracting each level's expected
    vector before scoring the next), plus a learned log prior per code (``code_bias``, which
    ``build_model`` sets to the training code frequencies). No layer outputs
    ``frames × codebooks × entries``.

    Parameters
    ----------
    config : AutoencoderConfig
    embedding : CodebookEmbedding
        The input tower's tables (tied scoring).
    """

    def __init__(self, config, embedding):
        super().__init__()
        self.embedding = embedding
        self.frame_queries = nn.Parameter(0.02 * torch.randn(config.frames_per_tr, config.hidden))
        self.conv = nn.Conv1d(config.hidden, config.hidden, kernel_size=5, padding=2)
        self.out = nn.Linear(config.hidden, config.codebook_dim)
        self.act = nn.GELU()
        with torch.no_grad():  # start with logits of unit spread: scale = 1 / mean squared distance to centre
            spread = torch.stack([(t.weight - t.weight.mean(0)).pow(2).sum(-1).mean() for t in embedding.tables])
        self.log_scale = nn.Parameter(-spread.clamp_min(1e-6).log())
        self.code_bias = nn.Parameter(torch.zeros(config.n_codebooks, config.codebook_size))

    def forward(self, h):
        """Predicted codec latent of every frame slot.

        Parameters
        ----------
        h : Tensor, shape (B, T, hidden), float

        Returns
        -------
        Tensor, shape (B, T, frames_per_tr, codebook_dim), float
            Continuous latent per frame slot; slots beyond a TR's frame count are meaningless
            (mask them with ``audio_mask``). Quantize valid frames with the codec
            (``EncodecCodec.quantize``) or take ``logits(latent).argmax(-1)``.
        """
        x = self.act(h.unsqueeze(-2) + self.frame_queries)  # (B, T, W, hidden)
        x = self.act(self.conv(x.flatten(0, -3).transpose(1, 2))).transpose(1, 2).reshape(x.shape)
        return self.out(x)

    def logits(self, latent):
        """Code logits of latents, coarse to fine.

        Parameters
        ----------
        latent : Tensor, shape (..., codebook_dim), float
            Any leading shape, e.g. (B, T, W) from :meth:`forward` or (n_frames,) of selected frames.

        Returns
        -------
        Tensor, shape (..., n_codebooks, codebook_size), float
            Unnormalised log-probabilities of every codebook entry.
        """
        residual, levels = latent, []
        last = len(self.embedding.tables) - 1
        for level, (table, log_scale, bias) in enumerate(zip(self.embedding.tables, self.log_scale, self.code_bias)):
            vectors = table.weight  # (codebook_size, codebook_dim)
            logits = log_scale.exp() * (2 * residual @ vectors.T - vectors.pow(2).sum(-1)) + bias
            if level < last:
                residual = residual - logits.softmax(-1) @ vectors
            levels.append(logits)
        return torch.stack(levels, dim=-2)


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


#: Modality -> ``build(config, codebook_embedding)``; ``head(h)`` is that modality's prediction.
HEADS = {
    "audio": AudioHead,
    "video": lambda config, embedding: ThumbnailHead(config),
    "text": lambda config, embedding: TextHead(config),
}
