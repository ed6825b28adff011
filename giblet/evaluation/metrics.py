"""Scores of predictions against truth: correlation, top-k, TR identification, SSIM, bootstrap CI, FDR.

Every function works on numpy arrays with time (TRs, or frames) on axis 0 and returns
per-item scores where a score decomposes over TRs, so that callers can average, bootstrap
or shift them (see :mod:`giblet.evaluation.nulls`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from giblet.stats import block_resamples, pearson_columns

__all__ = [
    "pearson_columns",
    "pearson_rows",
    "pearson_pairs",
    "at_shifts",
    "topk_hits",
    "identification_ranks",
    "identification_rank_pairs",
    "rank_accuracy",
    "shifted_rank_accuracy",
    "ssim",
    "shifted_ssim",
    "bootstrap_ci",
    "fdr_bh",
    "block_resamples",
]


def pearson_rows(prediction, target):
    """Pearson r between matching rows (e.g. decoded and true thumbnail of each TR).

    Parameters
    ----------
    prediction, target : ndarray, shape (n_trs, ...)
        Trailing axes are flattened.

    Returns
    -------
    ndarray, shape (n_trs,), float64
    """
    a, b = np.asarray(prediction), np.asarray(target)
    return pearson_columns(a.reshape(len(a), -1).T, b.reshape(len(b), -1).T)


def pearson_pairs(prediction, target):
    """Pearson r of every prediction row with every target row (trailing axes flattened).

    Returns
    -------
    ndarray, shape (n_predictions, n_targets), float64
        As :func:`pearson_rows` for each pair: NaN where the target row is constant, 0 where only the
        prediction row is.
    """
    a, b = (np.asarray(x, dtype=np.float64) for x in (prediction, target))
    a, b = (x.reshape(len(x), -1) for x in (a, b))
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    spread_a, spread_b = np.sqrt((a * a).sum(axis=1)), np.sqrt((b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(spread_a[:, None] > 0, (a @ b.T) / np.outer(spread_a, spread_b), 0.0)
    r[:, spread_b == 0] = np.nan
    return r


def at_shifts(pairs, shifts):
    """Per-TR scores under circular shifts, read off a matrix of every (decoded TR, true TR) pair's score.

    Shift ``s`` pairs true TR ``t`` with decoded TR ``(t - s) % n`` (``np.roll(decoded, s, axis=0)``).

    Parameters
    ----------
    pairs : ndarray, shape (n_trs, n_trs, ...)
        Score of decoded TR ``i`` against true TR ``j`` at ``[i, j]``.
    shifts : sequence of int

    Returns
    -------
    ndarray, shape (n_shifts, n_trs, ...)
    """
    n = len(pairs)
    true = np.arange(n)
    return pairs[(true[None] - np.asarray(shifts)[:, None]) % n, true[None]]


def topk_hits(topk, target):
    """Whether each target is among the k best predictions.

    Parameters
    ----------
    topk : ndarray, shape (..., k), int
        Predicted classes, best first (e.g. ``logits.topk(k).indices``); pass ``[..., :1]`` for top-1.
    target : ndarray, shape (...), int
        True classes (e.g. EnCodec code indices).

    Returns
    -------
    ndarray, shape (...), bool
    """
    topk, target = np.asarray(topk), np.asarray(target)
    if topk.shape[:-1] != target.shape:
        raise ValueError(f"topk {topk.shape} must be target's shape {target.shape} plus a k axis")
    return (topk == target[..., None]).any(axis=-1)


def _row_correlations(decoded, true):
    """Pearson r of every decoded row with every true row: (decoded TR, candidate TR), 0 for a constant row."""
    decoded, true = np.asarray(decoded, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if decoded.shape != true.shape or decoded.ndim != 2 or len(decoded) < 2:
        raise ValueError(f"decoded {decoded.shape} and true {true.shape} must be one (n_trs>=2, n_features) shape")
    return np.nan_to_num(pearson_pairs(decoded, true))


def identification_ranks(decoded, true):
    """Rank of the true TR among all candidate TRs, by correlation with the decoded features.

    Parameters
    ----------
    decoded, true : ndarray, shape (n_trs, n_features), float
        Decoded and true features of the same TRs, each standardised (e.g. z-scored per
        feature) so that no feature dominates the correlation.

    Returns
    -------
    ndarray, shape (n_trs,), float64
        0 when the true TR correlates best with the decoded row, ``n_trs - 1`` when worst;
        ties with the true TR count one half each, so a constant decoding ranks at chance.
    """
    return np.diag(identification_rank_pairs(decoded, true))


def identification_rank_pairs(decoded, true):
    """:func:`identification_ranks` of every pairing: ``[i, j]`` ranks true TR ``j`` among all candidates by their
    correlation with decoded TR ``i`` (better candidates plus half the ties); shape (n_trs, n_trs), float64."""
    return stats.rankdata(-_row_correlations(decoded, true), method="average", axis=1) - 1.0


def rank_accuracy(ranks, n_candidates):
    """``1 - rank / (n_candidates - 1)``: 1 for perfect identification, 0.5 at chance (1 - normalised rank)."""
    return 1.0 - np.asarray(ranks, dtype=np.float64) / (n_candidates - 1)


def shifted_rank_accuracy(decoded, true, shifts):
    """Mean rank accuracy of ``decoded`` circularly shifted by each of ``shifts`` TRs against ``true``.

    Shift ``s`` pairs true TR ``t`` with decoded TR ``(t - s) % n_trs`` (``np.roll(decoded, s, axis=0)``)
    and ranks the true TR among all candidates, as :func:`identification_ranks` does; every shift
    reads one correlation matrix, so a whole circular-shift null costs one identification.

    Parameters
    ----------
    decoded, true : ndarray, shape (n_trs, n_features), float
        Standardised as for :func:`identification_ranks`.
    shifts : ndarray, shape (n_shifts,), int
        0 is the observed pairing.

    Returns
    -------
    ndarray, shape (n_shifts,), float64
    """
    return rank_accuracy(at_shifts(identification_rank_pairs(decoded, true), shifts), len(true)).mean(axis=1)


def ssim(estimate, reference, data_range=1.0, sigma=1.5):
    """Mean structural similarity of images (Wang et al. 2004, Gaussian window).

    Parameters
    ----------
    estimate, reference : ndarray, shape (n_images, n_channels, height, width), float
    data_range : float, default=1.0
        Range of pixel values (1 for thumbnails in [0, 1]).
    sigma : float, default=1.5
        Standard deviation of the Gaussian window, in pixels (truncated at 3.5 sigma).

    Returns
    -------
    ndarray, shape (n_images,), float64
        SSIM averaged over pixels and channels; 1 for identical images.
    """
    return shifted_ssim(estimate, reference, [0], data_range, sigma)[0]


def shifted_ssim(estimate, reference, shifts, data_range=1.0, sigma=1.5):
    """:func:`ssim` of ``np.roll(estimate, s, axis=0)`` against ``reference`` for each shift ``s``, shape
    (n_shifts, n_images): every image's local means and variances are blurred once, the cross term per pair."""
    x, y = np.asarray(estimate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"estimate {x.shape} and reference {y.shape} must be one (n_images, channels, h, w) shape")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(z):
        return ndimage.gaussian_filter(z, sigma=(0, 0, sigma, sigma), truncate=3.5, mode="reflect")

    mx, my = blur(x), blur(y)
    vx, vy = blur(x * x) - mx**2, blur(y * y) - my**2
    out = np.empty((len(shifts), len(x)))
    for i, shift in enumerate(shifts):
        rolled, m_rolled, v_rolled = (np.roll(a, shift, axis=0) for a in (x, mx, vx))
        cxy = blur(rolled * y) - m_rolled * my
        index = ((2 * m_rolled * my + c1) * (2 * cxy + c2)) / ((m_rolled**2 + my**2 + c1) * (v_rolled + vy + c2))
        out[i] = index.mean(axis=(1, 2, 3))
    return out


