import numpy as np
import pytest

from giblet.fmri.quality import constant_voxels, find_bad
from tests.conftest import SHARED_DATA


def test_find_bad_nan_trs_and_voxels(rng):
    values = rng.standard_normal((30, 8))
    values[4] = np.nan  # a missing volume
    values[10:12, 3] = np.nan  # a voxel with holes
    quality = find_bad(values)
    assert np.flatnonzero(quality.bad_trs["nan"]).tolist() == [4]
    assert np.flatnonzero(quality.bad_voxels["nan"]).tolist() == [3]
    assert quality.tr_ok.sum() == 29 and quality.voxel_ok.sum() == 7


def test_find_bad_constant_voxels_over_reference_trs(rng):
    values = rng.standard_normal((30, 5))
    values[:, 0] = 0.0  # outside the brain
    values[:20, 2] = 7.0  # flat during training only
    reference = np.arange(30) < 20
    assert np.flatnonzero(find_bad(values, reference_trs=reference).bad_voxels["constant"]).tolist() == [0, 2]
    assert np.flatnonzero(find_bad(values).bad_voxels["constant"]).tolist() == [0]


def test_find_bad_repeated_tail_keeps_the_original(rng):
    values = rng.standard_normal((40, 6)).astype(np.float32)
    values[:, 5] = 1.0  # a constant voxel is equal at every TR and must not make every TR a repeat
    values[35:] = values[34]  # s5-like: the last 5 TRs copy TR 34
    quality = find_bad(values)
    assert np.flatnonzero(quality.bad_trs["repeated"]).tolist() == [35, 36, 37, 38, 39]
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "repeated": [[35, 40]]}
    assert quality.voxel_reasons().tolist() == [""] * 5 + ["constant"]


def test_find_bad_all_nan_raises():
    with pytest.raises(ValueError, match="sub-01.nii.gz: every value is NaN"):
        find_bad(np.full((10, 4), np.nan), source="sub-01.nii.gz")


def test_find_bad_no_usable_voxel_raises():
    with pytest.raises(ValueError, match=r"no usable voxel \(0 with NaN, 3 constant\)"):
        find_bad(np.ones((10, 3)))


def test_find_bad_by_blocks_equals_one_block(rng, monkeypatch):
    values = rng.standard_normal((40, 10)).astype(np.float32)
    values[4, :7] = np.nan  # a NaN TR (7 of 10 voxels)
    values[12, 8] = np.nan  # a NaN voxel
    values[:, 2] = 3.0  # a constant voxel
    values[30:] = values[29]  # a repeated tail
    one = find_bad(values)
    monkeypatch.setattr("giblet.blocks.BLOCK_COLUMNS", 3)
    blocks = find_bad(values)
    for kind in ("bad_trs", "bad_voxels"):
        for reason, mask in getattr(one, kind).items():
            np.testing.assert_array_equal(getattr(blocks, kind)[reason], mask)
    assert np.flatnonzero(blocks.bad_trs["repeated"]).tolist() == list(range(30, 40))
    assert np.flatnonzero(blocks.bad_voxels["nan"]).tolist() == [8]
    assert np.flatnonzero(blocks.bad_voxels["constant"]).tolist() == [2]


def test_constant_voxels_over_some_trs(rng, small_blocks):
    values = rng.standard_normal((10, 7))
    values[:5, 6] = 1.0
    values[3, 0] = np.nan
    assert np.flatnonzero(constant_voxels(values, np.arange(10) < 5)).tolist() == [6]


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels)")
@pytest.mark.parametrize("subject, repeated", [("s5", [[1926, 1976]]), ("s1", [])])
def test_find_bad_sherlock_s5_copied_tail(subject, repeated):
    import scipy.io

    mat = scipy.io.loadmat(SHARED_DATA / "sherlock" / "pmc_voxels" / f"pmc_nn_sherlock_movie_{subject}.mat")
    quality = find_bad(mat["rdata"].T)
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "repeated": repeated}
    assert quality.voxel_ok.all()
