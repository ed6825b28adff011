import gzip

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from giblet.fmri.load import (
    bold_grid,
    check_fmri_input,
    check_fmri_inputs,
    is_matrix,
    read_bold,
    read_confounds,
    read_matrix,
)
from giblet.fmri.masks import grid_ijk
from tests.conftest import SHARED_DATA
from tests.fmri.conftest import AFFINE, GRID

SHERLOCK = SHARED_DATA / "sherlock"


@pytest.fixture
def volumes(rng):
    """(x, y, z, 150) float32 data and a mask of 40 voxels."""
    data = rng.standard_normal((*GRID, 150)).astype(np.float32)
    mask = np.zeros(GRID, bool)
    mask.flat[rng.choice(mask.size, 40, replace=False)] = True
    return data, mask


def test_read_bold_runs_match_volumes(write_nifti, volumes):
    data, mask = volumes
    paths = [write_nifti("run1.nii.gz", data[..., :70]), write_nifti("run2.nii.gz", data[..., 70:])]
    affine, shape = bold_grid(paths, [70, 80], tr_s=2.0)
    values = read_bold(paths, mask)  # 70 and 80 TRs: both cross the 64-volume read chunks
    assert np.allclose(affine, AFFINE) and shape == GRID
    assert values.shape == (150, 40) and values.dtype == np.float32
    assert np.array_equal(values, data[mask].T)


def test_read_bold_one_file_holds_all_runs(write_nifti, volumes):
    data, mask = volumes
    path = write_nifti("all.nii.gz", data)
    bold_grid([path], [70, 80], tr_s=2.0)
    assert np.array_equal(read_bold([path], mask), data[mask].T)


def test_bold_grid_tr_count_mismatch_raises(write_nifti, volumes):
    paths = [write_nifti("run1.nii.gz", volumes[0][..., :70]), write_nifti("run2.nii.gz", volumes[0][..., 70:])]
    with pytest.raises(ValueError, match=r"run2.nii.gz: holds 80 TRs but the config expects 75 .*fmri.run_n_trs"):
        bold_grid(paths, [70, 75], tr_s=2.0)


def test_bold_grid_file_count_mismatch_raises(write_nifti, volumes):
    paths = [write_nifti(f"run{i}.nii.gz", volumes[0][..., :50]) for i in range(2)]
    with pytest.raises(ValueError, match=r"2 fMRI files for 3 runs"):
        bold_grid(paths, [50, 50, 50], tr_s=2.0)


def test_bold_grid_runs_on_different_grids_raise(write_nifti, volumes):
    moved = AFFINE.copy()
    moved[0, 3] += 3.0
    paths = [write_nifti("run1.nii.gz", volumes[0][..., :70]), write_nifti("run2.nii.gz", volumes[0][..., 70:], moved)]
    with pytest.raises(ValueError, match="run2.nii.gz: grid .* differs from .*run1.nii.gz; resample all runs"):
        bold_grid(paths, [70, 80], tr_s=2.0)


def test_bold_grid_3d_file_raises(write_nifti, volumes):
    with pytest.raises(ValueError, match=r"expected a 4-D image \(x, y, z, TRs\), got shape \(6, 7, 5\)"):
        bold_grid([write_nifti("vol.nii.gz", volumes[0][..., 0])], [1], tr_s=2.0)


def test_bold_grid_header_tr_differs_raises(write_nifti, volumes):
    """Issue 19: a header TR that disagrees with fmri.tr_s was only a warning."""
    path = write_nifti("all.nii.gz", volumes[0], tr_s=1.0)
    with pytest.raises(ValueError, match=r"all.nii.gz: the header gives a TR of 1 s \(pixdim\[4\]\) but fmri.tr_s is "
                                         r"2 s; set fmri.tr_s to the true TR, or fix the header"):
        bold_grid([path], [150], tr_s=2.0)
    assert bold_grid([path], [150], tr_s=2.0, header_tr="ignore")[1] == GRID
    with pytest.raises(ValueError, match=r"fmri.header_tr must be one of \['check', 'ignore'\], got 'warn'"):
        bold_grid([path], [150], tr_s=2.0, header_tr="warn")


