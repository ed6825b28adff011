import nibabel as nib
import numpy as np
import pytest

from giblet.fmri.masks import MaskSpec, check_mask_input, grid_ijk, load_mask, mask_spec, roi_means, unmask
from tests.conftest import SHARED_DATA
from tests.fmri.conftest import AFFINE, GRID

MASKS = SHARED_DATA / "sherlock" / "masks"
needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (the Sherlock masks)")


def test_load_mask_fractional_threshold(write_nifti):
    values = np.zeros(GRID, np.float32)
    values[1, 1, 1], values[2, 2, 2], values[3, 3, 3] = 0.25, 0.75, 1.0
    path = write_nifti("frac.nii.gz", values)
    loose, qc = load_mask("brain", path, AFFINE, GRID)
    strict, _ = load_mask("brain", MaskSpec(str(path), threshold=0.5), AFFINE, GRID)
    assert qc["kind"] == "fractional" and not qc["resampled"]
    assert loose["brain"].sum() == 3 and strict["brain"].sum() == 2 and not strict["brain"][1, 1, 1]


def test_load_mask_4d_singleton_other_origin_shifted_exactly(write_nifti):
    values = np.zeros((*GRID, 1), np.uint8)
    values[2, 3, 1, 0] = values[4, 5, 3, 0] = 4  # one label value (4), as in ddmn_mpfc
    shifted = AFFINE.copy()
    shifted[:3, 3] += [3.0, -6.0, 0.0]  # origin moved by (+1, -2, 0) voxels
    masks, qc = load_mask("mpfc", write_nifti("m4d.nii.gz", values, affine=shifted), AFFINE, GRID)
    assert qc["resampled"] and qc["kind"] == "binary"
    assert np.argwhere(masks["mpfc"]).tolist() == [[3, 1, 1], [5, 3, 3]]


def test_load_mask_labels_merged_or_split_as_atlas(write_nifti):
    values = np.zeros(GRID, np.int16)
    values[1, 1, 1], values[2, 2, 2], values[3, 3, 3] = 20, 33, 33
    path = write_nifti("labels.nii.gz", values)
    merged, qc = load_mask("hipp", path, AFFINE, GRID)
    atlas, _ = load_mask("hipp", {"path": str(path), "atlas": True}, AFFINE, GRID)
    assert qc["kind"] == "labels" and merged["hipp"].sum() == 3
    assert {k: int(v.sum()) for k, v in atlas.items()} == {"hipp_20": 1, "hipp_33": 2}


def test_load_mask_finer_grid_keeps_labels(write_nifti):
    fine = np.zeros((12, 14, 10), np.int16)
    fine[:6] = 7
    fine[6:] = 9
    fine_affine = AFFINE.copy()
    fine_affine[:3, :3] /= 2
    masks, qc = load_mask("lr", {"path": str(write_nifti("fine.nii.gz", fine, affine=fine_affine)), "atlas": True},
                          AFFINE, GRID)
    assert qc["resampled"] and sorted(masks) == ["lr_7", "lr_9"]  # nearest neighbour never blends 7 and 9
    assert masks["lr_7"].sum() + masks["lr_9"].sum() == np.prod(GRID)


def test_load_mask_other_space_raises(write_nifti):
    far = AFFINE.copy()
    far[:3, 3] += 200.0
    values = np.ones(GRID, np.uint8)
    with pytest.raises(ValueError, match=r"only 0% of mask 'roi' lies inside the data's field of view.*another space"):
        load_mask("roi", write_nifti("far.nii.gz", values, affine=far), AFFINE, GRID)


def test_load_mask_threshold_above_values_raises(write_nifti):
    values = np.zeros(GRID, np.float32)
    values[1, 1, 1] = 0.4
    with pytest.raises(ValueError, match=r"mask 'vis' has no voxel with value > 0.5.*lower its threshold"):
        load_mask("vis", MaskSpec(str(write_nifti("low.nii.gz", values)), threshold=0.5), AFFINE, GRID)


def test_load_mask_many_volumes_raises(write_nifti):
    with pytest.raises(ValueError, match=r"mask has shape \(6, 7, 5, 2\); a mask must be 3-D"):
        load_mask("roi", write_nifti("two.nii.gz", np.ones((*GRID, 2), np.uint8)), AFFINE, GRID)


def test_load_mask_continuous_atlas_raises(write_nifti):
    values = np.zeros(GRID, np.float32)
    values[1, 1, 1], values[2, 2, 2] = 1.5, 2.7
    with pytest.raises(ValueError, match="atlas 'roi' has continuous values"):
        load_mask("roi", {"path": str(write_nifti("c.nii.gz", values)), "atlas": True}, AFFINE, GRID)


def test_load_mask_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nii.gz: mask file not found"):
        load_mask("roi", tmp_path / "nope.nii.gz", AFFINE, GRID)


