"""The trunk's decoder head of text: predictions from the per-TR decoder vector (B, T, hidden).

Sound and pictures leave the autoencoder on routes of their own; the text head adds to a closed-form text
route (see :mod:`giblet.models.autoencoder`)."""

from __future__ import annotations

from torch import nn

__all__ = ["TextHead", "HEADS"]


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
        nn.init.zeros_(self.net[-1].weight)  # before training, text is decoded by the window decoder alone
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h):
        """(B, T, hidden) float -> (B, T, n_text_features) float."""
        return self.net(h)


#: Modality -> ``build(config)``; ``head(h)`` is that modality's prediction.
HEADS = {"text": TextHead}