@pytest.mark.parametrize("zoom, unit, tr_s", [
    (2.01, "sec", 2.0),  # within 1 %
    (1500.0, "msec", 1.5),
    (1.0, "unknown", 2.0),  # the header states no time unit: no TR to check
    (0.0, "sec", 2.0),  # no TR in the header
])
def test_bold_grid_header_tr_agrees_or_unstated(tmp_path, volumes, zoom, unit, tr_s):
    img = nib.Nifti1Image(volumes[0], AFFINE)
    img.header.set_zooms((3.0, 3.0, 3.0, zoom))
    img.header.set_xyzt_units("mm", unit)
    nib.save(img, tmp_path / "run.nii.gz")
    assert bold_grid([tmp_path / "run.nii.gz"], [150], tr_s=tr_s)[1] == GRID


def _truncate(path, keep=0.6):
    """Cut a file short, as an interrupted download or copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_read_bold_truncated_gzip_raises(write_nifti, volumes):
    """Issue 19: a truncated .nii.gz opened fine and then raised a bare EOFError while read."""
    data, mask = volumes
    path = _truncate(write_nifti("run.nii.gz", data))
    assert nib.load(path).shape == (*GRID, 150)  # the header still reads
    message = r"run.nii.gz: truncated or corrupt gzip/NIfTI file \(EOFError: .*\); re-download or re-copy the file"
    with pytest.raises(ValueError, match=message):
        bold_grid([path], [150], tr_s=2.0)
    with pytest.raises(ValueError, match=message):
        read_bold([path], mask)


def test_truncated_or_corrupt_nifti_raises(write_nifti, volumes):
    nii = _truncate(write_nifti("run.nii", volumes[0]))
    with pytest.raises(ValueError, match=r"run.nii: truncated NIfTI file: it holds \d+ bytes but its header declares "
                                         r"\d+ \(shape \(6, 7, 5, 150\)\); re-download"):
        bold_grid([nii], [150], tr_s=2.0)
    corrupt = write_nifti("corrupt.nii.gz", volumes[0])
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    corrupt.write_bytes(bytes(data))
    bold_grid([corrupt], [150], tr_s=2.0)  # complete: damage inside the stream shows when read (CRC)
    with pytest.raises(ValueError, match=r"corrupt.nii.gz: truncated or corrupt gzip/NIfTI file \(BadGzipFile: CRC"):
        read_bold([corrupt], volumes[1])
    (garbage := corrupt.with_name("garbage.nii.gz")).write_bytes(gzip.compress(b"not a NIfTI header"))
    with pytest.raises(ValueError, match=r"garbage.nii.gz: truncated or corrupt gzip/NIfTI file"):
        bold_grid([garbage], [150], tr_s=2.0)


def test_bold_grid_multi_member_gzip_is_complete(write_nifti, volumes):
    """A valid gzip of two members (its trailer gives only the last one's size) is read, not rejected."""
    path = write_nifti("run.nii.gz", volumes[0])
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    bold_grid([path], [150], tr_s=2.0)
    assert np.array_equal(read_bold([path], volumes[1]), volumes[0][volumes[1]].T)


def test_check_fmri_input_nifti(write_nifti, volumes):
    path = write_nifti("run.nii.gz", volumes[0])
    assert check_fmri_input(path, tr_s=2.0, n_trs=150) is None
    with pytest.raises(ValueError, match=r"run.nii.gz: holds 150 TRs but the config expects 140"):
        check_fmri_input(path, tr_s=2.0, n_trs=140)
    with pytest.raises(ValueError, match=r"run.nii.gz: the header gives a TR of 2 s .* fmri.tr_s is 1.5 s"):
        check_fmri_input(path, tr_s=1.5, n_trs=150)
    check_fmri_input(path, tr_s=1.5, n_trs=150, header_tr="ignore")
    with pytest.raises(ValueError, match=r"truncated or corrupt gzip/NIfTI file"):
        check_fmri_input(_truncate(path), tr_s=2.0, n_trs=150)
    with pytest.raises(FileNotFoundError, match=r"missing.nii.gz: fMRI file not found"):
        check_fmri_input(path.with_name("missing.nii.gz"), tr_s=2.0, n_trs=150)


def test_check_fmri_inputs_runs(write_nifti, volumes):
    paths = [write_nifti("run1.nii.gz", volumes[0][..., :70]), write_nifti("run2.nii.gz", volumes[0][..., 70:])]
    check_fmri_inputs(paths, tr_s=2.0, run_n_trs=[70, 80])
    check_fmri_inputs([write_nifti("all.nii.gz", volumes[0])], tr_s=2.0, run_n_trs=[70, 80])
    with pytest.raises(ValueError, match=r"run2.nii.gz: holds 80 TRs but the config expects 75"):
        check_fmri_inputs(paths, tr_s=2.0, run_n_trs=[70, 75])


def _write_mat73(path, **arrays):
    """A MATLAB v7.3 file: HDF5 behind a 512-byte MATLAB header, arrays stored with axes reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            f[name] = value.T
    header = b"MATLAB 7.3 MAT-file, created by the giblet tests".ljust(116) + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header)


def _write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        f.update(arrays)


MATRIX_WRITERS = {  # format -> (writer, row order of the voxels)
    "npy": (lambda path, data, kept: np.save(path, data), "C"),
    "npz": (lambda path, data, kept: np.savez(path, rdata=data, keptvox=kept), "C"),
    "mat": (lambda path, data, kept: scipy.io.savemat(path, {"rdata": data, "keptvox": kept}), "F"),
    "mat73": (lambda path, data, kept: _write_mat73(path, rdata=data, keptvox=kept), "F"),
    "h5": (lambda path, data, kept: _write_h5(path, rdata=data, keptvox=kept), "C"),
}


@pytest.mark.parametrize("fmt", sorted(MATRIX_WRITERS))
def test_read_matrix_formats_recover_voxels(tmp_path, volumes, fmt):
    data, mask = volumes
    write, order = MATRIX_WRITERS[fmt]
    ijk = grid_ijk(mask, order)
    path = tmp_path / f"sub.{'mat' if fmt == 'mat73' else fmt}"
    write(path, data[tuple(ijk.T)], np.ones((len(ijk), 1), np.uint8))  # voxels x TRs, rows in the format's order
    key = None if fmt == "npy" else "rdata"
    values, got_ijk = read_matrix(path, mask, 150, key=key)
    assert is_matrix(path) and values.shape == (150, 40)
    assert np.array_equal(got_ijk, ijk)
    assert np.array_equal(values, data[tuple(ijk.T)].T)


def test_read_matrix_transposed_is_accepted(tmp_path, volumes):
    data, mask = volumes
    np.save(tmp_path / "m.npy", data[mask].T)  # TRs x voxels
    values, _ = read_matrix(tmp_path / "m.npy", mask, 150)
    assert np.array_equal(values, data[mask].T)


def test_read_matrix_kept_flags_select_rows(tmp_path, volumes):
    data, mask = volumes
    kept = np.arange(40) % 4 != 0
    np.savez(tmp_path / "all.npz", rdata=data[mask], keptvox=kept)  # rows: all 40 mask voxels
    np.savez(tmp_path / "kept.npz", rdata=data[mask][kept], keptvox=kept)  # rows: the 30 kept ones
    for name in ("all.npz", "kept.npz"):
        values, ijk = read_matrix(tmp_path / name, mask, 150, key="rdata", kept_key="keptvox")
        assert np.array_equal(values, data[mask][kept].T) and np.array_equal(ijk, grid_ijk(mask)[kept])


def test_read_matrix_wrong_shape_raises(tmp_path, volumes):
    data, mask = volumes
    np.save(tmp_path / "m.npy", data[mask][:, :140])
    with pytest.raises(ValueError, match=r"m.npy: matrix has shape \(40, 140\); expected \(voxels, TRs\) = \(40 mask"):
        read_matrix(tmp_path / "m.npy", mask, 150)


def test_read_matrix_ambiguous_key_raises(tmp_path, volumes):
    data, mask = volumes
    np.savez(tmp_path / "m.npz", a=data[mask], b=data[mask])
    with pytest.raises(ValueError, match=r"no array None \(matrix_key\); it holds \['a', 'b'\]: set fmri.matrix_key"):
        read_matrix(tmp_path / "m.npz", mask, 150)


def test_read_matrix_unknown_format_raises(tmp_path, volumes):
    with pytest.raises(ValueError, match=r"matrix format must be one of \['.h5', '.hdf5', '.mat', '.npy', '.npz'\]"):
        read_matrix(tmp_path / "m.csv", volumes[1], 150)


@pytest.mark.parametrize("fmt", sorted(MATRIX_WRITERS))
def test_check_fmri_input_matrix_shapes(tmp_path, volumes, fmt):
    data, mask = volumes
    path = tmp_path / f"sub.{'mat' if fmt == 'mat73' else fmt}"
    MATRIX_WRITERS[fmt][0](path, data[mask], np.ones((40, 1), np.uint8))
    key = None if fmt == "npy" else "rdata"
    check_fmri_input(path, tr_s=2.0, n_trs=150, matrix_key=key)
    check_fmri_inputs([path], tr_s=2.0, run_n_trs=[100, 50], matrix_key=key)
    with pytest.raises(ValueError, match=r"matrix has shape \(40, 150\); expected \(voxels, TRs\) with 140 TRs"):
        check_fmri_input(path, tr_s=2.0, n_trs=140, matrix_key=key)
    if fmt != "npy":
        with pytest.raises(ValueError, match=r"no array 'data' \(matrix_key\); it holds \['keptvox', 'rdata'\]"):
            check_fmri_input(path, tr_s=2.0, n_trs=150, matrix_key="data")


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "mat73"])
def test_check_fmri_input_truncated_matrix_raises(tmp_path, volumes, fmt):
    path = tmp_path / f"sub.{'mat' if fmt == 'mat73' else fmt}"
    MATRIX_WRITERS[fmt][0](path, volumes[0][volumes[1]], np.ones((40, 1), np.uint8))
    _truncate(path, keep=0.5)
    with pytest.raises(ValueError, match=rf"sub.{path.suffix[1:]}: truncated or corrupt {path.suffix} file .*re-download"):
        check_fmri_input(path, tr_s=2.0, n_trs=150, matrix_key=None if fmt == "npy" else "rdata")


def test_read_matrix_truncated_mat_raises(tmp_path, volumes):
    """A truncated v5 .mat lists its arrays (so check_fmri_input passes) but fails, named, when read."""
    data, mask = volumes
    scipy.io.savemat(tmp_path / "sub.mat", {"rdata": data[tuple(grid_ijk(mask, "F").T)]})
    _truncate(tmp_path / "sub.mat")
    with pytest.raises(ValueError, match=r"sub.mat: truncated or corrupt .mat file \(OSError: .*\); re-download"):
        read_matrix(tmp_path / "sub.mat", mask, 150, key="rdata")


def test_read_confounds_tsv_and_nan(tmp_path):
    frame = pd.DataFrame({"trans_x": np.arange(5.0), "rot_z": np.ones(5)})
    frame.to_csv(tmp_path / "ok.tsv", sep="\t", index=False)
    assert read_confounds(tmp_path / "ok.tsv", 5).tolist() == frame.to_numpy().tolist()
    frame.loc[0, "rot_z"] = np.nan
    frame.to_csv(tmp_path / "nan.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"nan.tsv: confounds hold NaN/inf in columns \[1\]"):
        read_confounds(tmp_path / "nan.tsv", 5)
    with pytest.raises(ValueError, match="5 confound rows but 6 TRs"):
        read_confounds(tmp_path / "ok.tsv", 6)


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels)")
def test_read_matrix_sherlock_rows_are_matlab_order():
    """The rows of rdata follow MATLAB's column-major find(mask): neighbours in that order correlate most."""
    import nibabel as nib

    mask = np.asanyarray(nib.load(SHERLOCK / "masks" / "pmc_nn.nii.gz").dataobj) > 0
    path = SHERLOCK / "pmc_voxels" / "pmc_nn_sherlock_movie_s1.mat"
    neighbour_r = {}
    for order in ("F", "C"):
        values, ijk = read_matrix(path, mask, 1976, key="rdata", kept_key="keptvox", voxel_order=order)
        r = np.corrcoef(values.T)
        index = {tuple(v): i for i, v in enumerate(ijk)}
        pairs = [(i, index[tuple(v + d)]) for i, v in enumerate(ijk) for d in np.eye(3, dtype=int) if tuple(v + d) in index]
        neighbour_r[order] = np.mean([r[i, j] for i, j in pairs])
    assert values.shape == (1976, 481)
    assert neighbour_r["F"] > 0.95 and neighbour_r["F"] - neighbour_r["C"] > 0.05
    default, _ = read_matrix(path, mask, 1976, key="rdata", kept_key="keptvox")  # .mat defaults to "F"
    assert np.array_equal(default, read_matrix(path, mask, 1976, key="rdata", voxel_order="F")[0])
