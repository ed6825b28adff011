"""Bad TRs and bad voxels: found, named and reported, never silently used.

Bad TRs (``Quality.bad_trs``; a TR gets the first reason that applies, in this order):

- ``"nan"``: volumes with NaN in more than half of the voxels that hold data (missing volumes).
- ``"constant"``: volumes in which every non-NaN voxel holds the same value (a zero-filled
  volume, or every volume of a zero-filled run, the first one too).
- ``"repeated"``: a volume identical to the one before it (NaN where it is NaN). Real scanners
  never produce two identical volumes; copies stand in for missing data (Sherlock s5 stores
  its last 50 TRs as copies of TR 1925). The first volume of a repeated stretch is kept.
- ``"outlier"``: a volume far from the rest of its run, by a global, DVARS-like criterion: its
  mean absolute deviation from the voxelwise median of the run, as a robust z (median and
  MAD over the run's usable TRs), is above ``OUTLIER_Z`` = 40. Clean data stay far below:
  at most 6 in the demo data, 9 in AR(1) noise with drift and a global signal, 20 in the
  Sherlock PMC voxels (s1-s12: 481 voxels so coherent that the measure follows their mean).
  A zero volume of raw demo data scores about 2000, half a volume zeroed 1000, a volume scaled
  by 1.05 about 90, one with thrice the noise about 45.

Bad voxels (``Quality.bad_voxels``):

- ``"nan"``: voxels with NaN at more than ``max_nan_fraction`` (default 5 %) of the TRs that are
  not NaN volumes. Voxels with fewer NaN are kept: their NaN samples are filled later by
  interpolation in time (:func:`giblet.fmri.clean.fill_nan_samples`). Dropping more than 10 %
  of the voxels for NaN logs a warning; more than 90 % is an error.
- ``"constant"``: no variation over the reference TRs (outside the brain, or a voxel that
  only the model's training block would see as flat).

Every kind of bad TR found is logged at WARNING with the file and the TR ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from giblet.blocks import column_blocks

__all__ = ["MAX_NAN_FRACTION", "OUTLIER_Z", "Quality", "constant_voxels", "find_bad"]

log = logging.getLogger(__name__)

MAX_NAN_FRACTION = 0.05  # default fmri.max_nan_fraction: a voxel with NaN at more of its TRs is dropped
OUTLIER_Z = 40.0  # robust z of a volume's mean absolute deviation above which it is an outlier
_NAN_TR_FRACTION = 0.5  # a volume with NaN in more than this share of the voxels holding data is a bad TR
_WARN_NAN_VOXELS = 0.1  # dropping more than this share of the voxels for NaN is worth a warning...
_MAX_NAN_VOXELS = 0.9  # ...and more than this share is an error
_OUTLIER_VOXELS = 16384  # the outlier measure uses at most this many voxels, evenly spread (a global measure)
_MIN_OUTLIER_TRS = 20  # runs with fewer usable TRs are too short for a median/MAD: not screened for outliers
_MAD_TO_SD = 1.4826  # MAD of normal data x 1.4826 = its standard deviation
_TR_REASONS = {
    "nan": "NaN volumes",
    "constant": "constant volumes (every voxel one value, e.g. zero-filled)",
    "repeated": "copies of the volume before",
    "outlier": f"outlier volumes (global deviation robust z > {OUTLIER_Z:g})",
}


@dataclass(frozen=True)
class Quality:
    """Bad TRs and voxels, by reason.

    Attributes
    ----------
    bad_trs : dict of str -> ndarray, shape (n_trs,), bool
        ``"nan"``, ``"constant"``, ``"repeated"`` and ``"outlier"`` volumes (a TR has one reason).
    bad_voxels : dict of str -> ndarray, shape (n_voxels,), bool
        ``"nan"`` and ``"constant"`` voxels (a voxel has the first reason that applies).
    """

    bad_trs: dict
    bad_voxels: dict

    @property
    def tr_ok(self) -> np.ndarray:
        """Shape (n_trs,), bool: TRs with no problem."""
        return ~np.any(list(self.bad_trs.values()), axis=0)

    @property
    def voxel_ok(self) -> np.ndarray:
        """Shape (n_voxels,), bool: voxels with no problem."""
        return ~np.any(list(self.bad_voxels.values()), axis=0)

    def voxel_reasons(self) -> np.ndarray:
        """Shape (n_voxels,), str: the reason each voxel is bad ("" when it is fine)."""
        out = np.full(len(self.voxel_ok), "", dtype=object)
        for reason, bad in self.bad_voxels.items():
            out[bad] = reason
        return out.astype(str)

    def summary(self) -> dict:
        """JSON-able counts, and the ``[start, stop)`` TR ranges of every kind of bad TR."""
        return {
            "n_bad_trs": {k: int(v.sum()) for k, v in self.bad_trs.items()},
            "bad_tr_ranges": {k: _ranges(v) for k, v in self.bad_trs.items()},
            "n_bad_voxels": {k: int(v.sum()) for k, v in self.bad_voxels.items()},
        }


def _ranges(mask):
    """``[[start, stop), ...]`` of the True stretches of a boolean vector."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return edges.reshape(-1, 2).tolist()


