"""A linear map between per-TR series through a window of TR lags, fitted in closed form (ridge) and stored as buffers."""

from __future__ import annotations

import torch
from torch import nn

from giblet.models.temporal import shift_trs, trailing_means

__all__ = ["LaggedLinear"]

_FITTED = ("inputs", "outputs", "mean", "scale", "weight", "bias")


class LaggedLinear(nn.Module):
    """``y[t, outputs] = ((window[t] - mean) / scale) @ weight + bias``, ``window[t] = [z[t + lag] for lag in lags]``.

    ``z`` is ``x[:, inputs]`` beside its trailing means over each of ``context`` TRs
    (:func:`~giblet.models.temporal.trailing_means`; ``z = x[:, inputs]`` without context).

    The autoencoder's closed-form routes, one per subject: the **window decoders** (voxels -> the
    sound's log-mel or the pictures' descriptor; ``inputs`` the voxels that encode it, lags
    ``+1..+4``: BOLD after the TR) and the **encoder routes** (a feature band's columns -> the voxels
    it predicts best out of sample; lags ``-1..-4``: the stimulus before the TR). Weights are fitted by ridge
    (:mod:`giblet.training.routes`) and held as buffers: they move, save and load with the
    autoencoder but never train by gradient. Output columns outside ``outputs`` are zero.

    Parameters
    ----------
    n_in, n_out : int
        Widths of the series read and written.
    lags : sequence of int
        TR offsets of the window (positive: later TRs, anti-causal; negative: earlier, causal).
    context : sequence of int, default=()
        Trailing windows (TRs) whose means of the inputs the map also reads at every lag (long-timescale
        context; a chunk needs ``max(context) - 1`` TRs before its earliest lag).

    Notes
    -----
    Until :meth:`set_weights` is called the map reads and writes nothing (zeros). Loading a state
    dict resizes the buffers to the saved map's selection.
    """

    def __init__(self, n_in, n_out, lags, context=()):
        super().__init__()
        self.n_in, self.n_out, self.lags = int(n_in), int(n_out), tuple(int(lag) for lag in lags)
        self.context = tuple(int(k) for k in context)
        self.register_buffer("inputs", torch.zeros(0, dtype=torch.long))
        self.register_buffer("outputs", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.register_buffer("weight", torch.zeros(0, 0))
        self.register_buffer("bias", torch.zeros(0))

    def set_weights(self, inputs, outputs, mean, scale, weight, bias):
        """Install a fitted map.

        Parameters
        ----------
        inputs : array-like, shape (n_inputs,), int
            Columns of ``x`` read, in the window's column order.
        outputs : array-like, shape (n_outputs,), int
            Columns of ``y`` written.
        mean, scale : array-like, shape (n_inputs * (1 + n_context) * n_lags,), float
            Standardisation of the window's columns (lag-major: every input, then its trailing means in
            ``context`` order, at the first lag, then the next).
        weight : array-like, shape (n_inputs * (1 + n_context) * n_lags, n_outputs), float
        bias : array-like, shape (n_outputs,), float
        """
        index = {k: torch.as_tensor(v, dtype=torch.long).reshape(-1) for k, v in (("inputs", inputs),
                                                                                  ("outputs", outputs))}
        width, n_outputs = len(index["inputs"]) * (1 + len(self.context)) * len(self.lags), len(index["outputs"])
        values = {k: torch.as_tensor(v, dtype=torch.float32)
                  for k, v in (("mean", mean), ("scale", scale), ("weight", weight), ("bias", bias))}
        expected = {"mean": (width,), "scale": (width,), "weight": (width, n_outputs), "bias": (n_outputs,)}
        wrong = {k: tuple(v.shape) for k, v in values.items() if tuple(v.shape) != expected[k]}
        outside = any(len(i) and (i.min() < 0 or i.max() >= n) for i, n in ((index["inputs"], self.n_in),
                                                                           (index["outputs"], self.n_out)))
        if wrong or outside:
            raise ValueError(f"a map of {len(index['inputs'])} of {self.n_in} inputs x {1 + len(self.context)} "
                             f"(context {self.context}) x {len(self.lags)} lags -> "
                             f"{n_outputs} of {self.n_out} outputs needs shapes {expected}; got "
                             f"{wrong or 'indices outside'}")
        device = self.bias.device
        for name, value in {**index, **values}.items():
            setattr(self, name, value.to(device))

    def forward(self, x):
        """The mapped series, shape (B, T, n_out), from ``x`` (B, T, n_in)."""
        if x.shape[-1] != self.n_in:
            raise ValueError(f"the map reads {self.n_in} columns, got shape {tuple(x.shape)}")
        selected = trailing_means(x[..., self.inputs].to(self.weight.dtype), self.context)
        window = torch.cat([shift_trs(selected, -lag) for lag in self.lags], dim=-1)  # x[t + lag], 0 outside
        y = ((window - self.mean) / self.scale) @ self.weight + self.bias
        out = torch.zeros(*x.shape[:-1], self.n_out, dtype=y.dtype, device=y.device)
        return out.index_copy(-1, self.outputs, y)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in _FITTED:  # the saved map's selection sets the buffers' sizes
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        return (f"n_in={self.n_in}, n_out={self.n_out}, lags={self.lags}, context={self.context}, "
                f"inputs={len(self.inputs)}, outputs={len(self.outputs)}")
