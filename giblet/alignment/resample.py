"""Stimulus features (seconds) onto the fMRI frame grid, without interpolation.

Each frame ``t`` owns the window ``[frame_times[t], frame_times[t] + tr)``. Samples are
sample-and-hold intervals (see ``giblet.alignment._checks``), so a sample that straddles a
window edge is split between the two windows in proportion to time: every second of stimulus
is counted exactly once, whether a TR holds 112.5 codec frames or a fraction of an
annotation segment.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse

from giblet.alignment._checks import check_features, check_times, sample_ends, split_runs
from giblet.config import check_choice

__all__ = ["RESAMPLE_METHODS", "resample_to_trs"]

logger = logging.getLogger(__name__)


def _overlaps(starts, ends, sample_runs, win_starts, win_ends, frame_runs):
    """Frame index, sample index and overlap (seconds) of every overlapping same-run pair."""
    first = np.searchsorted(win_ends, starts, side="right")
    stop = np.searchsorted(win_starts, ends, side="left")
    counts = np.maximum(stop - first, 0)
    sample = np.repeat(np.arange(starts.size), counts)
    frame = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - first, counts)
    overlap = np.minimum(ends[sample], win_ends[frame]) - np.maximum(starts[sample], win_starts[frame])
    keep = (overlap > 0) & (sample_runs[sample] == frame_runs[frame])
    return frame[keep], sample[keep], overlap[keep]


def _mean(features, frame, sample, overlap, n_frames):
    covered = np.bincount(frame, weights=overlap, minlength=n_frames)
    weights = overlap / covered[frame]
    matrix = sparse.csr_matrix(
        (weights.astype(features.dtype), (frame, sample)), shape=(n_frames, features.shape[0])
    )
    return np.asarray(matrix @ features)


def _fraction(features, frame, sample, overlap, n_frames):
    if features.min() < 0 or features.max() > 1:
        raise ValueError(
            "how='fraction' needs category indicators or probabilities in [0, 1], got values in "
            f"[{features.min():.3g}, {features.max():.3g}]; use how='mean' for continuous features"
        )
    return _mean(features, frame, sample, overlap, n_frames)


def _last(features, frame, sample, overlap, n_frames):
    latest = np.full(n_frames, -1)
    np.maximum.at(latest, frame, sample)  # samples are sorted by time: the latest start wins
    out = np.zeros((n_frames, features.shape[1]), dtype=features.dtype)
    out[latest >= 0] = features[latest[latest >= 0]]
    return out


#: ``how`` -> resampler: overlap-weighted window mean, category fractions, or the value
#: held at the end of the window.
RESAMPLE_METHODS = {"mean": _mean, "fraction": _fraction, "last": _last}


def resample_to_trs(features, sample_times, frame_times, tr, how="mean", runs=None, *, durations=None):
    """Summarise stimulus features within each fMRI frame's window.

    Parameters
    ----------
    features : ndarray, shape (n_samples, n_features), float
        Continuous features, or indicators / probabilities for ``how="fraction"``. Integer
        arrays (code or label indices) are rejected: embed or one-hot encode them first.
    sample_times : ndarray, shape (n_samples,)
        Start of each sample, in seconds, strictly increasing. Each sample holds for
        ``durations``, by default until the next sample of its run (the last one of a run
        for the median sampling interval).
    frame_times : ndarray, shape (n_frames,)
        Start of each frame's window, in seconds on the same clock, strictly increasing.
    tr : float
        Repetition time (window length), in seconds.
    how : {"mean", "fraction", "last"}, default="mean"
        ``"mean"``: time-weighted mean of the samples overlapping the window (anti-aliased; a
        constant stays exactly constant). ``"fraction"``: the same for category indicators in
        [0, 1], giving the fraction of the window each category is on (rows of one-hot input
        sum to 1 in every covered window). ``"last"``: the value held at the end of the window
        (the latest sample overlapping it).
    runs : pair of ndarray (sample_runs (n_samples,), frame_runs (n_frames,)), optional
        Run label of every sample and frame; a window only sees samples of its run.
    durations : ndarray, shape (n_samples,), optional
        How long each sample holds, in seconds (annotation segments with gaps).

    Returns
    -------
    ndarray, shape (n_frames, n_features), dtype of ``features``
        Frames whose window holds no sample of their run (e.g. after a run's stimulus ended)
        are 0, as ``delay`` zero-fills run starts.
    """
    check_choice("how", how, RESAMPLE_METHODS)
    if not tr > 0:
        raise ValueError(f"tr must be a positive number of seconds, got {tr}")
    features = check_features(features)
    sample_times = check_times(sample_times, features.shape[0], "sample_times", strict=durations is None)
    frame_times = check_times(frame_times, None, "frame_times")
    sample_runs, frame_runs = split_runs(runs, sample_times.size, frame_times.size)
    ends = sample_ends(sample_times, sample_runs, durations)
    frame, sample, overlap = _overlaps(
        sample_times, ends, sample_runs, frame_times, frame_times + tr, frame_runs
    )
    n_empty = frame_times.size - np.unique(frame).size
    if n_empty:
        logger.info("%d of %d frames hold no stimulus sample of their run; they are 0",
                    n_empty, frame_times.size)
    return RESAMPLE_METHODS[how](features, frame, sample, overlap, frame_times.size)
