"""Permutation nulls for scores of time series: surrogates that keep autocorrelation but break alignment.

A surrogate replaces the prediction, never the measurement; the same surrogate is applied to
every column (voxel, feature), so the spatial correlation of the prediction is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from giblet.config import check_choice

__all__ = ["phase_randomize", "circular_shifts", "NULL_METHODS", "PermutationResult", "permutation_test",
           "pooled_shift_test"]


def phase_randomize(x, rng):
    """Fourier surrogate: same amplitude spectrum, random phases shared by all columns.

    Parameters
    ----------
    x : ndarray, shape (n_trs, ...), float
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape like ``x``, float64
        Same mean and power spectrum per column (Theiler et al. 1992).
    """
    return next(_phase_surrogates(x, 1, rng, None))


def circular_shifts(n_trs, n_permutations, rng, min_shift_trs=1):
    """Shift amounts for circular-shift surrogates.

    Parameters
    ----------
    n_trs : int
    n_permutations : int
    rng : numpy.random.Generator
    min_shift_trs : int, default=1
        Smallest shift either way; shifts closer to 0 (or ``n_trs``) keep too much alignment.

    Returns
    -------
    ndarray, shape (<= n_permutations,), int
        Every allowed shift once when there are at most ``n_permutations`` of them, else a
        random sample without replacement.
    """
    allowed = np.arange(min_shift_trs, n_trs - min_shift_trs + 1)
    if not len(allowed):
        raise ValueError(f"{n_trs} TRs leave no circular shift of at least {min_shift_trs} TRs; lower min_shift_trs")
    if len(allowed) <= n_permutations:
        return allowed
    return np.sort(rng.choice(allowed, n_permutations, replace=False))


def _roll(prediction, shift):
    if isinstance(prediction, dict):
        return {k: np.roll(v, shift, axis=0) for k, v in prediction.items()}
    return np.roll(prediction, shift, axis=0)


def _phase_surrogates(x, n_permutations, rng, min_shift_trs):
    if isinstance(x, dict):
        raise ValueError("phase randomisation takes one float array; use method='circular' for several arrays")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    columns = np.ascontiguousarray(x.reshape(n, -1).T)  # time last: contiguous FFTs, one spectrum for all draws
    spectrum = np.fft.rfft(columns, axis=-1)
    for _ in range(n_permutations):
        phases = rng.uniform(0, 2 * np.pi, spectrum.shape[-1])
        phases[0] = 0.0
        if n % 2 == 0:
            phases[-1] = 0.0  # the Nyquist term stays real
        yield np.fft.irfft(spectrum * np.exp(1j * phases), n=n, axis=-1).T.reshape(x.shape)


def _shift_surrogates(x, n_permutations, rng, min_shift_trs):
    n_trs = len(next(iter(x.values())) if isinstance(x, dict) else x)
    for shift in circular_shifts(n_trs, n_permutations, rng, min_shift_trs):
        yield _roll(x, shift)


#: Surrogate method -> generator ``(x, n_permutations, rng, min_shift_trs)`` of surrogates of ``x``.
NULL_METHODS = {"phase": _phase_surrogates, "circular": _shift_surrogates}


@dataclass(frozen=True)
class PermutationResult:
    """A score, the mean of its null distribution and its one-sided p-value.

    Attributes
    ----------
    observed, null_mean, p : ndarray, shape like the score's output, float64
        ``p = (1 + #(null >= observed)) / (1 + n_permutations)``; NaN where ``observed`` is NaN.
    n_permutations : int
        Surrogates actually drawn.
    null_sd : ndarray, shape like the score's output, float64
        Standard deviation of the null distribution.
    """

    observed: np.ndarray
    null_mean: np.ndarray
    p: np.ndarray
    n_permutations: int
    null_sd: np.ndarray

    @classmethod
    def from_null(cls, observed, null):
        """``observed`` (any shape) against null scores stacked on axis 0 (n_permutations, ...)."""
        observed, null = np.asarray(observed, dtype=np.float64), np.asarray(null, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            exceed = (null >= observed).sum(axis=0)
        return cls._from_sums(observed, null.sum(axis=0), (null**2).sum(axis=0), exceed, len(null))

    @classmethod
    def _from_sums(cls, observed, total, squares, exceed, count):
        p = np.where(np.isnan(observed), np.nan, (1.0 + exceed) / (1.0 + count))
        mean = total / count
        return cls(observed, mean, p, count, np.sqrt(np.maximum(squares / count - mean**2, 0.0)))

    def normal_p(self):
        """One-sided p of ``observed`` under a normal fit to the null (its mean and SD): finer than
        ``1 / (1 + n_permutations)``, so a false-discovery rate over thousands of tests is reachable."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return norm.sf((self.observed - self.null_mean) / self.null_sd)


def permutation_test(score, prediction, *, method="phase", n_permutations=1000, seed=0, min_shift_trs=1):
    """Score a prediction and its surrogates, keeping only running sums (memory stays small).

    Parameters
    ----------
    score : callable
        ``score(prediction) -> float or ndarray``; the truth is bound inside.
    prediction : ndarray, shape (n_trs, ...), or dict of such arrays
        Time on axis 0. ``"phase"`` needs one float array; ``"circular"`` shifts every array of a
        dict by the same amount and also suits categorical predictions (code indices).
    method : {"phase", "circular"}, default="phase"
    n_permutations : int, default=1000
        Surrogates drawn (circular: at most the number of allowed shifts).
    seed : int, default=0
    min_shift_trs : int, default=1
        For ``"circular"``: smallest shift, in TRs.

    Returns
    -------
    PermutationResult
    """
    check_choice("null method", method, NULL_METHODS)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    observed = np.asarray(score(prediction), dtype=np.float64)
    rng = np.random.default_rng(seed)
    total, squares, exceed, count = np.zeros(observed.shape), np.zeros(observed.shape), np.zeros(observed.shape), 0
    for surrogate in NULL_METHODS[method](prediction, n_permutations, rng, min_shift_trs):
        null = np.asarray(score(surrogate), dtype=np.float64)
        total += null
        squares += null**2
        with np.errstate(invalid="ignore"):
            exceed += null >= observed
        count += 1
    return PermutationResult._from_sums(observed, total, squares, exceed, count)


def pooled_shift_test(observed, nulls, weights, *, n_draws=1000, seed=0):
    """Test a score pooled over independent blocks, each scored under every circular shift of its own.

    The pooled score is the ``weights``-weighted mean of the blocks' scores; each null draw takes one
    shift of every block at random (blocks are shifted independently, as they were scored), so the
    null keeps each block's autocorrelation and size.

    Parameters
    ----------
    observed : ndarray, shape (n_blocks,), float
        Each block's score.
    nulls : sequence of ndarray, shape (n_shifts_b,), float
        Each block's score under each of its allowed shifts (e.g. :func:`circular_shifts` with
        ``n_permutations`` at least ``n_trs``).
    weights : ndarray, shape (n_blocks,), float
        E.g. the TRs scored in each block.
    n_draws : int, default=1000
    seed : int, default=0

    Returns
    -------
    PermutationResult
        Scalars.
    """
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    if len(observed) != len(weights) or len(nulls) != len(weights):
        raise ValueError(f"{len(observed)} scores, {len(nulls)} nulls and {len(weights)} weights: give one per block")
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.choice(np.asarray(null, dtype=np.float64), n_draws) for null in nulls], axis=1)
    pooled, null = float(weights @ np.asarray(observed, dtype=np.float64)), draws @ weights
    p = (1.0 + (null >= pooled).sum()) / (1.0 + n_draws)
    return PermutationResult(np.float64(pooled), np.float64(null.mean()), np.float64(p), n_draws,
                             np.float64(null.std()))
