"""Metrics against hand-computed values."""

import numpy as np
import pytest
from scipy import stats

from giblet.evaluation.metrics import (
    at_shifts,
    bootstrap_ci,
    fdr_bh,
    identification_ranks,
    pearson_columns,
    pearson_pairs,
    pearson_rows,
    rank_accuracy,
    shifted_rank_accuracy,
    shifted_ssim,
    ssim,
    topk_hits,
)


def test_pearson_columns_hand_computed():
    prediction = np.array([[1.0, 1.0], [2.0, 5.0], [3.0, 1.0]])
    target = np.array([[2.0, 1.0], [4.0, 1.0], [9.0, 2.0]])
    # column 0: centred x = (-1, 0, 1), y = (-3, -1, 4) -> sum xy = 7, |x|^2 = 2, |y|^2 = 26
    # column 1: centred x = (-4/3, 8/3, -4/3), y = (-1/3, -1/3, 2/3) -> sum xy = -4/3, |x| |y| = sqrt(32/3 * 2/3)
    r = pearson_columns(prediction, target)
    assert r[0] == pytest.approx(7 / np.sqrt(2 * 26))
    assert r[1] == pytest.approx(-0.5)


def test_pearson_columns_constant_target_is_nan_and_constant_prediction_scores_zero():
    constant_prediction = pearson_columns(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]),
                                          np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert constant_prediction[0] == 0.0 and constant_prediction[1] == pytest.approx(1.0)
    constant_target = pearson_columns(np.array([[0.0], [1.0], [2.0]]), np.array([[3.0], [3.0], [3.0]]))
    assert np.isnan(constant_target[0])


def test_pearson_columns_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        pearson_columns(np.zeros((3, 2)), np.zeros((4, 2)))


def test_pearson_rows_matches_scipy(rng):
    a, b = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    expected = [stats.pearsonr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(pearson_rows(a, b), expected)


def test_pearson_pairs_is_pearson_rows_of_every_pair(rng):
    a, b = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 3, 5))
    a[1], b[2] = 0.5, -1.0  # a constant prediction scores 0, a constant target NaN
    pairs = pearson_pairs(a, b)
    assert pairs.shape == (4, 3)
    for i in range(4):
        np.testing.assert_allclose(pairs[i], pearson_rows(np.repeat(a[i : i + 1], 3, axis=0), b))
    assert (pairs[1, :2] == 0).all() and np.isnan(pairs[:, 2]).all()


def test_at_shifts_pairs_each_true_tr_with_the_rolled_decoding():
    pairs = np.arange(16.0).reshape(4, 4)  # [i, j] = 4 i + j
    # shift 1: true TR j meets decoded TR j - 1 (np.roll(decoded, 1)): [3, 0], [0, 1], [1, 2], [2, 3]
    assert at_shifts(pairs, [0, 1]).tolist() == [[0, 5, 10, 15], [12, 1, 6, 11]]


def test_topk_hits_hand_computed():
    topk = np.array([[3, 7, 1], [0, 2, 9]])
    assert topk_hits(topk, np.array([7, 5])).tolist() == [True, False]
    assert topk_hits(topk[:, :1], np.array([7, 0])).tolist() == [False, True]


def test_identification_ranks_perfect_reversed_and_constant():
    true = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert identification_ranks(true, true).tolist() == [0, 0, 0]
    # decoded row t is true row 2 - t: the middle row is found; row 0 correlates 1 with true row 2 and
    # -0.5 with rows 0 and 1 alike, so one better candidate plus one tie: rank 1.5
    assert identification_ranks(true[::-1], true).tolist() == [1.5, 0, 1.5]
    # a constant decoding ties with every candidate: rank (n - 1) / 2, i.e. chance
    assert identification_ranks(np.ones((3, 3)), true).tolist() == [1, 1, 1]


def test_shifted_rank_accuracy_is_identification_of_the_rolled_decoding(rng):
    true = rng.standard_normal((9, 4))
    decoded = true + rng.standard_normal((9, 4))
    decoded[4] = 1.0  # a constant row ties with every candidate
    shifts = np.arange(9)
    expected = [rank_accuracy(identification_ranks(np.roll(decoded, s, axis=0), true), 9).mean() for s in shifts]
    np.testing.assert_allclose(shifted_rank_accuracy(decoded, true, shifts), expected)


def test_rank_accuracy_chance_and_perfect():
    assert rank_accuracy([0, 0], 5).tolist() == [1, 1]
    assert rank_accuracy([2.0], 5)[0] == 0.5
    assert rank_accuracy([4], 5)[0] == 0


def test_ssim_identical_images_is_one(rng):
    images = rng.uniform(0, 1, (2, 3, 12, 16))
    np.testing.assert_allclose(ssim(images, images), [1.0, 1.0])


def test_ssim_constant_images_hand_computed():
    # constant images a and b: variances vanish and SSIM = (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    x, y = np.full((1, 1, 8, 8), a), np.full((1, 1, 8, 8), b)
    assert ssim(x, y)[0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_shifted_ssim_is_the_ssim_of_the_rolled_images(rng):
    estimate, reference = rng.uniform(0, 1, (2, 5, 3, 12, 16))
    shifted = shifted_ssim(estimate, reference, [0, 2, 4])
    for row, shift in zip(shifted, [0, 2, 4]):
        np.testing.assert_allclose(row, ssim(np.roll(estimate, shift, axis=0), reference), rtol=1e-12)
    np.testing.assert_allclose(shifted_ssim(reference, reference, [0])[0], 1.0)


def test_ssim_noise_lowers_similarity(rng):
    images = rng.uniform(0, 1, (1, 3, 16, 16))
    noisy = np.clip(images + 0.3 * rng.standard_normal(images.shape), 0, 1)
    assert ssim(noisy, images)[0] < 0.8


def test_bootstrap_ci_brackets_mean_and_narrows_with_more_trs(rng):
    short, long = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    mean, low, high = bootstrap_ci(short, n_bootstrap=2000, seed=0)
    assert mean == pytest.approx(short.mean()) and low < mean < high
    # the normal-theory interval is mean +- 1.96 sd / sqrt(n)
    assert high - low == pytest.approx(2 * 1.96 * short.std() / np.sqrt(20), rel=0.2)
    _, low_long, high_long = bootstrap_ci(long, n_bootstrap=2000, seed=0)
    assert high_long - low_long < (high - low) / 5


def test_bootstrap_ci_blocks_widen_interval_of_autocorrelated_scores(rng):
    slow = np.repeat(rng.standard_normal(20), 10)  # 10-TR plateaus: 20 independent values, not 200
    _, low_iid, high_iid = bootstrap_ci(slow, n_bootstrap=2000, seed=0, block_trs=1)
    _, low_block, high_block = bootstrap_ci(slow, n_bootstrap=2000, seed=0, block_trs=10)
    assert (high_block - low_block) > 2 * (high_iid - low_iid)


def test_bootstrap_ci_is_deterministic_for_a_seed(rng):
    values = rng.standard_normal((30, 2))
    a, b = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_bootstrap_ci_rejects_long_blocks():
    with pytest.raises(ValueError, match="block_trs"):
        bootstrap_ci(np.zeros(5), block_trs=6)


def test_fdr_bh_hand_computed_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    # sorted p 0.01, 0.03, 0.04, 0.5 (m = 4): q = min over k >= i of p_k * m / k -> 0.04, 0.0533, 0.0533, 0.5
    q = fdr_bh(p)
    np.testing.assert_allclose(q[[0, 3, 1, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[2])
