"""Read fMRI data: 4-D NIfTI runs, or a precomputed voxels x TRs matrix with its mask.

Both readers return time on axis 0: ``values`` of shape (n_trs, n_voxels), float32, with
the grid index ``ijk`` of every voxel column. TR counts are checked against the config's
``run_n_trs`` before anything is read.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
from tqdm.auto import tqdm

from giblet.fmri.masks import grid_ijk

__all__ = ["MATRIX_FORMATS", "is_matrix", "read_arrays", "bold_grid", "read_bold", "read_matrix", "read_confounds"]

log = logging.getLogger(__name__)

_CHUNK_TRS = 64  # volumes read at a time: a whole-brain 4-D file never sits in memory twice
_TIME_UNIT_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def _arrays_npy(path):
    return {"array": np.load(path, allow_pickle=False)}


def _arrays_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _arrays_h5(path, transpose=False):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return {k: v.T for k, v in out.items()} if transpose else out


def _arrays_mat(path):
    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 files are HDF5, stored with the axes reversed
        return _arrays_h5(path, transpose=True)


# suffix -> (reader, voxel order of the rows: "F" for MATLAB's column-major find(mask))
MATRIX_FORMATS = {
    ".npy": (_arrays_npy, "C"),
    ".npz": (_arrays_npz, "C"),
    ".mat": (_arrays_mat, "F"),
    ".h5": (_arrays_h5, "C"),
    ".hdf5": (_arrays_h5, "C"),
}


def read_arrays(path) -> dict:
    """Every array in a ``.npy``/``.npz``/``.mat``/``.h5`` file, by name (``"array"`` for ``.npy``)."""
    path = Path(path)
    if not is_matrix(path):
        raise ValueError(f"{path}: unknown array file type; use one of {sorted(MATRIX_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return MATRIX_FORMATS[path.suffix.lower()][0](path)


def is_matrix(path) -> bool:
    """True for a precomputed matrix file (a suffix in ``MATRIX_FORMATS``)."""
    return Path(path).suffix.lower() in MATRIX_FORMATS


def _expected_counts(paths, run_n_trs):
    """Volumes each file must hold: one file per run, or one file of all runs."""
    if len(paths) == len(run_n_trs):
        return list(run_n_trs)
    if len(paths) == 1:
        return [sum(run_n_trs)]
    raise ValueError(
        f"{len(paths)} fMRI files for {len(run_n_trs)} runs (fmri.run_n_trs={list(run_n_trs)}); "
        "give one 4-D file per run, or one file holding all runs"
    )


def bold_grid(paths, run_n_trs, tr_s):
    """Check 4-D NIfTI runs against the config and return their common grid.

    Parameters
    ----------
    paths : sequence of path
        One 4-D file per run, or one file with all runs in playback order.
    run_n_trs : sequence of int
        TRs of each run, from the config.
    tr_s : float
        Repetition time, in seconds; a different header TR gives a warning.

    Returns
    -------
    affine : ndarray, shape (4, 4)
    grid_shape : tuple of 3 int
    """
    paths = [Path(p) for p in paths]
    expected = _expected_counts(paths, run_n_trs)
    affine = grid_shape = None
    for path, n_expected in zip(paths, expected):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fMRI file not found; check fmri.bold and the subject list")
        img = nib.load(path)
        if img.ndim != 4:
            raise ValueError(f"{path}: expected a 4-D image (x, y, z, TRs), got shape {img.shape}")
        if img.shape[3] != n_expected:
            raise ValueError(
                f"{path}: holds {img.shape[3]} TRs but the config expects {n_expected} "
                f"(fmri.run_n_trs={list(run_n_trs)}); fix fmri.run_n_trs or crop the file"
            )
        if affine is None:
            affine, grid_shape = img.affine, img.shape[:3]
        elif img.shape[:3] != grid_shape or not np.allclose(img.affine, affine, atol=1e-3):
            raise ValueError(
                f"{path}: grid {img.shape[:3]} / affine {img.affine.tolist()} differs from {paths[0]}; "
                "resample all runs of a subject to one grid first"
            )
        header_tr_s = img.header.get_zooms()[3] * _TIME_UNIT_S.get(img.header.get_xyzt_units()[1], 1.0)
        if header_tr_s > 0 and not np.isclose(header_tr_s, tr_s, rtol=0.01):
            warnings.warn(
                f"{path}: header TR is {header_tr_s:g} s but fmri.tr_s is {tr_s:g} s; fmri.tr_s is used "
                "(fix the header or fmri.tr_s to silence this)",
                stacklevel=2,
            )
    return affine, tuple(int(n) for n in grid_shape)


def read_bold(paths, mask):
    """Read the masked voxels of 4-D NIfTI runs, a few volumes at a time.

    Parameters
    ----------
    paths : sequence of path
        Files already checked by :func:`bold_grid`, in playback order.
    mask : ndarray, shape grid_shape, bool
        Voxels to read (on the files' grid).

    Returns
    -------
    ndarray, shape (n_trs, n_voxels), float32
        Columns in C order of ``mask`` (``grid_ijk(mask, "C")``).
    """
    images = [nib.load(path, keep_file_open=True) for path in paths]
    out = np.empty((sum(img.shape[3] for img in images), int(mask.sum())), dtype=np.float32)  # one copy, all runs
    first = 0
    for path, img in zip(paths, images):
        n_trs = img.shape[3]
        for start in tqdm(range(0, n_trs, _CHUNK_TRS), desc=f"read {Path(path).name}", unit="chunk", leave=False):
            stop = min(start + _CHUNK_TRS, n_trs)
            out[first + start : first + stop] = np.asanyarray(img.dataobj[..., start:stop])[mask].T
        first += n_trs
        log.info("%s: read %d TRs x %d voxels", path, n_trs, out.shape[1])
    return out


def read_matrix(path, mask, n_trs, *, key=None, kept_key=None, voxel_order=None):
    """Read a precomputed voxels x TRs matrix taken from ``mask``.

    Parameters
    ----------
    path : path
        ``.npy``, ``.npz``, ``.mat`` (v5 or v7.3) or ``.h5``/``.hdf5``.
    mask : ndarray, shape grid_shape, bool
        The mask the rows were taken from, on its own grid.
    n_trs : int
        Total TRs expected (sum of ``run_n_trs``).
    key : str, optional
        Array holding the data; needed when the file holds more than one (Sherlock: ``"rdata"``).
    kept_key : str, optional
        Array of per-mask-voxel flags (Sherlock: ``"keptvox"``). The matrix rows are either all
        mask voxels (unflagged rows are dropped) or only the flagged ones.
    voxel_order : {"C", "F"}, optional
        Order of the rows among the mask's voxels; default from ``MATRIX_FORMATS`` (``"F"``
        for ``.mat``, as MATLAB's ``find`` is column-major).

    Returns
    -------
    values : ndarray, shape (n_trs, n_voxels), float32
    ijk : ndarray, shape (n_voxels, 3), int32
        Grid index of each column on the mask's grid.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MATRIX_FORMATS:
        raise ValueError(f"{path}: matrix format must be one of {sorted(MATRIX_FORMATS)}, got {suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fMRI matrix not found; check fmri.matrix and the subject list")
    reader, default_order = MATRIX_FORMATS[suffix]
    arrays = reader(path)

    def pick(name, what):
        if name is None and len(arrays) == 1:
            return next(iter(arrays.values()))
        if name not in arrays:
            raise ValueError(f"{path}: no array {name!r} ({what}); it holds {sorted(arrays)}: set fmri.{what}")
        return arrays[name]

    data = np.asarray(pick(key, "matrix_key"))
    ijk = grid_ijk(mask, voxel_order or default_order)
    kept = np.ones(len(ijk), bool)
    if kept_key is not None:
        kept = np.asarray(pick(kept_key, "kept_key")).ravel() != 0
        if len(kept) != len(ijk):
            raise ValueError(f"{path}: {kept_key!r} flags {len(kept)} voxels but the mask has {len(ijk)}")
    rows = {len(ijk), int(kept.sum())}
    if data.ndim == 2 and data.shape[0] == n_trs and data.shape[1] in rows and data.shape[0] not in rows:
        log.info("%s: matrix is TRs x voxels %s; transposed", path, data.shape)
        data = data.T
    if data.ndim != 2 or data.shape[1] != n_trs or data.shape[0] not in rows:
        raise ValueError(
            f"{path}: matrix has shape {data.shape}; expected (voxels, TRs) = ({len(ijk)} mask voxels or "
            f"{int(kept.sum())} kept, {n_trs} TRs from fmri.run_n_trs); check fmri.matrix_mask and fmri.run_n_trs"
        )
    if data.shape[0] == len(ijk):
        data = data[kept]
    return np.ascontiguousarray(data.T, dtype=np.float32), ijk[kept]


def read_confounds(path, n_trs):
    """Read nuisance regressors: ``.tsv``/``.csv`` with a header (every column used) or ``.npy``.

    Returns
    -------
    ndarray, shape (n_trs, n_confounds), float64
    """
    path = Path(path)
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False).astype(np.float64)
    else:
        values = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",").to_numpy(np.float64)
    values = values.reshape(len(values), -1)
    if len(values) != n_trs:
        raise ValueError(f"{path}: {len(values)} confound rows but {n_trs} TRs; give one row per TR")
    if not np.isfinite(values).all():
        raise ValueError(
            f"{path}: confounds hold NaN/inf in columns {np.flatnonzero(~np.isfinite(values).all(0)).tolist()}; "
            "fill them (e.g. the first row of fMRIPrep derivatives) or drop those columns"
        )
    return values