def constant_voxels(values, trs):
    """Shape (n_voxels,), bool: voxels whose non-NaN values over ``trs`` are all equal (False when all are NaN).

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    trs : ndarray, shape (n_trs,), bool
    """
    return np.concatenate([np.fmax.reduce(values[trs, b], axis=0) == np.fmin.reduce(values[trs, b], axis=0)
                           for b in column_blocks(values.shape[1])])


def _nan_trs_and_voxels(values, blocks, max_nan_fraction, source):
    """NaN TRs and NaN voxels (n_trs,), (n_voxels,) bool; logs or raises when many voxels are dropped."""
    n_trs, n_voxels = values.shape
    empty = np.zeros(n_voxels, bool)  # NaN at every TR
    n_nan = np.zeros(n_trs, np.int64)  # per TR, among the voxels holding data
    for block in blocks:
        nan = np.isnan(values[:, block])
        empty[block] = nan.all(axis=0)
        n_nan += nan[:, ~empty[block]].sum(axis=1)
    if empty.all():
        raise ValueError(f"{source}: every value is NaN; check the file and the mask it was read with")
    nan_trs = n_nan > _NAN_TR_FRACTION * (~empty).sum()
    n_holes = np.concatenate([np.isnan(values[~nan_trs, block]).sum(axis=0) for block in blocks])
    too_many = ~empty & (n_holes > max_nan_fraction * (~nan_trs).sum())
    dropped = empty | too_many
    if dropped.mean() > _WARN_NAN_VOXELS:
        message = (
            f"{source}: {dropped.sum()} of {n_voxels} voxels ({dropped.mean():.0%}) dropped for NaN: "
            f"{empty.sum()} NaN at every TR, {too_many.sum()} at more than {max_nan_fraction:.0%} of the TRs "
            f"(NaN in {n_holes[~empty].sum() / max((~nan_trs).sum() * (~empty).sum(), 1):.1%} of the samples of the "
            "voxels holding data)"
        )
        if dropped.mean() > _MAX_NAN_VOXELS:
            raise ValueError(
                f"{message}; check how the file was written (NaN outside the brain: use a brain mask that "
                "matches the data), or raise fmri.max_nan_fraction to keep voxels with scattered NaN (filled in time)"
            )
        log.warning("%s; check the data, or raise fmri.max_nan_fraction to keep more of them", message)
    return nan_trs, dropped


def _constant_trs(values, blocks, voxels):
    """Shape (n_trs,), bool: volumes in which every non-NaN value of ``voxels`` is equal."""
    high = low = np.full(len(values), np.nan)
    for block in blocks:
        columns = values[:, block][:, voxels[block]]
        if columns.shape[1]:
            high, low = np.fmax(high, np.fmax.reduce(columns, axis=1)), np.fmin(low, np.fmin.reduce(columns, axis=1))
    return (high == low) if voxels.sum() > 1 else np.zeros(len(values), bool)


def _repeated_trs(values, blocks, voxels, bad):
    """Shape (n_trs,), bool: volumes (not ``bad``) equal to the one before over ``voxels``, NaN where it is NaN."""
    repeated = np.r_[False, ~bad[1:]]
    for block in blocks:
        columns = values[:, block][:, voxels[block]]
        same = (columns[1:] == columns[:-1]) | (np.isnan(columns[1:]) & np.isnan(columns[:-1]))
        repeated[1:] &= same.all(axis=1)
        if not repeated.any():  # real data: the first block rules out every TR
            break
    return repeated


