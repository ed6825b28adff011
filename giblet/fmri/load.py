"""Read fMRI data: 4-D NIfTI runs, or a precomputed voxels x TRs matrix with its mask.

Both readers return time on axis 0: ``values`` of shape (n_trs, n_voxels), float32, with
the grid index ``ijk`` of every voxel column. TR counts, the header TR and the files'
completeness are checked against the config's ``run_n_trs`` and ``tr_s`` before anything is
read (:func:`bold_grid`, and :func:`check_fmri_input` for ``giblet check-inputs``); a file
that turns out truncated or corrupt while read raises a ValueError naming it.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
from tqdm.auto import tqdm

from giblet.config import check_choice
from giblet.fmri.integrity import check_complete, readable
from giblet.fmri.masks import grid_ijk

__all__ = [
    "HEADER_TR", "MATRIX_FORMATS", "is_matrix", "read_arrays", "bold_grid", "check_fmri_input", "check_fmri_inputs",
    "read_bold", "read_matrix", "read_confounds",
]

log = logging.getLogger(__name__)

_CHUNK_TRS = 64  # volumes read at a time: a whole-brain 4-D file never sits in memory twice
_TIME_UNIT_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}  # NIfTI time units that state a TR
_TR_RTOL = 0.01  # header TR and fmri.tr_s agree within 1 %
HEADER_TR = ("check", "ignore")  # fmri.header_tr: a header TR that differs from fmri.tr_s is an error, or ignored


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


def _shapes_npz(path):
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                out[name.removesuffix(".npy")] = read(f)[0]
    return out


def _shapes_h5(path, transpose=False):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj.shape}) if isinstance(obj, h5py.Dataset) else None)
    return {k: v[::-1] for k, v in out.items()} if transpose else out


def _shapes_mat(path):
    try:
        return {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except NotImplementedError:
        return _shapes_h5(path, transpose=True)


_MATRIX_SHAPES = {  # suffix -> shapes of the arrays of a file, by name, read from its headers only
    ".npy": lambda path: {"array": np.load(path, mmap_mode="r").shape},  # a truncated .npy fails to map
    ".npz": _shapes_npz,
    ".mat": _shapes_mat,
    ".h5": _shapes_h5,
    ".hdf5": _shapes_h5,
}


def read_arrays(path) -> dict:
    """Every array in a ``.npy``/``.npz``/``.mat``/``.h5`` file, by name (``"array"`` for ``.npy``)."""
    path = Path(path)
    if not is_matrix(path):
        raise ValueError(f"{path}: unknown array file type; use one of {sorted(MATRIX_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with readable(path, path.suffix):
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


def _open_bold(path, n_trs, tr_s, header_tr="check"):
    """Open a 4-D NIfTI file's header and check it: complete, 4-D, ``n_trs`` volumes, TR; return the image."""
    path = Path(path)
    check_choice("fmri.header_tr", header_tr, HEADER_TR)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fMRI file not found; check fmri.bold and the subject list")
    with readable(path):
        img = nib.load(path)
    if img.ndim != 4:
        raise ValueError(f"{path}: expected a 4-D image (x, y, z, TRs), got shape {img.shape}")
    if img.shape[3] != n_trs:
        raise ValueError(
            f"{path}: holds {img.shape[3]} TRs but the config expects {n_trs} "
            "(fmri.run_n_trs); fix fmri.run_n_trs or crop the file"
        )
    check_complete(path, img)
    unit = img.header.get_xyzt_units()[1]
    header_tr_s = float(img.header.get_zooms()[3]) * _TIME_UNIT_S.get(unit, np.nan)  # NaN: the header states no TR
    if header_tr_s > 0 and not np.isclose(header_tr_s, tr_s, rtol=_TR_RTOL):
        if header_tr == "check":
            raise ValueError(
                f"{path}: the header gives a TR of {header_tr_s:g} s (pixdim[4]) but fmri.tr_s is {tr_s:g} s; "
                "set fmri.tr_s to the true TR, or fix the header (fmri.header_tr: ignore trusts fmri.tr_s)"
            )
        log.info("%s: header TR %g s ignored (fmri.header_tr: ignore); fmri.tr_s = %g s is used",
                 path, header_tr_s, tr_s)
    return img