def bootstrap_ci(values, *, n_bootstrap=1000, seed=0, block_trs=1, level=0.95, with_p=False):
    """Mean over TRs and its moving-block bootstrap confidence interval (and, ``with_p``, a two-sided p).

    Parameters
    ----------
    values : ndarray, shape (n_trs,) or (n_trs, n_columns), float
        Per-TR scores (e.g. lesioned minus intact), in time order.
    n_bootstrap : int, default=1000
    seed : int, default=0
    block_trs : int, default=1
        Length of the resampled blocks of consecutive TRs; > 1 keeps the autocorrelation of
        fMRI-derived scores within a block (1 is the ordinary bootstrap).
    level : float, default=0.95

    with_p : bool, default=False
        Also return the two-sided p of a zero mean under a normal fit to the resampled means (its SD as the
        standard error): unlike their share beyond 0, it goes below ``1 / n_bootstrap``, as a false-discovery
        rate over hundreds of tests needs.

    Returns
    -------
    mean, low, high[, p] : ndarray, shape (n_columns,) (floats for 1-D input)
        NaN TRs are left out.
    """
    values = np.asarray(values, dtype=np.float64)
    squeeze = values.ndim == 1
    values = values.reshape(len(values), -1)
    n = len(values)
    if n < 1 or not 1 <= block_trs <= n:
        raise ValueError(f"need >= 1 TR and 1 <= block_trs <= n_trs = {n}, got block_trs={block_trs}")
    index = block_resamples(n, n_bootstrap=n_bootstrap, block_trs=block_trs, seed=seed)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(values[index], axis=1)  # (n_bootstrap, n_columns)
        low, high = np.nanquantile(means, [(1 - level) / 2, (1 + level) / 2], axis=0)
        mean = np.nanmean(values, axis=0)
    out = [mean, low, high]
    if with_p:
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(mean == 0, 1.0, 2 * stats.norm.sf(np.abs(mean) / np.nanstd(means, axis=0))))
    return tuple(float(v[0]) for v in out) if squeeze else tuple(out)


def fdr_bh(p_values):
    """Benjamini-Hochberg adjusted p-values (q), ignoring NaN.

    Parameters
    ----------
    p_values : ndarray, shape (n_tests,), float

    Returns
    -------
    ndarray, shape (n_tests,), float64
        ``scipy.stats.false_discovery_control(p, method="bh")`` over the finite p-values; NaN elsewhere.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method="bh")
    return q
