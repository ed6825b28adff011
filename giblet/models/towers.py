"""Modality input towers: one per-TR vector of width ``hidden`` from each modality's input.

Audio code indices are categories: they only ever select rows of per-codebook
``nn.Embedding`` tables (:class:`CodebookEmbedding`); no index enters arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CodebookEmbedding", "AudioTower", "FeatureTower", "TOWERS"]


class CodebookEmbedding(nn.Module):
    """One embedding table per residual codebook, initialised from the codec's codebook vectors.

    Parameters
    ----------
    n_codebooks, codebook_size, codebook_dim : int
    codebook_vectors : array-like, shape (n_codebooks, codebook_size, codebook_dim), float, optional
        The codec's own codebooks (``EncodecCodec.codebook_vectors()``); N(0, 1) when omitted.
    trainable : bool, default=False
        Whether the tables train.
    """

    def __init__(self, n_codebooks, codebook_size, codebook_dim, codebook_vectors=None, trainable=False):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(codebook_size, codebook_dim) for _ in range(n_codebooks))
        if codebook_vectors is not None:
            vectors = torch.as_tensor(codebook_vectors, dtype=torch.float32)
            expected = (n_codebooks, codebook_size, codebook_dim)
            if tuple(vectors.shape) != expected:
                raise ValueError(
                    f"codebook_vectors has shape {tuple(vectors.shape)}, expected {expected} "
                    "(n_codebooks, codebook_size, codebook_dim); match the config to the codec"
                )
            with torch.no_grad():
                for table, vector in zip(self.tables, vectors):
                    table.weight.copy_(vector)
        self.requires_grad_(trainable)

    def forward(self, codes, mask):
        """Look up every frame's codes.

        Parameters
        ----------
        codes : Tensor, shape (..., n_codebooks, n_frames), integer
            Code indices; slots where ``mask`` is False may hold anything (e.g. ``PAD_CODE``).
        mask : Tensor, shape (..., n_frames), bool

        Returns
        -------
        Tensor, shape (..., n_frames, n_codebooks, codebook_dim), float
            Zero at masked-out frames.
        """
        index = torch.where(mask.unsqueeze(-2), codes, 0).long()
        vectors = torch.stack([table(index[..., c, :]) for c, table in enumerate(self.tables)], dim=-2)
        return vectors * mask[..., None, None]


class AudioTower(nn.Module):
    """Per-TR audio vector from the codes of the TR's frames and the TR's log-mel.

    Frame embeddings (summed or concatenated over codebooks) are projected to ``hidden``,
    mixed by a temporal convolution over the TR's frames and pooled by attention over the
    valid frames only, so TRs of 112 and 113 frames are treated alike; a linear projection of
    the TR's (standardised) log-mel is added.

    Parameters
    ----------
    config : AutoencoderConfig
    embedding : CodebookEmbedding
        The codec's codebook tables (frozen unless ``train_codebooks``).
    """

    def __init__(self, config, embedding):
        super().__init__()
        self.embedding = embedding
        self.merge = config.audio_merge
        width = config.codebook_dim * (config.n_codebooks if self.merge == "concat" else 1)
        # No per-frame normalisation: a frame latent's norm carries its loudness (what drives
        # auditory cortex); one fixed scale, set from the codebooks, keeps activations near unit size.
        with torch.no_grad():
            power = torch.stack([table.weight.pow(2).mean() for table in embedding.tables])
            rms = power.sum().sqrt() if self.merge == "sum" else power.mean().sqrt()
        self.register_buffer("scale", 1.0 / rms.clamp_min(1e-6))
        self.proj = nn.Linear(width, config.hidden)
        self.conv = nn.Conv1d(config.hidden, config.hidden, kernel_size=5, padding=2)
        self.score = nn.Linear(config.hidden, 1)
        self.descriptor = nn.Linear(config.n_audio_descriptor, config.hidden)
        self.act = nn.GELU()

    def forward(self, audio_codes, audio_mask, audio_descriptor):
        """
        Parameters
        ----------
        audio_codes : Tensor, shape (B, T, n_codebooks, frames_per_tr), integer
        audio_mask : Tensor, shape (B, T, frames_per_tr), bool
        audio_descriptor : Tensor, shape (B, T, n_audio_descriptor), float

        Returns
        -------
        Tensor, shape (B, T, hidden), float
            Zero for TRs without valid frames.
        """
        frames = self.embedding(audio_codes, audio_mask)  # (B, T, W, n_codebooks, D)
        frames = frames.sum(-2) if self.merge == "sum" else frames.flatten(-2)
        x = self.act(self.proj(frames * self.scale)) * audio_mask[..., None]  # (B, T, W, hidden)
        x = self.act(self.conv(x.flatten(0, -3).transpose(1, 2))).transpose(1, 2).reshape(x.shape)
        scores = self.score(x).squeeze(-1).masked_fill(~audio_mask, torch.finfo(x.dtype).min)
        weights = scores.softmax(-1) * audio_mask  # all-masked TRs: uniform weights, zeroed here
        has_frames = audio_mask.any(-1, keepdim=True)
        return (weights.unsqueeze(-1) * x).sum(-2) + self.descriptor(audio_descriptor) * has_frames


class FeatureTower(nn.Module):
    """Per-TR MLP from a float feature vector (video features, text embedding) to ``hidden``.

    Parameters
    ----------
    n_features, hidden : int
    """

    def __init__(self, n_features, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, features):
        """(B, T, n_features) float -> (B, T, hidden) float."""
        return self.net(features)


#: Modality -> ``build(config, codebook_embedding)``; the tower's ``forward`` takes ``MODALITY_INPUTS[modality]``.
TOWERS = {
    "audio": AudioTower,
    "video": lambda config, embedding: FeatureTower(config.n_video_features, config.hidden),
    "text": lambda config, embedding: FeatureTower(config.n_text_features, config.hidden),
}
