"""Encoding scores, the ISC ceiling lookup and the per-ROI table."""

import numpy as np
import pytest

from giblet.evaluation.encoding import (
    block_bootstrap_r,
    codebook_feature_sets,
    encoding_table,
    feature_set_encoding,
    isc_ceiling,
    predict_bold,
    roi_ceiling_on,
    score_encoding,
)
from giblet.fmri.group_isc import GroupIsc
from giblet.splits import BLOCKS


def _scores(rng, n_trs=80):
    prediction = rng.standard_normal((n_trs, 6))
    measured = np.hstack([prediction[:, :3] + 0.2 * rng.standard_normal((n_trs, 3)), rng.standard_normal((n_trs, 3))])
    membership = np.zeros((6, 2), bool)
    membership[:3, 0] = membership[3:, 1] = True
    return score_encoding(prediction, measured, membership, n_permutations=199, seed=0), membership


def _data(rng, n_trs=80):
    prediction = rng.standard_normal((n_trs, 6))
    return prediction, prediction + rng.standard_normal((n_trs, 6))


def test_score_encoding_finds_driven_voxels(rng):
    scores, _ = _scores(rng)
    assert (scores.voxel_r[:3] > 0.9).all() and (np.abs(scores.voxel_r[3:]) < 0.35).all()
    assert (scores.voxel_p[:3] < 1e-6).all() and (scores.voxel_q[:3] <= 0.05).all()
    assert (scores.voxel_p[3:] > 1e-3).all()
    assert scores.roi_r[0] > 0.95 and scores.roi_p[0] == 1 / 200 and scores.roi_p[1] > 0.05
    assert abs(scores.roi_null_mean[0]) < 0.05 and scores.n_trs == 80


def test_score_encoding_roi_r_is_correlation_of_roi_means(rng):
    prediction, measured = _data(rng)
    membership = np.zeros((6, 2), bool)
    membership[[0, 2, 4], 0] = membership[[1, 5], 1] = True
    scores = score_encoding(prediction, measured, membership, n_permutations=9)
    for r, members in enumerate(membership.T):
        expected = np.corrcoef(prediction[:, members].mean(1), measured[:, members].mean(1))[0, 1]
        assert scores.roi_r[r] == pytest.approx(expected)
    assert (scores.voxel_q >= scores.voxel_p).all()


def test_score_encoding_rejects_nan(rng):
    prediction = rng.standard_normal((10, 2))
    prediction[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        score_encoding(prediction, rng.standard_normal((10, 2)), np.ones((2, 1), bool))


def _group_isc(path, subjects, blocks, roi_names, voxel_ijk, grid_shape, n_trs, **arrays):
    """A group ISC file with ``arrays`` given and every other array zero."""
    n_b, n_s, n_r = len(blocks), len(subjects), len(roi_names)
    shapes = {"voxel_isc": (n_b, n_s, len(voxel_ijk)), "roi_isc": (n_b, n_s, n_r), "roi_isc_null": (n_b, n_s, n_r),
              "roi_isc_null_band": (n_b, 2, n_s, n_r), "roi_isc_null_group_band": (n_b, 2, n_r),
              "roi_isc_ci": (n_b, 2, n_s, n_r), "roi_isc_group_ci": (n_b, 2, n_r), "roi_timecourses": (n_s, n_trs, n_r)}
    arrays = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()} | arrays
    return GroupIsc(subjects=tuple(subjects), blocks=tuple(blocks), n_trs=np.full(n_b, n_trs), voxel_ijk=voxel_ijk,
                    affine=np.eye(4), grid_shape=grid_shape, roi_names=tuple(roi_names), summary={},
                    **arrays).save(path)