def test_check_mask_input_reads_header_and_stream(write_nifti):
    values = np.zeros(GRID, np.float32)
    values[1:4, 1:4, 1:3] = 1.0
    path = write_nifti("roi.nii.gz", values)
    assert check_mask_input(path) is None and check_mask_input({"path": str(path), "threshold": 0.5}) is None
    whole = path.read_bytes()
    path.write_bytes(whole[:-12])  # an interrupted copy: the header reads, the stream ends early
    with pytest.raises(ValueError, match=r"roi.nii.gz: truncated or corrupt gzip/NIfTI file \(EOFError: .*\); re-download"):
        check_mask_input(path)
    with pytest.raises(ValueError, match=r"roi.nii.gz: truncated or corrupt gzip/NIfTI file"):
        load_mask("roi", path, AFFINE, GRID)
    with pytest.raises(ValueError, match=r"mask has shape \(6, 7, 5, 2\); a mask must be 3-D"):
        check_mask_input(write_nifti("two.nii.gz", np.ones((*GRID, 2), np.uint8)))
    with pytest.raises(FileNotFoundError, match="nope.nii.gz: mask file not found"):
        check_mask_input(path.with_name("nope.nii.gz"))


def test_load_mask_damaged_stream_raises(write_nifti, rng):
    """Damage inside a complete gzip stream decodes to wrong values unless the CRC is checked."""
    path = write_nifti("roi.nii.gz", rng.random(GRID).astype(np.float32))  # incompressible: stored blocks
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"roi.nii.gz: truncated or corrupt gzip/NIfTI file \(BadGzipFile: CRC check"):
        load_mask("roi", path, AFFINE, GRID)


def test_mask_spec_bad_value_raises():
    with pytest.raises(ValueError, match="a mask must be a path or a mapping with 'path'"):
        mask_spec({"threshold": 0.5})


def test_grid_ijk_c_and_fortran_order():
    mask = np.zeros((2, 2, 2), bool)
    mask[0, 0, 1] = mask[1, 0, 0] = True
    assert grid_ijk(mask, "C").tolist() == [[0, 0, 1], [1, 0, 0]]
    assert grid_ijk(mask, "F").tolist() == [[1, 0, 0], [0, 0, 1]]


def test_unmask_puts_values_at_their_voxels():
    ijk = np.array([[0, 1, 2], [5, 6, 4]])
    img = unmask(np.array([1.5, -2.0]), ijk, AFFINE, GRID)
    data = img.get_fdata()
    assert data[0, 1, 2] == 1.5 and data[5, 6, 4] == -2.0 and np.count_nonzero(data) == 2
    assert np.allclose(img.affine, AFFINE)
    assert unmask(np.ones((3, 2)), ijk, AFFINE, GRID).shape == (*GRID, 3)


def test_roi_means_average_member_voxels():
    values = np.array([[1.0, 3.0, 10.0], [np.nan, 5.0, 20.0]])
    membership = np.array([[True, False], [True, False], [False, True]])
    out = roi_means(values, membership)
    assert out[0].tolist() == [2.0, 10.0] and np.isnan(out[1, 0]) and out[1, 1] == 20.0


@pytest.mark.real
@needs_shared
def test_load_mask_sherlock_quirks():
    target = nib.load(MASKS / "MNI152_T1_3mm_brain_mask.nii.gz")
    affine, shape = target.affine, target.shape
    expected = {  # name: (kind, resampled, voxels with value > 0 on the MNI grid)
        "MNI152_T1_3mm_brain_mask": ("fractional", False, 70273),
        "pmc_nn": ("binary", False, 481),
        "bilateral_hipp": ("labels", False, 468),
        "post_parahipp": ("labels", False, 284),
        "early_visual": ("fractional", False, 307),  # continuous 0.45-0.55: a 0.5 cut would halve it
        "ddmn_mpfc": ("binary", True, None),
    }
    for name, (kind, resampled, n_voxels) in expected.items():
        masks, qc = load_mask(name, MASKS / f"{name}.nii.gz", affine, shape)
        assert (qc["kind"], qc["resampled"]) == (kind, resampled), name
        if n_voxels is not None:
            assert masks[name].sum() == n_voxels, name
    strict, _ = load_mask("brain", MaskSpec(str(MASKS / "MNI152_T1_3mm_brain_mask.nii.gz"), 0.5), affine, shape)
    assert strict["brain"].sum() == 66456
    # ddmn_mpfc: 4-D singleton whose origin is (0, +18, -18) mm off -> voxel (i, j, k) lands on (i, j + 6, k - 6)
    mpfc, _ = load_mask("mpfc", MASKS / "ddmn_mpfc.nii.gz", affine, shape)
    source = np.argwhere(np.asanyarray(nib.load(MASKS / "ddmn_mpfc.nii.gz").dataobj)[..., 0] > 0) + [0, 6, -6]
    inside = np.all((source >= 0) & (source < shape), axis=1)
    assert np.array_equal(np.argwhere(mpfc["mpfc"]), source[inside])