def bold_grid(paths, run_n_trs, tr_s, header_tr="check"):
    """Check 4-D NIfTI runs against the config and return their common grid (no voxel data read).

    Parameters
    ----------
    paths : sequence of path
        One 4-D file per run, or one file with all runs in playback order.
    run_n_trs : sequence of int
        TRs of each run, from the config.
    tr_s : float
        Repetition time, in seconds.
    header_tr : {"check", "ignore"}, default="check"
        ``"check"``: a header that states a TR (``pixdim[4]`` > 0 in known time units) more than
        1 % away from ``tr_s`` is an error; ``"ignore"``: ``tr_s`` wins (for wrong headers).

    Returns
    -------
    affine : ndarray, shape (4, 4)
    grid_shape : tuple of 3 int

    Raises
    ------
    ValueError
        A file is truncated or corrupt, not 4-D, holds another number of TRs, states another
        TR, or lies on another grid than the first.
    """
    paths = [Path(p) for p in paths]
    affine = grid_shape = None
    for path, n_expected in zip(paths, _expected_counts(paths, run_n_trs)):
        img = _open_bold(path, n_expected, tr_s, header_tr)
        if affine is None:
            affine, grid_shape = img.affine, img.shape[:3]
        elif img.shape[:3] != grid_shape or not np.allclose(img.affine, affine, atol=1e-3):
            raise ValueError(
                f"{path}: grid {img.shape[:3]} / affine {img.affine.tolist()} differs from {paths[0]}; "
                "resample all runs of a subject to one grid first"
            )
    return affine, tuple(int(n) for n in grid_shape)


def check_fmri_input(path, *, tr_s, n_trs, header_tr="check", matrix_key=None):
    """Cheap check of one fMRI input file, from its headers only (for ``giblet check-inputs``).

    NIfTI: complete (see :func:`giblet.fmri.integrity.check_complete`), 4-D, ``n_trs``
    volumes, header TR as ``tr_s``. Matrix (``.npy``/``.npz``/``.mat``/``.h5``): readable, its
    data array 2-D with ``n_trs`` along one axis (a truncated v5 ``.mat`` is only found when read).

    Parameters
    ----------
    path : path
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
        TRs the file must hold: its run's count, or the sum of ``fmri.run_n_trs`` for a file of all runs.
    header_tr : {"check", "ignore"}, default="check"
    matrix_key : str, optional
        Array holding the data in a matrix file (``fmri.matrix_key``).

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file, the problem and the fix.
    """
    path = Path(path)
    if not is_matrix(path):
        _open_bold(path, n_trs, tr_s, header_tr)
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fMRI matrix not found; check fmri.matrix and the subject list")
    with readable(path, path.suffix):
        shapes = _MATRIX_SHAPES[path.suffix.lower()](path)
    if matrix_key is None and len(shapes) == 1:
        matrix_key = next(iter(shapes))
    if matrix_key not in shapes:
        raise ValueError(
            f"{path}: no array {matrix_key!r} (matrix_key); it holds {sorted(shapes)}: set fmri.matrix_key"
        )
    shape = tuple(shapes[matrix_key])
    if len(shape) != 2 or n_trs not in shape:
        raise ValueError(
            f"{path}: matrix has shape {shape}; expected (voxels, TRs) with {n_trs} TRs (fmri.run_n_trs); "
            "check fmri.run_n_trs and fmri.matrix_key"
        )


def check_fmri_inputs(paths, *, tr_s, run_n_trs, header_tr="check", matrix_key=None):
    """Cheap check of a subject's fMRI files: :func:`check_fmri_input` on each, and one grid for NIfTI runs.

    Parameters
    ----------
    paths : sequence of path
        One 4-D NIfTI file per run, one holding all runs, or one matrix file.
    tr_s : float
        Repetition time, in seconds.
    run_n_trs : sequence of int
        TRs of each run (``fmri.run_n_trs``).
    header_tr : {"check", "ignore"}, default="check"
    matrix_key : str, optional

    Raises
    ------
    FileNotFoundError, ValueError
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and is_matrix(paths[0]):
        check_fmri_input(paths[0], tr_s=tr_s, n_trs=sum(run_n_trs), matrix_key=matrix_key)
    else:
        bold_grid(paths, run_n_trs, tr_s, header_tr)


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
    images = []
    for path in paths:
        with readable(path):
            images.append(nib.load(path, keep_file_open=True))
    out = np.empty((sum(img.shape[3] for img in images), int(mask.sum())), dtype=np.float32)  # one copy, all runs
    first = 0
    for path, img in zip(paths, images):
        check_complete(path, img, verify_crc=True)
        n_trs = img.shape[3]
        for start in tqdm(range(0, n_trs, _CHUNK_TRS), desc=f"read {Path(path).name}", unit="chunk", leave=False):
            stop = min(start + _CHUNK_TRS, n_trs)
            with readable(path):
                chunk = np.asanyarray(img.dataobj[..., start:stop])
            out[first + start : first + stop] = chunk[mask].T
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
    with readable(path, suffix):
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
