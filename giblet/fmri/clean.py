"""Temporal cleaning (nilearn ``signal.clean``) piece by piece, and training-only standardisation.

Before cleaning, a kept voxel's scattered NaN samples (at most ``fmri.max_nan_fraction`` of its
TRs, see ``giblet.fmri.quality``) are filled by linear interpolation in time between the
voxel's nearest finite samples on usable TRs of the same (run, block) piece (the end value is
held at a piece's edges): a missing sample of an autocorrelated BOLD series is best guessed from
its neighbours, no TR of another run or block shapes it, and the few filled samples barely
shrink the variance. Marking those TRs bad instead would lose every TR once NaN are scattered
over many voxels.

Cleaning runs separately on every (run, block) piece of the TR axis (``Split.segments``):
detrending, filtering and confound regression never mix TRs of two runs or of two blocks,
so no test TR shapes a training TR. Unusable TRs inside a piece are censored through
nilearn's ``sample_mask`` (removed for the cosine filter, interpolated for Butterworth).

Standardisation (per-voxel mean and standard deviation) is fitted on the usable training
TRs only and applied to every TR: validation and test TRs keep whatever offset and scale
they have relative to training, as a model would see them.

Both work in float64 on a block of voxels at a time (``giblet.blocks``; every step is per voxel,
so the result does not depend on the blocks) and can write into their input (``out=values``): a
whole-brain subject is then held once in float32, plus one block's float64 temporaries.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from giblet.blocks import column_blocks
from giblet.config import check_choice

__all__ = ["FILTERS", "CleanConfig", "clean_pieces", "fill_nan_samples", "standardize"]

log = logging.getLogger(__name__)

FILTERS = ("cosine", "butterworth")  # nilearn.signal.clean ``filter`` options


@dataclass(frozen=True)
class CleanConfig:
    """What :func:`clean_pieces` removes (``fmri`` keys; see ``PrepareFmriConfig.cleaning``).

    Attributes
    ----------
    detrend : bool, default=True
        Remove each piece's mean and linear trend.
    high_pass_hz, low_pass_hz : float, optional
        Filter cut-offs, in Hz (None: no filter).
    filter : {"cosine", "butterworth"}, default="cosine"
        nilearn's filter; ``"cosine"`` (drift regressors, high-pass only) works on pieces of any length.
    """

    detrend: bool = True
    high_pass_hz: float | None = None
    low_pass_hz: float | None = None
    filter: str = "cosine"


def fill_nan_samples(values, pieces, usable):
    """Fill the NaN samples of every voxel on usable TRs, in place, by linear interpolation within each piece.

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
        Filled in place.
    pieces : ndarray, shape (n_trs,), int
        Piece of each TR (``Split.segments``), -1 for TRs never used.
    usable : ndarray, shape (n_trs,), bool
        TRs whose samples are filled and serve as anchors.

    Returns
    -------
    n_filled : ndarray, shape (n_voxels,), int64
        Samples filled per voxel.
    unfillable : ndarray, shape (n_voxels,), bool
        Voxels NaN at every usable TR of some piece (left NaN there: drop them).
    """
    n_filled = np.zeros(values.shape[1], np.int64)
    unfillable = np.zeros(values.shape[1], bool)
    for piece in np.unique(pieces[pieces >= 0]):
        rows = np.flatnonzero((pieces == piece) & usable)
        for block in column_blocks(values.shape[1]):
            holes = np.isnan(values[rows, block])
            for column in np.flatnonzero(holes.any(axis=0)):
                voxel, missing = block.start + column, holes[:, column]
                if missing.all():
                    unfillable[voxel] = True
                    continue
                values[rows[missing], voxel] = np.interp(rows[missing], rows[~missing], values[rows[~missing], voxel])
                n_filled[voxel] += missing.sum()
    return n_filled, unfillable


def clean_pieces(values, pieces, usable, *, tr_s, config=CleanConfig(), confounds=None, out=None):
    """Clean every piece of the TR axis on its own with ``nilearn.signal.clean``.

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    pieces : ndarray, shape (n_trs,), int
        Piece of each TR (contiguous stretches), -1 for TRs never used (gaps).
    usable : ndarray, shape (n_trs,), bool
        TRs to keep; the others are censored.
    tr_s : float
        Repetition time, in seconds.
    config : CleanConfig, default=CleanConfig()
        Detrending and filter (default: detrend only).
    confounds : ndarray, shape (n_trs, n_confounds), optional
        Nuisance regressors, regressed out within each piece.
    out : ndarray, shape (n_trs, n_voxels), float32, optional
        Where to write the result; may be ``values`` itself (cleaned in place). Default: a new array.

    Returns
    -------
    ndarray, shape (n_trs, n_voxels), float32
        ``out``: cleaned values; NaN on TRs that are not usable or in no piece.
    """
    from nilearn import signal  # here: ~1 s to import, and the stages that only standardise never clean

    high_pass_hz, low_pass_hz = config.high_pass_hz, config.low_pass_hz
    check_choice("fmri.filter", config.filter, FILTERS)
    if config.filter == "cosine" and low_pass_hz is not None:
        raise ValueError("fmri.low_pass_hz needs fmri.filter: butterworth (the cosine filter is high-pass only)")
    filter_or_none = config.filter if high_pass_hz is not None or low_pass_hz is not None else False
    out = np.empty(values.shape, dtype=np.float32) if out is None else out
    for piece in np.unique(pieces[pieces >= 0]):
        rows = np.flatnonzero(pieces == piece)
        keep = usable[rows]
        out[rows[~keep]] = np.nan
        if not keep.any():
            continue
        for block in column_blocks(values.shape[1]):
            with warnings.catch_warnings():  # nilearn's note to its own developers about confound scaling
                warnings.filterwarnings("ignore", message="From release 0.14.0, confounds", category=DeprecationWarning)
                try:
                    cleaned = signal.clean(
                        values[rows, block].astype(np.float64), detrend=config.detrend, standardize=None,
                        sample_mask=None if keep.all() else np.flatnonzero(keep),
                        confounds=None if confounds is None else confounds[rows],
                        filter=filter_or_none, low_pass=low_pass_hz, high_pass=high_pass_hz, t_r=tr_s,
                        extrapolate=False,
                    )
                except ValueError as err:
                    raise ValueError(
                        f"cleaning TRs [{rows[0]}, {rows[-1] + 1}) ({keep.sum()} usable) failed: {err}; "
                        "use fmri.filter: cosine, or change the split so that no run/block piece is this short"
                    ) from err
            out[rows[keep], block] = cleaned
    out[pieces < 0] = np.nan
    log.info("cleaned %d pieces (detrend=%s, high-pass %s Hz, low-pass %s Hz, %s filter)",
             len(np.unique(pieces[pieces >= 0])), config.detrend, high_pass_hz, low_pass_hz, config.filter)
    return out


def standardize(values, fit_trs, out=None):
    """Z-score every voxel with the mean and standard deviation of the ``fit_trs`` only.

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
        May hold NaN rows outside ``fit_trs``; they stay NaN.
    fit_trs : ndarray, shape (n_trs,), bool
        TRs the statistics come from (the usable training TRs).
    out : ndarray, shape (n_trs, n_voxels), float32, optional
        Where to write the z-scores; may be ``values`` itself. Default: a new array.

    Returns
    -------
    z : ndarray, shape (n_trs, n_voxels), float32
        ``out``.
    mean, scale : ndarray, shape (n_voxels,), float64
        The fitted statistics (population standard deviation, computed in float64).
    """
    fit_trs = np.asarray(fit_trs, dtype=bool)
    if not fit_trs.any():
        raise ValueError("standardize: no training TR to fit on; check the split and the bad-TR report")
    out = np.empty(values.shape, dtype=np.float32) if out is None else out
    mean, scale = np.empty(values.shape[1]), np.empty(values.shape[1])
    for block in column_blocks(values.shape[1]):
        fit = values[fit_trs, block].astype(np.float64)
        mean[block], scale[block] = fit.mean(axis=0), fit.std(axis=0)
        if (flat := block.start + np.flatnonzero(scale[block] == 0)).size:
            raise ValueError(f"standardize: voxels {flat[:10].tolist()} are constant over the training TRs; "
                             "exclude them first")
        out[:, block] = (values[:, block] - mean[block]) / scale[block]
    return out, mean, scale
