"""Input checks and the sample-and-hold clock shared by the alignment functions.

Convention: a stimulus sample holds its value from its time stamp for its duration, by
default until the next sample of the same run starts (the last sample of a run for the
median sampling interval).
"""

from __future__ import annotations

import numpy as np


def check_features(features, name="features"):
    """Return ``features`` as a 2-D float array, or raise naming the problem and the fix."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {features.shape}; "
            "pass a single feature as x[:, None]"
        )
    if np.issubdtype(features.dtype, np.integer) or features.dtype == np.bool_:
        raise TypeError(
            f"{name} has integer dtype {features.dtype}: integers are category or code indices, "
            "which must never be averaged, interpolated or convolved; embed them first "
            "(codec codebook vectors or one-hot columns) and pass floats"
        )
    if not np.issubdtype(features.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {features.dtype}")
    # A float64 sum streams over the array (no full-size temporary); NaN/inf propagate.
    if not np.isfinite(features.sum(dtype=np.float64)):
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        if bad.size:
            raise ValueError(
                f"{name} has {bad.size} rows with NaN or inf (first: row {bad[0]}); "
                "fill them (e.g. with the training mean) or drop those samples first"
            )
    return features


def check_times(times, n, name, strict=True):
    """Return ``times`` (seconds) as float64, checking length ``n`` and increase.

    ``strict=False`` allows ties: samples with explicit durations (annotation segments) may
    start together or overlap.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or (n is not None and times.size != n):
        expected = "(n,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must have shape {expected}, got {times.shape}")
    if times.size == 0 or not np.isfinite(times).all():
        raise ValueError(f"{name} must be non-empty and finite")
    steps = np.diff(times)
    bad = steps <= 0 if strict else steps < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name} must increase{' strictly' if strict else ''}, but {name}[{i}]={times[i]} "
            f"{'>=' if strict else '>'} "
            f"{name}[{i + 1}]={times[i + 1]}; put all runs on one continuous clock "
            "(run r starts where run r-1 ended) and sort by time"
        )
    return times


def check_runs(runs, n, name):
    """Return run labels of shape ``(n,)`` as int64; ``None`` means one run."""
    if runs is None:
        return np.zeros(n, dtype=np.int64)
    runs = np.asarray(runs)
    if runs.shape != (n,) or not np.issubdtype(runs.dtype, np.integer):
        raise ValueError(f"{name} must be integer run labels of shape ({n},), got {runs.dtype} {runs.shape}")
    return runs.astype(np.int64, copy=False)


def split_runs(runs, n_samples, n_frames):
    """Unpack ``runs=(sample_runs, frame_runs)`` (or ``None``) into two label arrays."""
    if runs is None:
        return check_runs(None, n_samples, ""), check_runs(None, n_frames, "")
    if len(runs) != 2:
        raise ValueError("runs must be a pair (sample_runs, frame_runs) or None")
    return check_runs(runs[0], n_samples, "runs[0] (sample runs)"), check_runs(
        runs[1], n_frames, "runs[1] (frame runs)"
    )


def sample_ends(sample_times, sample_runs, durations=None):
    """End time of each sample, in seconds.

    Parameters
    ----------
    sample_times : ndarray, shape (n_samples,), float64
        Start of each sample, in seconds, strictly increasing.
    sample_runs : ndarray, shape (n_samples,), int
    durations : array-like, shape (n_samples,), optional
        Explicit durations, in seconds (e.g. annotation segments with gaps). By default a
        sample lasts until the next sample of its run; the last of a run for the median
        sampling interval.

    Returns
    -------
    ndarray, shape (n_samples,), float64
    """
    if durations is not None:
        durations = np.asarray(durations, dtype=np.float64)
        valid = durations.shape == sample_times.shape and np.isfinite(durations).all() and (durations > 0).all()
        if not valid:
            raise ValueError(
                f"durations must be positive finite seconds of shape {sample_times.shape}, "
                f"got shape {durations.shape}; pass None to hold each sample until the next"
            )
        return sample_times + durations
    same_run = sample_runs[1:] == sample_runs[:-1]
    if not same_run.any():
        raise ValueError(
            "need at least two samples in one run to know how long a sample lasts; "
            "pass durations, or add the sample that ends the stimulus (e.g. a row of zeros at its end)"
        )
    ends = sample_times + np.median(np.diff(sample_times)[same_run])
    ends[:-1][same_run] = sample_times[1:][same_run]
    return ends


def check_delays(delays):
    """Return ``delays`` (TRs) as a list of distinct ints."""
    delays = [int(d) for d in delays]
    if not delays or len(set(delays)) != len(delays):
        raise ValueError(f"delays must be distinct whole numbers of TRs, got {delays}")
    return delays
