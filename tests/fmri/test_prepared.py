import numpy as np

from giblet.fmri.prepared import PreparedFmri
from giblet.splits import make_split
from tests.fmri.conftest import AFFINE, GRID


def test_prepared_fmri_save_load_roundtrip(tmp_path, rng):
    split = make_split(120, 2.0)
    prepared = PreparedFmri(
        subject="sub-01", values=rng.standard_normal((120, 4)).astype(np.float32), runs=np.repeat([0, 1], 60),
        tr_s=2.0, valid_trs=split.labels >= 0, split=split, voxel_ijk=np.array([[0, 0, 0], [1, 2, 3], [4, 5, 1], [5, 6, 4]]),
        affine=AFFINE, grid_shape=GRID, roi_names=("a", "b"),
        roi_membership=np.array([[True, False], [True, True], [False, True], [False, False]]),
        excluded_ijk=np.array([[2, 2, 2]], np.int32), excluded_reasons=("constant",),
        mean=np.zeros(4), scale=np.ones(4), qc={"n_bad_trs": {"nan": 0}},
    )
    loaded = PreparedFmri.load(prepared.save(tmp_path / "sub-01.npz"))
    for name in ("values", "runs", "valid_trs", "voxel_ijk", "affine", "roi_membership", "excluded_ijk", "mean", "scale"):
        assert np.array_equal(getattr(loaded, name), getattr(prepared, name)), name
    assert (loaded.subject, loaded.tr_s, loaded.grid_shape, loaded.roi_names, loaded.excluded_reasons, loaded.qc) == (
        "sub-01", 2.0, GRID, ("a", "b"), ("constant",), {"n_bad_trs": {"nan": 0}})
    assert np.array_equal(loaded.split.labels, split.labels) and loaded.split.gap_s == split.gap_s
    assert loaded.times_s[:3].tolist() == [0.0, 2.0, 4.0]
    assert {k: v.tolist() for k, v in loaded.rois.items()} == {"a": [0, 1], "b": [1, 2]}
    assert np.allclose(loaded.roi_means()[:, 1], prepared.values[:, 1:3].mean(axis=1))