def test_isc_ceiling_follows_voxel_grid_positions(tmp_path):
    grid = (2, 2, 1)
    group_ijk = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], np.int32)
    voxel_isc = np.zeros((2, 2, 4), np.float32)
    voxel_isc[1, 1] = [0.1, 0.2, 0.3, 0.4]  # block "test", subject "s2"
    roi_isc = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    path = _group_isc(tmp_path / "group_isc.npz", ["s1", "s2"], ["all", "test"], ["a", "b"], group_ijk, grid, 10,
                      voxel_isc=voxel_isc, roi_isc=roi_isc)
    own_ijk = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])  # another order; voxel (0, 1) not in this subject
    group = GroupIsc.load(path)
    voxel, roi = isc_ceiling(group, "s2", own_ijk, ("a", "b"))
    np.testing.assert_allclose(voxel, [0.4, 0.1, 0.3], rtol=1e-6)
    np.testing.assert_allclose(roi, [6, 7])
    with pytest.raises(ValueError, match="rerun group-isc"):
        isc_ceiling(group, "s3", own_ijk, ("a", "b"))
    with pytest.raises(ValueError, match="ROIs"):
        isc_ceiling(group, "s2", own_ijk, ("a", "c"))


def test_encoding_table_reports_r_over_ceiling(rng):
    scores, membership = _scores(rng)
    table = encoding_table({"autoencoder": scores}, ("driven", "noise"), membership, np.full(6, 0.5),
                           np.array([0.8, 0.1]))
    assert table["roi"].tolist() == ["driven", "noise"] and (table["n_voxels"] == 3).all()
    row = table.iloc[0]
    assert row["r_over_ceiling"] == pytest.approx(scores.roi_r[0] / 0.8)
    assert row["mean_voxel_r"] == pytest.approx(scores.voxel_r[:3].mean())
    assert row["fraction_voxels_significant"] == 1.0
    assert np.isnan(table.iloc[1]["r_over_ceiling"])  # a ceiling of 0.1 is too near chance to divide by
    assert table["above_ceiling"].tolist() == [True, scores.roi_r[1] > 0.1]  # driven r ~ 0.98 > 0.8: flagged


def test_roi_ceiling_on_scores_exactly_the_given_trs_on_the_model_clock(tmp_path, rng):
    courses = rng.standard_normal((3, 12, 1)).astype(np.float32)  # 3 subjects, 12 stored TRs, 1 ROI
    courses[2, 5, 0] = np.nan  # subject s3 invalid at stored TR 5
    path = _group_isc(tmp_path / "group_isc.npz", ["s1", "s2", "s3"], ["all"], ["a"], np.zeros((1, 3), int),
                      (1, 1, 1), 12, roi_timecourses=courses)
    runs, rows = np.zeros(12, int), np.array([3, 6, 7, 8, 10])
    group = GroupIsc.load(path)
    got = roi_ceiling_on(group, "s1", ("a",), rows, runs, preshift_trs=1)  # model TR t is stored TR t - 1
    stored = rows - 1
    others = np.nanmean(courses[1:, stored, 0], axis=0)  # at stored TR 5 only s2 counts
    assert got[0] == pytest.approx(np.corrcoef(courses[0, stored, 0], others)[0, 1], abs=1e-6)
    with pytest.raises(ValueError, match="rerun group-isc"):
        roi_ceiling_on(group, "s4", ("a",), rows, runs)


def test_predict_bold_fills_only_the_block(model, movie_data):
    predicted = predict_bold(model, movie_data, "sub-a", "test")
    test = movie_data.labels == BLOCKS.index("test")
    assert predicted.shape == movie_data.bold["sub-a"].shape
    assert np.isfinite(predicted[test]).all() and np.isnan(predicted[~test]).all()


def test_predict_bold_ignores_measured_bold(model, movie_data):
    import dataclasses

    other = dataclasses.replace(movie_data, bold={"sub-a": np.zeros_like(movie_data.bold["sub-a"])})
    np.testing.assert_array_equal(predict_bold(model, movie_data, "sub-a"), predict_bold(model, other, "sub-a"))


