import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giblet.text.tr_grid import TRAccumulator, interval_tr_weights, overlap_mean, run_bounds_s, tr_run_ids


def test_interval_tr_weights_overlap_seconds():
    weights = interval_tr_weights([0.5, 2.9, 1.0], [2.0, 3.1, 2.0], n_trs=4, tr_s=1.0).toarray()
    np.testing.assert_allclose(weights, [[0.5, 0, 0], [1.0, 0, 1.0], [0, 0.1, 0], [0, 0.1, 0]], atol=1e-12)


def test_interval_tr_weights_outside_scan_no_weight():
    weights = interval_tr_weights([-2.0, -0.5, 2.5, 1.0], [-1.0, 0.5, 9.0, 1.0], n_trs=3, tr_s=1.0).toarray()
    np.testing.assert_allclose(weights, [[0, 0.5, 0, 0], [0, 0, 0, 0], [0, 0, 0.5, 0]], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-3, 12), st.floats(0, 5)), min_size=1, max_size=6),
    st.sampled_from([0.7, 1.5, 2.0]),
)
def test_interval_tr_weights_matches_fine_grid(intervals, tr_s):
    onset = np.array([i[0] for i in intervals])
    offset = onset + np.array([i[1] for i in intervals])
    n_trs = 6
    fine_s = (np.arange(n_trs * 2000) + 0.5) * tr_s / 2000  # midpoints of a 2000-per-TR grid
    inside = (fine_s[:, None] >= onset) & (fine_s[:, None] < offset)
    reference = inside.reshape(n_trs, 2000, -1).sum(axis=1) * tr_s / 2000
    weights = interval_tr_weights(onset, offset, n_trs, tr_s).toarray()
    np.testing.assert_allclose(weights, reference, atol=2 * tr_s / 2000)


def test_overlap_mean_weighted_and_uncovered_zero():
    means, covered_s = overlap_mean([0.0, 1.0], [1.0, 1.5], np.array([[2.0], [8.0]]), n_trs=2, tr_s=1.5)
    np.testing.assert_allclose(means[:, 0], [(1.0 * 2 + 0.5 * 8) / 1.5, 0.0])
    np.testing.assert_allclose(covered_s, [1.5, 0.0])
    assert means.dtype == np.float32


def test_tr_accumulator_chunks_equal_whole(rng):
    onset = np.sort(rng.uniform(0, 9, 20))
    offset = onset + rng.uniform(0, 2, 20)
    values = rng.normal(size=(20, 3))
    accumulator = TRAccumulator(6, 1.5, 3, buffer_size=4)
    accumulator.add(onset[:7], offset[:7], values[:7])
    for i in range(7, 20):  # one interval at a time, as frames arrive
        accumulator.add(onset[i], offset[i], values[i])
    for chunked, whole in zip(accumulator.mean(), overlap_mean(onset, offset, values, 6, 1.5)):
        np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_tr_run_ids_and_bounds():
    runs = tr_run_ids(5, (2, 3))
    np.testing.assert_array_equal(runs, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(run_bounds_s(runs, 1.5), [[0.0, 3.0], [3.0, 7.5]])
    np.testing.assert_array_equal(tr_run_ids(3), [0, 0, 0])


def test_tr_run_ids_bad_sum_error():
    with pytest.raises(ValueError, match=r"run_n_trs=\(946, 1000\) must be positive and sum to n_trs=1976"):
        tr_run_ids(1976, (946, 1000))
