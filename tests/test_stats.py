"""Shared statistics: block-bootstrap resamples and Pearson r on each of them without copying a resample."""

import numpy as np
import pytest

from giblet.stats import block_bootstrap_pearson, block_resamples, pearson_columns


def test_block_resamples_are_runs_of_consecutive_trs_cut_to_length():
    draws = block_resamples(23, n_bootstrap=5, block_trs=5, seed=1)
    assert draws.shape == (5, 23) and draws.min() >= 0 and draws.max() <= 22
    assert (np.diff(draws.reshape(5, -1)[:, :20].reshape(5, 4, 5), axis=2) == 1).all()


@pytest.mark.parametrize("n_trs, block_trs", [(73, 10), (70, 10), (30, 1), (12, 12)])
def test_block_bootstrap_pearson_is_pearson_on_every_resample(rng, n_trs, block_trs):
    target = rng.standard_normal((n_trs, 20))
    predictions = 0.3 * target + rng.standard_normal((2, n_trs, 20))
    predictions[1, :, 3] = 0.5  # a model abstaining on a voxel scores 0 there
    target[:, 5] = 2.0  # a constant voxel has no r
    fast = block_bootstrap_pearson(predictions, target, n_bootstrap=30, block_trs=block_trs, seed=3)
    draws = block_resamples(n_trs, n_bootstrap=30, block_trs=block_trs, seed=3)
    slow = np.stack([[pearson_columns(p[d], target[d]) for p in predictions] for d in draws])
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert np.isnan(fast[:, :, 5]).all() and (fast[:, 1, 3] == 0).all()
