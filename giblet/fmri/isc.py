"""Leave-one-subject-out inter-subject correlation (the encoding noise ceiling)."""

from __future__ import annotations

import numpy as np

from giblet.stats import block_resamples, pearson_columns

__all__ = ["loso_isc", "isc_vs_group_mean", "published_isc", "shifted_null_isc", "bootstrap_isc"]


def loso_isc(data):
    """Correlate each subject with the mean of all the others.

    Parameters
    ----------
    data : ndarray, shape (n_subjects, n_trs) or (n_subjects, n_trs, n_voxels)
        Time courses on a common TR grid (a ROI mean, or voxels in the same order).
        TRs that are NaN for any subject are left out of every correlation.

    Returns
    -------
    ndarray, shape (n_subjects,) or (n_subjects, n_voxels)
        Pearson r of subject s against the mean of the other subjects.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim not in (2, 3) or data.shape[0] < 2:
        raise ValueError(f"data must be (n_subjects>=2, n_trs[, n_voxels]), got shape {data.shape}")
    squeeze = data.ndim == 2
    if squeeze:
        data = data[..., None]
    keep = ~np.isnan(data).any(axis=(0, 2))
    data = data[:, keep]
    n = data.shape[0]
    group_mean = data.mean(axis=0)
    out = np.stack([isc_vs_group_mean(data[s], group_mean, n) for s in range(n)])
    return out[:, 0] if squeeze else out


def isc_vs_group_mean(own, group_mean, n_group):
    """Correlate a subject with the mean of the others, given the mean of the whole group.

    The mean of the others is ``(n_group * group_mean - own) / (n_group - 1)``: this scores a
    subject against a published group mean (Sherlock's ``meantc`` of 17 subjects) when only
    some subjects' data are at hand, and lets a group be summed one subject at a time.

    Parameters
    ----------
    own : ndarray, shape (n_trs,) or (n_trs, n_columns)
        The subject's time courses, scaled as they were when averaged into ``group_mean``.
    group_mean : ndarray, same shape as ``own``
        Mean over ``n_group`` subjects, ``own`` included.
    n_group : int
        Number of subjects in ``group_mean`` (>= 2).

    Returns
    -------
    float or ndarray, shape (n_columns,)
        Pearson r per column; NaN where the subject's column is constant (0 where only the others' mean is).
    """
    own = np.asarray(own, dtype=np.float64)
    group_mean = np.asarray(group_mean, dtype=np.float64)
    if own.shape != group_mean.shape or n_group < 2:
        raise ValueError(
            f"own {own.shape} and group_mean {group_mean.shape} must have the same shape and n_group >= 2, got {n_group}"
        )
    others = (n_group * group_mean - own) / (n_group - 1)
    r = pearson_columns(others.reshape(len(own), -1), own.reshape(len(own), -1))
    return r[0] if own.ndim == 1 else r


def published_isc(roi_values, table_path, column):
    """A subject's ISC recomputed the way a published table computed it, beside the published value.

    The published tables (Chen et al. 2017, ``<roi>_sherlock_movie_roicorr.mat``) correlate each
    subject's z-scored ROI mean (MATLAB's ``zscore``: ddof 1) over the whole scan with the mean of
    the other subjects' (``meantc`` is the mean over all ``n`` of them: the others' mean is
    ``(n * meantc - own) / (n - 1)``), on the stored data without further cleaning.

    Parameters
    ----------
    roi_values : ndarray, shape (n_trs, n_roi_voxels), float
        The subject's stored voxels of the ROI (as read, before any cleaning).
    table_path : path
        ``.mat`` with ``roicorr`` (1, n) and ``meantc`` (n_trs, 1).
    column : int
        The subject's column of ``roicorr``.

    Returns
    -------
    dict
        ``published``, ``reproduced`` (float) and ``n_group`` (int).
    """
    from scipy.io import loadmat

    table = loadmat(table_path)
    roicorr, meantc = np.ravel(table["roicorr"]), np.ravel(table["meantc"]).astype(np.float64)
    own = np.nanmean(np.asarray(roi_values, dtype=np.float64), axis=1)
    if len(own) != len(meantc):
        raise ValueError(f"{table_path}: its group mean has {len(meantc)} TRs but the data have {len(own)}")
    if not 0 <= column < len(roicorr):
        raise ValueError(f"{table_path}: column {column} is outside its {len(roicorr)} subjects; list the table's "
                         "subjects in fmri.published_isc.<roi>.subjects")
    own = (own - own.mean()) / own.std(ddof=1)
    return {"published": float(roicorr[column]), "reproduced": float(isc_vs_group_mean(own, meantc, len(roicorr))),
            "n_group": int(len(roicorr))}


#: Circular-shift draws of the ROI ISC null.
N_ISC_SHIFTS = 200
#: Moving-block bootstrap of the ROI ISC: draws, and TRs per block (15 s at Sherlock's 1.5 s TR: BOLD stays
#: autocorrelated over about that long).
N_ISC_BOOTSTRAP, ISC_BLOCK_TRS = 1000, 10


def bootstrap_isc(data):
    """Leave-one-out ROI ISC of ``data`` (n_subjects, n_trs, n_rois) on moving-block resamples of its TRs (the
    same for every subject): (N_ISC_BOOTSTRAP, n_subjects, n_rois)."""
    index = block_resamples(data.shape[1], n_bootstrap=N_ISC_BOOTSTRAP, block_trs=min(ISC_BLOCK_TRS, data.shape[1]))
    return np.stack([loso_isc(data[:, rows]) for rows in index])


def shifted_null_isc(data, n_shifts, rng):
    """Leave-one-out ROI ISC with every subject circularly shifted by its own random offset (between a tenth and
    nine tenths of the block), ``n_shifts`` times: (n_shifts, n_subjects, n_rois)."""
    n, n_trs = data.shape[:2]
    low = max(1, n_trs // 10)
    out = []
    for _ in range(n_shifts):
        offsets = rng.integers(low, max(low + 1, n_trs - low), size=n)
        out.append(loso_isc(np.stack([np.roll(d, int(k), axis=0) for d, k in zip(data, offsets)])))
    return np.stack(out)
