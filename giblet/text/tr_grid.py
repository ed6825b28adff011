"""The TR grid: which run each TR belongs to and how much of each TR an interval covers.

TR ``t`` covers ``[t * tr_s, (t + 1) * tr_s)`` seconds from the first fMRI frame; runs
are concatenated on that clock. Segments (annotations) and frames (video) are intervals
``[onset_s, offset_s)`` on the same clock, and a TR's value is the overlap-weighted mean
of the intervals it overlaps.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["tr_run_ids", "run_bounds_s", "interval_tr_weights", "TRAccumulator", "overlap_mean"]


def tr_run_ids(n_trs, run_n_trs=None):
    """Run index of every TR.

    Parameters
    ----------
    n_trs : int
        Number of TRs in the scan (all runs).
    run_n_trs : sequence of int, optional
        TRs per run, in scan order (Sherlock: ``(946, 1030)``); one run when omitted.

    Returns
    -------
    ndarray, shape (n_trs,), int64
    """
    run_n_trs = (n_trs,) if run_n_trs is None else tuple(int(n) for n in run_n_trs)
    if sum(run_n_trs) != n_trs or min(run_n_trs) < 1:
        raise ValueError(
            f"run_n_trs={run_n_trs} must be positive and sum to n_trs={n_trs}; "
            "set run_n_trs to the TRs of each run in scan order"
        )
    return np.repeat(np.arange(len(run_n_trs)), run_n_trs)


def run_bounds_s(run_ids, tr_s):
    """Start and end of each run, in seconds from the first fMRI frame.

    Parameters
    ----------
    run_ids : ndarray, shape (n_trs,), int
        From :func:`tr_run_ids`.
    tr_s : float
        Repetition time, in seconds.

    Returns
    -------
    ndarray, shape (n_runs, 2), float64
    """
    edges = np.concatenate([[0], np.cumsum(np.bincount(run_ids))]) * float(tr_s)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def interval_tr_weights(onset_s, offset_s, n_trs, tr_s):
    """Seconds of overlap between every interval and every TR.

    Parameters
    ----------
    onset_s, offset_s : ndarray, shape (n_intervals,), float
        Interval ``[onset_s, offset_s)``, in seconds from the first fMRI frame.
        Parts outside ``[0, n_trs * tr_s)`` get no weight.
    n_trs : int
    tr_s : float
        Repetition time, in seconds.

    Returns
    -------
    scipy.sparse.csr_array, shape (n_trs, n_intervals), float64
        Overlap, in seconds.
    """
    onset_s = np.asarray(onset_s, dtype=np.float64)
    offset_s = np.asarray(offset_s, dtype=np.float64)
    first = np.clip(np.floor(onset_s / tr_s), 0, n_trs).astype(np.int64)
    stop = np.clip(np.ceil(offset_s / tr_s), 0, n_trs).astype(np.int64)
    count = np.maximum(stop - first, 0)
    col = np.repeat(np.arange(len(onset_s)), count)
    row = np.repeat(first, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    overlap = np.minimum(offset_s[col], (row + 1) * tr_s) - np.maximum(onset_s[col], row * tr_s)
    keep = overlap > 0
    return sparse.csr_array(
        (overlap[keep], (row[keep], col[keep])), shape=(n_trs, len(onset_s))
    )


class TRAccumulator:
    """Overlap-weighted sums of interval values on the TR grid, fed in any number of pieces.

    Intervals added one at a time (a frame at a time while decoding) are buffered and
    summed ``buffer_size`` at a time.

    Parameters
    ----------
    n_trs : int
    tr_s : float
        Repetition time, in seconds.
    n_features : int
    buffer_size : int, default=256
        Intervals held before they are summed into the grid.
    """

    def __init__(self, n_trs, tr_s, n_features, buffer_size=256):
        self.n_trs, self.tr_s, self.buffer_size = int(n_trs), float(tr_s), int(buffer_size)
        self.sums = np.zeros((self.n_trs, int(n_features)))
        self.covered_s = np.zeros(self.n_trs)
        self._pending = []

    def add(self, onset_s, offset_s, values):
        """Add intervals ``[onset_s, offset_s)`` (n_intervals,) with values (n_intervals, n_features)."""
        onset_s, offset_s = np.atleast_1d(onset_s), np.atleast_1d(offset_s)
        self._pending.append((onset_s, offset_s, np.asarray(values, dtype=np.float64).reshape(len(onset_s), -1)))
        if sum(len(p[0]) for p in self._pending) >= self.buffer_size:
            self._flush()

    def _flush(self):
        if not self._pending:
            return
        onset_s, offset_s, values = (np.concatenate(parts) for parts in zip(*self._pending))
        self._pending = []
        weights = interval_tr_weights(onset_s, offset_s, self.n_trs, self.tr_s).tocoo()
        np.add.at(self.sums, weights.row, weights.data[:, None] * values[weights.col])
        np.add.at(self.covered_s, weights.row, weights.data)

    def mean(self):
        """Overlap-weighted mean of the intervals within each TR.

        Returns
        -------
        means : ndarray, shape (n_trs, n_features), float32
            Zero where no interval overlaps the TR.
        covered_s : ndarray, shape (n_trs,), float64
            Total overlap of each TR, in seconds (exceeds ``tr_s`` where intervals overlap).
        """
        self._flush()
        covered = self.covered_s[:, None]
        means = np.divide(self.sums, covered, out=np.zeros_like(self.sums), where=covered > 0)
        return means.astype(np.float32), self.covered_s.copy()


def overlap_mean(onset_s, offset_s, values, n_trs, tr_s):
    """Overlap-weighted mean of interval values within each TR (see :class:`TRAccumulator`).

    Parameters
    ----------
    onset_s, offset_s : ndarray, shape (n_intervals,), float
        In seconds from the first fMRI frame.
    values : ndarray, shape (n_intervals, n_features)
    n_trs : int
    tr_s : float
        Repetition time, in seconds.

    Returns
    -------
    means : ndarray, shape (n_trs, n_features), float32
    covered_s : ndarray, shape (n_trs,), float64
    """
    values = np.asarray(values)
    accumulator = TRAccumulator(n_trs, tr_s, values.shape[1])
    accumulator.add(onset_s, offset_s, values)
    return accumulator.mean()
