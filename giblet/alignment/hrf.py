"""Canonical haemodynamic response kernels and exact, causal HRF convolution.

The kernels use nilearn's gamma-difference parameterisation
(``nilearn.glm.first_level.glover_hrf`` / ``spm_hrf`` and their derivatives), normalised, as
nilearn does, so that the main kernel integrates to 1 over ``duration``: a unit input held
for longer than ``duration`` gives a response of 1. Unlike nilearn's functions, which take
point samples on a ``linspace`` grid whose spacing is not exactly ``dt`` and start one sample
late, the kernels here are evaluated in closed form (gamma CDFs), so time is exact at any
resolution.

:func:`convolve_hrf` treats stimulus features as sample-and-hold signals (see
``giblet.alignment._checks``) and evaluates the continuous-time convolution only at the
frame times: ``y(f) = sum_i x_i * (C(f - t_i) - C(f - e_i))``, where ``C`` is the running
integral of the kernel and ``[t_i, e_i)`` the interval that sample ``i`` holds. This is exact
for any sampling (regular, irregular, 75 Hz with 112.5 samples per TR), causal (``C`` is 0
for negative lags) and never builds the fine time course.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from scipy.stats import gamma
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from giblet.alignment._checks import check_features, check_times, sample_ends, split_runs
from giblet.config import check_choice

__all__ = ["HRF_MODELS", "HRF_COMPONENTS", "Hrf", "hrf_kernel", "convolve_hrf"]

logger = logging.getLogger(__name__)

# nilearn.glm.first_level.hemodynamic_models.glover_hrf / spm_hrf
_GLOVER = dict(delay=6.0, undershoot=12.0, dispersion=0.9, u_dispersion=0.9, ratio=0.48)
_SPM = dict(delay=6.0, undershoot=16.0, dispersion=1.0, u_dispersion=1.0, ratio=0.167)
_TIME_DERIVATIVE_STEP_S = 0.1  # as nilearn's *_time_derivative
_DISPERSION_DERIVATIVE_STEP = 0.01  # as nilearn's *_dispersion_derivative
_TABLE_STEP_S = 2e-4  # running-integral table; linear interpolation error < 1e-9
_BLOCK_SPANS = 1  # frames per block span one HRF length (fastest in benchmarks/bench_alignment.py)
_BLOCK_WEIGHTS = 2**22  # at most ~4M weights per block, whatever the sampling rate


def _gamma_difference_integral(t, duration, *, delay, undershoot, dispersion, u_dispersion, ratio, onset=0.0):
    """Integral from 0 to ``t`` (seconds) of the gamma-difference HRF, 1 at ``duration``."""

    def integral(u):
        return gamma.cdf(u, delay / dispersion, scale=dispersion) - ratio * gamma.cdf(
            u, undershoot / u_dispersion, scale=u_dispersion
        )

    return integral(np.clip(t, 0.0, duration) - onset) / integral(duration - onset)


def _hrf(t, duration, shape):
    return _gamma_difference_integral(t, duration, **shape)


def _time_derivative(t, duration, shape):
    shifted = _gamma_difference_integral(t, duration, **shape, onset=_TIME_DERIVATIVE_STEP_S)
    return (_hrf(t, duration, shape) - shifted) / _TIME_DERIVATIVE_STEP_S


def _dispersion_derivative(t, duration, shape):
    wider = {**shape, "dispersion": shape["dispersion"] + _DISPERSION_DERIVATIVE_STEP}
    return (_hrf(t, duration, shape) - _hrf(t, duration, wider)) / _DISPERSION_DERIVATIVE_STEP


def _components(shape, n):
    return tuple(partial(f, shape=shape) for f in (_hrf, _time_derivative, _dispersion_derivative)[:n])


#: Model name -> running integrals ``C(t, duration)`` of its kernels, in ``HRF_COMPONENTS`` order.
HRF_MODELS = {
    "glover": _components(_GLOVER, 1),
    "glover+derivative": _components(_GLOVER, 2),
    "glover+derivative+dispersion": _components(_GLOVER, 3),
    "spm": _components(_SPM, 1),
    "spm+derivative": _components(_SPM, 2),
    "spm+derivative+dispersion": _components(_SPM, 3),
}
#: Names of a model's kernels, in output order (a model uses the first 1, 2 or 3).
HRF_COMPONENTS = ("hrf", "derivative", "dispersion")


@dataclass(frozen=True)
class Hrf:
    """The haemodynamic response :func:`convolve_hrf` applies.

    Attributes
    ----------
    model : str, default="glover"
        One of :data:`HRF_MODELS` (nilearn's spelling with spaces is accepted too).
    duration : float, default=32.0
        Kernel length, in seconds.
    """

    model: str = "glover"
    duration: float = 32.0


def _model_components(model):
    key = str(model).replace(" ", "")  # also accept nilearn's "glover + derivative"
    check_choice("model", key, HRF_MODELS)
    return HRF_MODELS[key]


def hrf_kernel(model="glover", dt=0.1, duration=32.0):
    """Canonical HRF kernels averaged over bins of ``dt`` seconds.

    Parameters
    ----------
    model : str, default="glover"
        One of :data:`HRF_MODELS` (nilearn's spelling with spaces is accepted too).
    dt : float, default=0.1
        Bin width, in seconds. Row ``j`` is the kernel's mean over ``[j*dt, (j+1)*dt)``.
    duration : float, default=32.0
        Kernel length, in seconds; the last bin is cut at ``duration``.

    Returns
    -------
    ndarray, shape (n_taps, n_kernels), float64
        ``n_taps = ceil(duration / dt)``; columns follow :data:`HRF_COMPONENTS`. The main
        kernel sums to ``1 / dt`` (unit integral), derivatives to 0. Row 0 starts at lag 0:
        the kernel is causal.
    """
    components = _model_components(model)
    if not (dt > 0 and duration > 0):
        raise ValueError(f"dt and duration must be positive seconds, got dt={dt}, duration={duration}")
    n_taps = int(np.ceil(duration / dt - 1e-9))
    edges = np.arange(n_taps + 1) * dt
    integrals = np.stack([c(edges, duration) for c in components], axis=1)
    return np.diff(integrals, axis=0) / dt


@lru_cache(maxsize=16)
def _integral_table(model, duration):
    """Running integrals at lags ``0, step, 2*step, ...``: shape (n_grid, n_kernels)."""
    grid = np.arange(int(np.ceil(duration / _TABLE_STEP_S)) + 2) * _TABLE_STEP_S
    return np.stack([c(grid, duration) for c in _model_components(model)], axis=1)


def _lookup(table, lags):
    """Linear interpolation of ``table`` (uniform step) at ``lags`` (seconds): (..., n_kernels)."""
    position = np.clip(lags, 0.0, (table.shape[0] - 2) * _TABLE_STEP_S) / _TABLE_STEP_S
    index = position.astype(np.intp)
    fraction = (position - index)[..., None]
    return table[index] * (1.0 - fraction) + table[index + 1] * fraction


def _frame_blocks(times_s, span_s, max_frames):
    """Split sorted frame times into consecutive blocks spanning at most ``span_s``."""
    blocks, start = [], 0
    while start < times_s.size:
        stop = min(start + max_frames, max(start + 1, int(np.searchsorted(times_s, times_s[start] + span_s))))
        blocks.append((start, stop))
        start = stop
    return blocks


def convolve_hrf(
    features,
    sample_times,
    frame_times,
    hrf=Hrf(),
    runs=None,
    slice_time_ref=0.0,
    *,
    durations=None,
    dtype=np.float32,
):
    """Convolve stimulus features with the HRF in continuous time and sample at frame times.

    Parameters
    ----------
    features : ndarray, shape (n_samples, n_features), float
        Continuous stimulus features (embeddings, envelopes, one-hot indicators). Integer
        arrays (code indices) are rejected: embed them first.
    sample_times : ndarray, shape (n_samples,)
        Start of each sample, in seconds on the stimulus clock, strictly increasing; regular
        or irregular. Each sample holds for ``durations``, by default until the next sample
        of its run (the last one of a run for the median sampling interval).
    frame_times : ndarray, shape (n_frames,)
        Acquisition start of each fMRI frame, in seconds on the same clock, strictly
        increasing. For pre-shifted data pass the acquisition times, not the stored index
        times (see :func:`giblet.alignment.scan_frame_times`).
    hrf : Hrf, default=Hrf()
        Kernel model and length (default: Glover's HRF over 32 s).
    runs : pair of ndarray (sample_runs (n_samples,), frame_runs (n_frames,)), optional
        Run label of every sample and every frame. A frame only sees samples of its own
        run: nothing crosses a run boundary. ``None`` means one run.
    slice_time_ref : float in [0, 1], default=0.0
        Fraction of the repetition time at which the modelled slice is acquired, as in
        nilearn: the response is sampled at ``frame_times + slice_time_ref * TR``, with TR
        the median frame spacing.
    durations : ndarray, shape (n_samples,), optional
        How long each sample holds, in seconds (annotation segments with gaps); by default
        until the next sample of its run.
    dtype : numpy dtype, default=np.float32
        Output dtype (and of the matrix products).

    Returns
    -------
    ndarray, shape (n_frames, n_kernels * n_features), ``dtype``
        Kernel-major columns: the first ``n_features`` use the main HRF, the next its time
        derivative, then its dispersion derivative (:data:`HRF_COMPONENTS`). Derivative
        columns are not orthogonalised.

    Notes
    -----
    Frames are processed in blocks spanning one HRF length; each block multiplies a small
    weight matrix (frames x samples up to ``hrf.duration`` before them) with the matching rows
    of ``features``. Memory beyond input and output is one block (at most ~4M weights, fewer
    frames per block at high sampling rates) plus a few vectors of length ``n_samples``,
    whatever the number of features; runtime is linear in samples and in features.
    """
    features = check_features(features)
    sample_times = check_times(sample_times, features.shape[0], "sample_times", strict=durations is None)
    frame_times = check_times(frame_times, None, "frame_times")
    sample_runs, frame_runs = split_runs(runs, sample_times.size, frame_times.size)
    if not 0.0 <= slice_time_ref <= 1.0:
        raise ValueError(f"slice_time_ref must be a fraction of the TR in [0, 1], got {slice_time_ref}")
    if slice_time_ref and frame_times.size < 2:
        raise ValueError("slice_time_ref needs at least two frame_times to know the TR")
    duration = float(hrf.duration)
    table = _integral_table(hrf.model, duration)
    n_kernels, n_features = table.shape[1], features.shape[1]

    times = frame_times + slice_time_ref * np.median(np.diff(frame_times)) if slice_time_ref else frame_times
    ends = sample_ends(sample_times, sample_runs, durations)
    # Sample i holds over [edges[first[i]], edges[last[i]]): the kernel integral is evaluated
    # once per distinct edge (about n_samples + n_runs), not twice per sample.
    edges = np.unique(np.concatenate([sample_times, ends]))
    first, last = np.searchsorted(edges, sample_times), np.searchsorted(edges, ends)
    reach = np.maximum.accumulate(last)  # sorted, so each block's samples are a search away
    reach_s = edges[reach]
    out = np.zeros((times.size, n_kernels * n_features), dtype=dtype)
    rate_hz = (sample_times.size - 1) / max(sample_times[-1] - sample_times[0], duration)
    samples_per_block = (_BLOCK_SPANS + 1) * duration * rate_hz
    max_frames = max(1, int(_BLOCK_WEIGHTS / max(samples_per_block, 1.0)))
    blocks = _frame_blocks(times, _BLOCK_SPANS * duration, max_frames)
    logger.debug("HRF convolution: %d samples x %d features -> %d frames in %d blocks",
                 sample_times.size, n_features, times.size, len(blocks))
    # Many small products: one BLAS thread each is fastest, and predictable when jobs share cores.
    with threadpool_limits(1, user_api="blas"):
        for f0, f1 in tqdm(blocks, desc="HRF convolution", unit="block", leave=False, disable=None):
            s0 = int(np.searchsorted(reach_s, times[f0] - duration, side="right"))
            s1 = int(np.searchsorted(sample_times, times[f1 - 1]))
            if s1 <= s0:
                continue
            e0, e1 = first[s0], reach[s1 - 1] + 1
            integral = _lookup(table, times[f0:f1, None] - edges[None, e0:e1])  # (frames, edges, kernels)
            same_run = (frame_runs[f0:f1, None] == sample_runs[None, s0:s1])[..., None]
            weights = (integral[:, first[s0:s1] - e0] - integral[:, last[s0:s1] - e0]) * same_run
            weights = weights.astype(dtype)
            block = features[s0:s1].astype(dtype, copy=False)
            for k in range(n_kernels):
                out[f0:f1, k * n_features : (k + 1) * n_features] = weights[:, :, k] @ block
    return out
