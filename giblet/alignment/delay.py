"""Finite-impulse-response (FIR) delays on the TR grid: the flexible alternative to an HRF."""

from __future__ import annotations

import numpy as np

from giblet.alignment._checks import check_delays, check_features, check_runs

__all__ = ["delay"]


def delay(features, delays=(1, 2, 3, 4), runs=None):
    """Stack copies of TR-grid features shifted by whole TRs, as himalaya's ``Delayer``.

    Parameters
    ----------
    features : ndarray, shape (n_trs, n_features), float
        Features already on the frame grid (e.g. from :func:`resample_to_trs`), un-convolved.
    delays : sequence of int, default=(1, 2, 3, 4)
        Shifts, in TRs. Row ``t`` of block ``k`` holds ``features[t - delays[k]]``: a positive
        delay models a response that lags the stimulus (negative delays lead).
    runs : ndarray, shape (n_trs,), int, optional
        Run label of every row; rows of a run must be contiguous. Shifts never cross a run
        boundary: rows whose source lies in another run (run starts) are 0.

    Returns
    -------
    ndarray, shape (n_trs, n_delays * n_features), dtype of ``features``
        Delay-major columns: the first ``n_features`` columns use ``delays[0]``, and so on.
    """
    features = check_features(features)
    delays = check_delays(delays)
    n_trs, n_features = features.shape
    runs = check_runs(runs, n_trs, "runs")
    if (np.diff(runs) < 0).any():
        raise ValueError("runs must be contiguous and in time order (non-decreasing labels)")
    out = np.zeros((n_trs, len(delays) * n_features), dtype=features.dtype)
    rows = np.arange(n_trs)
    for k, d in enumerate(delays):  # a handful of delays; each is one vectorised copy
        source = rows - d
        valid = (source >= 0) & (source < n_trs)
        valid[valid] = runs[source[valid]] == runs[valid]
        out[valid, k * n_features : (k + 1) * n_features] = features[source[valid]]
    return out
