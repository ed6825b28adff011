"""A linear decoder of per-TR stimulus features from a few selected voxels in the BOLD window after each TR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WindowDecoder"]

_FITTED = ("selected", "mean", "scale", "weight", "bias")


class WindowDecoder(nn.Module):
    """``features[t] = ((window[t] - mean) / scale) @ weight + bias``, ``window[t] = [bold[t + d, selected] for d in delays]``.

    One subject's decoder of a low-dimensional per-TR descriptor (e.g. the 32-band log-mel of the
    sound) from the voxels that encode it: its weights are fitted in closed form by
    :func:`giblet.training.window_decoders.fit_window_decoder` (ridge on the training block) and
    stored as buffers, so the decoder moves, saves and loads with the autoencoder but never
    trains by gradient. With decoder delays ``d >= 1``, the features decoded at TR ``t`` depend
    on BOLD at TRs ``t + d`` only; TRs past the end of a chunk read as zero.

    Parameters
    ----------
    n_voxels : int
        Voxels of the subject's brain space (the width of the BOLD it reads).
    n_features : int
        Width of the decoded descriptor.
    delays : sequence of int
        TR offsets of the window (the autoencoder's ``decoder_delays_trs``).

    Notes
    -----
    Until :meth:`set_weights` is called the decoder selects no voxel and predicts zeros. Loading
    a state dict resizes the buffers to the saved decoder's selection.
    """

    def __init__(self, n_voxels, n_features, delays):
        super().__init__()
        self.n_voxels, self.n_features, self.delays = int(n_voxels), int(n_features), tuple(int(d) for d in delays)
        self.register_buffer("selected", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.register_buffer("weight", torch.zeros(0, self.n_features))
        self.register_buffer("bias", torch.zeros(self.n_features))

    @property
    def n_selected(self) -> int:
        return len(self.selected)

    def set_weights(self, selected, mean, scale, weight, bias):
        """Install a fitted decoder.

        Parameters
        ----------
        selected : array-like, shape (n_selected,), int
            Voxel indices, in the window's column order.
        mean, scale : array-like, shape (n_selected * n_delays,), float
            Standardisation of the window's columns (delay-major: all selected voxels at the
            first delay, then the next).
        weight : array-like, shape (n_selected * n_delays, n_features), float
        bias : array-like, shape (n_features,), float
        """
        selected = torch.as_tensor(selected, dtype=torch.long).reshape(-1)
        width = len(selected) * len(self.delays)
        values = {"mean": mean, "scale": scale, "weight": weight, "bias": bias}
        values = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()}
        expected = {"mean": (width,), "scale": (width,), "weight": (width, self.n_features), "bias": (self.n_features,)}
        wrong = {k: tuple(v.shape) for k, v in values.items() if tuple(v.shape) != expected[k]}
        if wrong or (len(selected) and (selected.min() < 0 or selected.max() >= self.n_voxels)):
            raise ValueError(f"a decoder of {len(selected)} voxels (of {self.n_voxels}) x {len(self.delays)} delays "
                             f"-> {self.n_features} features needs shapes {expected}; got {wrong or 'indices outside'}")
        device = self.bias.device
        self.selected = selected.to(device)
        for name, value in values.items():
            setattr(self, name, value.to(device))

    def forward(self, voxels):
        """Decoded features, shape (B, T, n_features), from BOLD (B, T, n_voxels)."""
        if voxels.shape[-1] != self.n_voxels:
            raise ValueError(f"the decoder reads {self.n_voxels} voxels, got BOLD of shape {tuple(voxels.shape)}")
        x = voxels[..., self.selected].to(self.weight.dtype)
        n_trs = x.shape[1]
        window = torch.cat([F.pad(x[:, d:], (0, 0, 0, min(d, n_trs))) for d in self.delays], dim=-1)
        return ((window - self.mean) / self.scale) @ self.weight + self.bias

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in _FITTED:  # the saved decoder's selection sets the buffers' sizes
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        return f"n_voxels={self.n_voxels}, n_selected={self.n_selected}, delays={self.delays}, n_features={self.n_features}"