def test_codebook_feature_sets_split_the_pooled_layout_per_level():
    pooled = np.arange(2 * 3 * 4, dtype=float).reshape(2, 12)  # 2 codebooks + their sum, dim 4
    sets = codebook_feature_sets(pooled, 2, descriptor=np.ones((2, 5)))
    assert list(sets) == ["cb0", "cb1", "all_codebooks", "log_mel"]
    np.testing.assert_array_equal(sets["cb1"], pooled[:, 4:8])
    np.testing.assert_array_equal(sets["all_codebooks"], pooled[:, 8:])


def test_feature_set_encoding_finds_the_region_each_feature_set_drives():
    rng = np.random.default_rng(0)
    n = 400
    labels = np.full(n, -1)
    labels[:280], labels[290:340], labels[350:] = BLOCKS.index("train"), BLOCKS.index("val"), BLOCKS.index("test")
    sets = {"driving": rng.standard_normal((n, 3)), "unrelated": rng.standard_normal((n, 3))}
    bold = rng.standard_normal((n, 8))
    bold[2:, :4] += sets["driving"][:-2] @ np.abs(rng.standard_normal((3, 4)))  # ROI "a": voxels 0-3, 2 TRs later
    membership = np.zeros((8, 2), bool)
    membership[:4, 0], membership[4:, 1] = True, True
    table = feature_set_encoding(sets, bold, np.ones(n, bool), labels, np.zeros(n, int), (1, 2, 3), ["a", "b"],
                                 membership).set_index(["features", "roi"])
    assert table.loc[("driving", "a"), "mean_voxel_r"] > 0.6 and table.loc[("driving", "a"), "r"] > 0.6
    assert abs(table.loc[("unrelated", "a"), "mean_voxel_r"]) < 0.2 and abs(table.loc[("driving", "b"), "r"]) < 0.3
    assert (table["n_trs"] == 50 - 3).all() and table.loc[("driving", "a"), "n_voxels"] == 4


def test_score_encoding_roi_ci_brackets_r_and_narrows_with_more_trs(rng):
    short, _ = _scores(rng, n_trs=40)
    long, _ = _scores(rng, n_trs=400)
    for scores in (short, long):
        assert (scores.roi_ci[0] <= scores.roi_r).all() and (scores.roi_r <= scores.roi_ci[1]).all()
        assert scores.roi_ci[0, 0] > 0.9  # the driven ROI
        assert scores.roi_ci[0, 1] < 0 < scores.roi_ci[1, 1]  # the noise ROI's interval covers 0
    assert np.diff(long.roi_ci, axis=0)[0, 1] < np.diff(short.roi_ci, axis=0)[0, 1]


def test_block_bootstrap_r_keeps_blocks_of_consecutive_trs(rng):
    """With autocorrelated series, resampling blocks gives a wider interval than resampling single TRs."""
    n = 300
    smooth = np.cumsum(rng.standard_normal((n, 2)), axis=0)  # random walks: strongly autocorrelated
    single = block_bootstrap_r(smooth[:, :1], smooth[:, 1:], block_trs=1, seed=0)
    blocks = block_bootstrap_r(smooth[:, :1], smooth[:, 1:], block_trs=30, seed=0)
    assert blocks[1, 0] - blocks[0, 0] > single[1, 0] - single[0, 0]


def test_voxel_fdr_finds_driven_voxels_among_thousands_with_few_permutations(rng):
    """Regression: with empirical p (at best 1 / 51 here) no voxel passed FDR over 2,000 voxels."""
    n_trs, n_voxels, n_driven = 120, 2000, 100
    prediction = rng.standard_normal((n_trs, n_voxels))
    measured = rng.standard_normal((n_trs, n_voxels))
    measured[:, :n_driven] += prediction[:, :n_driven]  # r ~ 0.7
    membership = np.ones((n_voxels, 1), bool)
    scores = score_encoding(prediction, measured, membership, n_permutations=50, seed=0, n_bootstrap=10)
    assert (scores.voxel_q[:n_driven] < 0.05).mean() > 0.95
    assert (scores.voxel_q[n_driven:] < 0.05).mean() < 0.01
