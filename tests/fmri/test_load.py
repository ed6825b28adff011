import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io

from giblet.fmri.load import bold_grid, is_matrix, read_bold, read_confounds, read_matrix
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


def test_bold_grid_header_tr_differs_warns(write_nifti, volumes):
    path = write_nifti("all.nii.gz", volumes[0], tr_s=1.0)
    with pytest.warns(UserWarning, match="header TR is 1 s but fmri.tr_s is 2 s"):
        bold_grid([path], [150], tr_s=2.0)


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