def _outlier_trs(values, runs, voxels, candidates):
    """Shape (n_trs,), bool: ``candidates`` whose mean absolute deviation from the voxelwise median of
    their run has a robust z above ``OUTLIER_Z`` (at most ``_OUTLIER_VOXELS`` of ``voxels``)."""
    columns = np.flatnonzero(voxels)
    columns = columns[:: int(np.ceil(len(columns) / _OUTLIER_VOXELS))]
    outlier = np.zeros(len(values), bool)
    for run in np.unique(runs):
        rows = np.flatnonzero(candidates & (runs == run))
        if len(rows) < _MIN_OUTLIER_TRS:
            continue
        x = values[np.ix_(rows, columns)]
        median = np.median(x, axis=0)
        if np.isnan(median).any():  # voxels with NaN samples
            holes = np.isnan(median)
            median[holes] = np.nanmedian(x[:, holes], axis=0)
        deviation = np.abs(x - median)
        finite = ~np.isnan(deviation)
        spread = np.where(finite, deviation, 0).sum(axis=1, dtype=np.float64) / np.maximum(finite.sum(axis=1), 1)
        centre = np.median(spread)
        mad = _MAD_TO_SD * np.median(np.abs(spread - centre))
        if mad > 0:
            outlier[rows] = (spread - centre) / mad > OUTLIER_Z
    return outlier


def find_bad(values, reference_trs=None, source="fMRI data", *, runs=None, max_nan_fraction=MAX_NAN_FRACTION):
    """Find bad TRs (NaN, constant, repeated, outlier volumes) and bad voxels (NaN, constant).

    Works a block of voxels at a time and never copies ``values`` (the outlier measure copies
    at most ``_OUTLIER_VOXELS`` columns of one run).

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    reference_trs : ndarray, shape (n_trs,), bool, optional
        TRs over which a voxel must vary (the training block); default all.
    source : str
        File name used in messages.
    runs : ndarray, shape (n_trs,), int, optional
        Run of each TR (outliers are judged within their run); default one run.
    max_nan_fraction : float, default=MAX_NAN_FRACTION
        A voxel with NaN at more than this share of the non-NaN TRs is dropped; one with fewer is kept
        (its NaN samples are left for :func:`giblet.fmri.clean.fill_nan_samples`).

    Returns
    -------
    Quality
    """
    values = np.asarray(values)
    runs = np.zeros(len(values), np.int64) if runs is None else np.asarray(runs)
    blocks = column_blocks(values.shape[1])
    nan_trs, nan_voxels = _nan_trs_and_voxels(values, blocks, max_nan_fraction, source)
    constant_trs = _constant_trs(values, blocks, ~nan_voxels) & ~nan_trs
    reference = ~nan_trs & ~constant_trs
    if reference_trs is not None:
        reference &= reference_trs
    if not reference.any():
        raise ValueError(f"{source}: every TR of the reference (training) block is NaN or constant; "
                         "check the data and the split")
    constant = ~nan_voxels & constant_voxels(values, reference)
    good = ~nan_voxels & ~constant
    if not good.any():
        raise ValueError(
            f"{source}: no usable voxel ({int(nan_voxels.sum())} with NaN, {int(constant.sum())} constant); "
            "check the mask and the data"
        )
    repeated = _repeated_trs(values, blocks, good, nan_trs | constant_trs)
    outlier = _outlier_trs(values, runs, good, ~(nan_trs | constant_trs | repeated))
    quality = Quality(
        bad_trs={"nan": nan_trs, "constant": constant_trs, "repeated": repeated, "outlier": outlier},
        bad_voxels={"nan": nan_voxels, "constant": constant},
    )
    _log_bad_trs(quality, runs, source)
    if not quality.tr_ok.any():
        raise ValueError(f"{source}: no usable TR ({quality.summary()['n_bad_trs']}); check the data")
    return quality


def _log_bad_trs(quality, runs, source):
    """One WARNING per kind of bad TR found, and one per run left without a usable TR."""
    for reason, bad in quality.bad_trs.items():
        if bad.any():
            log.warning("%s: %d TRs excluded as %s: TRs %s", source, bad.sum(), _TR_REASONS[reason],
                        ", ".join(f"[{a}, {b})" for a, b in _ranges(bad)))
    for run in np.unique(runs):
        rows = runs == run
        if not quality.tr_ok[rows].any():
            reasons = {k: int(v[rows].sum()) for k, v in quality.bad_trs.items() if v[rows].any()}
            log.warning("%s: run %d (TRs [%d, %d)) has no usable TR %s: the whole run is excluded; check its file",
                        source, run + 1, np.flatnonzero(rows)[0], np.flatnonzero(rows)[-1] + 1, reasons)
