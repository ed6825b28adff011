"""Low-level visual features of single frames and of consecutive-frame differences.

Pixel values are gamma-encoded RGB scaled to [0, 1]; luminance is Rec. 709 luma
``Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOWLEVEL_FEATURES", "FRAME_FEATURE_NAMES", "luma", "frame_features", "motion_energy"]

_REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def luma(rgb):
    """Rec. 709 luma of an (height, width, 3) float RGB frame in [0, 1]; shape (height, width)."""
    return rgb @ _REC709


def _colorfulness(rgb, y):
    """Hasler & Suesstrunk (2003) colourfulness, on [0, 1] RGB (x255 gives their scale)."""
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())


def _saturation(rgb, y):
    """Mean HSV saturation, (max - min) / max per pixel (0 for black)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    return np.mean(np.divide(high - low, high, out=np.zeros_like(high), where=high > 0))


LOWLEVEL_FEATURES = {
    "luminance": lambda rgb, y: y.mean(),  # mean luma, 0-1
    "contrast": lambda rgb, y: y.std(),  # RMS contrast: std of luma, 0-0.5
    "red": lambda rgb, y: rgb[..., 0].mean(),
    "green": lambda rgb, y: rgb[..., 1].mean(),
    "blue": lambda rgb, y: rgb[..., 2].mean(),
    "saturation": _saturation,
    "colorfulness": _colorfulness,
}
FRAME_FEATURE_NAMES = (*LOWLEVEL_FEATURES, "motion_energy")


def frame_features(rgb):
    """Features of one frame, in :data:`LOWLEVEL_FEATURES` order.

    Parameters
    ----------
    rgb : ndarray, shape (height, width, 3), uint8

    Returns
    -------
    features : ndarray, shape (n_lowlevel,), float32
    y : ndarray, shape (height, width), float32
        Luma, for :func:`motion_energy`.
    """
    rgb = rgb.astype(np.float32) / 255.0
    y = luma(rgb)
    return np.array([f(rgb, y) for f in LOWLEVEL_FEATURES.values()], dtype=np.float32), y


def motion_energy(previous_y, y, interval_s):
    """Mean absolute luma change per second between consecutive frames.

    Parameters
    ----------
    previous_y, y : ndarray, shape (height, width), float
        Luma of the earlier and the later frame.
    interval_s : float
        Time between their onsets, in seconds (varies with variable frame rate).

    Returns
    -------
    float
        Luma units (0-1) per second.
    """
    return float(np.abs(y - previous_y).mean() / interval_s)
