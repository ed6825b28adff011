"""Lesions: silence a region's voxels in the middle layer or in measured BOLD.

A lesioned voxel is replaced by zero, by its training mean, or by noise drawn from its
training mean and standard deviation (so the decoder sees in-distribution values that
carry no stimulus information). Pass the statistics of the same signal you lesion: of
the predicted voxels on training TRs for the middle layer, of measured BOLD otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from giblet.config import check_choice

__all__ = ["lesion", "roi_union", "LESION_MODES"]


def _zero(voxels, mean, std, generator):
    return torch.zeros((), dtype=voxels.dtype, device=voxels.device)


def _mean(voxels, mean, std, generator):
    return mean


def _noise(voxels, mean, std, generator):
    draw_on = generator.device if generator is not None else voxels.device
    noise = torch.randn(voxels.shape, generator=generator, device=draw_on, dtype=voxels.dtype)
    return mean + std * noise.to(voxels.device)


#: Mode -> (statistics it needs, ``replacement(voxels, mean, std, generator)``).
LESION_MODES = {"zero": ((), _zero), "mean": (("mean",), _mean), "noise": (("mean", "std"), _noise)}


def _as_mask(roi, n_voxels, device):
    roi = torch.as_tensor(roi if torch.is_tensor(roi) else np.asarray(roi), device=device)
    if roi.dtype == torch.bool:
        if roi.shape != (n_voxels,):
            raise ValueError(f"ROI mask has shape {tuple(roi.shape)}, expected ({n_voxels},) like the voxels' "
                             "last axis; pass the mask in the subject's voxel order")
        return roi
    if roi.is_floating_point() or roi.ndim != 1:
        raise ValueError(f"roi must be a bool mask (n_voxels,) or 1-D integer voxel indices, got {roi.dtype} "
                         f"{tuple(roi.shape)}")
    if roi.numel() and (roi.min() < 0 or roi.max() >= n_voxels):
        raise ValueError(f"ROI voxel indices must lie in [0, {n_voxels}), got [{int(roi.min())}, {int(roi.max())}]")
    mask = torch.zeros(n_voxels, dtype=torch.bool, device=device)
    mask[roi.long()] = True
    return mask


def _statistic(name, value, voxels):
    if value is None:
        raise ValueError(f"this lesion mode needs {name}=, the per-voxel training {name} of the lesioned signal")
    value = torch.as_tensor(value, dtype=voxels.dtype, device=voxels.device)
    if value.shape != voxels.shape[-1:]:
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected ({voxels.shape[-1]},), one per voxel")
    return value


def lesion(voxels, roi, mode="zero", *, mean=None, std=None, generator=None):
    """Replace the voxels of a region.

    Parameters
    ----------
    voxels : Tensor, shape (..., n_voxels), float
        Middle-layer predictions or measured BOLD (e.g. (B, T, n_voxels)).
    roi : Tensor or array-like
        Bool mask of shape (n_voxels,) or integer voxel indices (see :func:`roi_union`).
    mode : {"zero", "mean", "noise"}, default="zero"
        Replacement: 0, ``mean``, or ``mean + std * N(0, 1)`` drawn independently per element.
    mean, std : Tensor or array-like, shape (n_voxels,), optional
        Per-voxel training statistics; ``mean`` for "mean" and "noise", ``std`` for "noise".
    generator : torch.Generator, optional
        Source of the "noise" draws (the global generator when omitted).

    Returns
    -------
    Tensor, shape like ``voxels``
        A new tensor; ``voxels`` is unchanged and gradients flow through the kept voxels.
    """
    check_choice("lesion mode", mode, LESION_MODES)
    needs, replacement = LESION_MODES[mode]
    given = {"mean": mean, "std": std}
    stats = {name: _statistic(name, given[name], voxels) if name in needs else None for name in given}
    mask = _as_mask(roi, voxels.shape[-1], voxels.device)
    return torch.where(mask, replacement(voxels, stats["mean"], stats["std"], generator), voxels)


def roi_union(roi_masks, names):
    """Bool voxel mask of the union of named ROIs.

    Parameters
    ----------
    roi_masks : mapping of str to array-like, shape (n_voxels,), bool
        Each ROI's mask in the subject's voxel order.
    names : str or sequence of str

    Returns
    -------
    Tensor, shape (n_voxels,), bool
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in roi_masks]
    if unknown or not names:
        raise ValueError(f"unknown or no ROI names {unknown or names}; choose from {sorted(roi_masks)}")
    masks = [torch.as_tensor(np.asarray(roi_masks[n], dtype=bool)) for n in names]
    if len({m.shape for m in masks}) != 1:
        raise ValueError(f"ROI masks {names} have different shapes {[tuple(m.shape) for m in masks]}; "
                         "use masks in one subject's voxel order")
    return torch.stack(masks).any(0)
