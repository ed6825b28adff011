"""Surrogate nulls keep the prediction's autocorrelation, centre on chance and give exact p-values."""

import numpy as np
import pytest
from scipy.signal import lfilter

from giblet.evaluation.metrics import identification_ranks, pearson_columns, rank_accuracy
from giblet.evaluation.metrics import shifted_rank_accuracy
from giblet.evaluation.nulls import circular_shifts, permutation_test, phase_randomize, pooled_shift_test


def test_phase_randomize_keeps_mean_and_power_spectrum(rng):
    x = np.cumsum(rng.standard_normal((64, 3)), axis=0)  # autocorrelated columns
    surrogate = phase_randomize(x, rng)
    np.testing.assert_allclose(surrogate.mean(axis=0), x.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.fft.rfft(surrogate, axis=0)), np.abs(np.fft.rfft(x, axis=0)), rtol=1e-8,
                               atol=1e-8)
    assert np.abs(pearson_columns(surrogate, x)).max() < 0.99


def test_phase_randomize_shares_phases_across_columns(rng):
    x = rng.standard_normal((32, 1))
    surrogate = phase_randomize(np.hstack([x, 2 * x]), rng)
    np.testing.assert_allclose(surrogate[:, 1], 2 * surrogate[:, 0])


def test_circular_shifts_all_allowed_or_sampled(rng):
    assert circular_shifts(6, 100, rng, min_shift_trs=2).tolist() == [2, 3, 4]
    sampled = circular_shifts(1000, 50, rng)
    assert len(sampled) == 50 and len(set(sampled)) == 50 and sampled.min() >= 1


def test_circular_shifts_rejects_impossible_min_shift(rng):
    with pytest.raises(ValueError, match="min_shift_trs"):
        circular_shifts(4, 10, rng, min_shift_trs=3)


@pytest.mark.parametrize("method", ["phase", "circular"])
def test_permutation_null_centred_on_chance_for_shuffled_targets(rng, method):
    target = rng.standard_normal((120, 200))
    prediction = target[rng.permutation(120)]  # shuffled: no true relation
    result = permutation_test(lambda p: pearson_columns(p, target), prediction, method=method, n_permutations=200,
                              seed=0)
    assert np.abs(result.null_mean).max() < 0.05
    # p-values of 200 unrelated columns are about uniform: ~5 % below 0.05
    assert 0.01 < np.mean(result.p < 0.05) < 0.12


def test_permutation_p_is_minimal_for_a_perfect_prediction(rng):
    target = rng.standard_normal(50)
    result = permutation_test(lambda p: pearson_columns(p, target), target.copy(), n_permutations=99, seed=0)
    assert result.observed == pytest.approx(1.0)
    assert result.p == pytest.approx(1 / 100) and result.n_permutations == 99


def test_permutation_circular_shifts_dict_predictions_together(rng):
    true = rng.standard_normal((30, 4))

    def score(views):
        return rank_accuracy(identification_ranks(views["a"], true), 30).mean() + 0 * views["b"].sum()

    result = permutation_test(score, {"a": true.copy(), "b": np.zeros(30)}, method="circular", n_permutations=100)
    assert result.observed == 1.0 and result.n_permutations == 29
    assert result.null_mean == pytest.approx(0.5, abs=0.05)  # identification chance


def test_permutation_test_phase_rejects_dicts(rng):
    with pytest.raises(ValueError, match="circular"):
        permutation_test(lambda v: 0.0, {"a": np.zeros(5)}, method="phase")


def test_permutation_test_is_deterministic_for_a_seed(rng):
    target = rng.standard_normal(40)
    prediction = target + rng.standard_normal(40)

    def run(seed):
        return permutation_test(lambda p: pearson_columns(p, target), prediction, seed=seed, n_permutations=50)

    first, again, other = run(5), run(5), run(6)
    assert first.null_mean == again.null_mean and first.p == again.p
    assert first.null_mean != other.null_mean


def test_permutation_test_rejects_unknown_method():
    with pytest.raises(ValueError, match="must be one of"):
        permutation_test(lambda p: 0.0, np.zeros(5), method="shuffle")


def _blocks(rng, signal, n_blocks=4, n_trs=40):
    """(observed, every-shift null, TRs) of TR identification on AR(1) blocks (as BOLD) decoded with ``signal``."""
    observed, nulls = [], []
    for _ in range(n_blocks):
        true, noise = (lfilter([1.0], [1.0, -0.8], rng.standard_normal((n_trs, 6)), axis=0) for _ in range(2))
        decoded = signal * true + noise
        shifted = shifted_rank_accuracy(decoded - decoded.mean(0), true - true.mean(0), np.arange(n_trs))
        observed.append(shifted[0])
        nulls.append(shifted[1:])
    return np.array(observed), nulls, np.full(n_blocks, n_trs)


def test_pooled_shift_test_finds_a_weak_signal_spread_over_blocks(rng):
    result = pooled_shift_test(*_blocks(rng, signal=0.5), n_draws=2000)
    assert result.observed > result.null_mean + 3 * result.null_sd
    assert result.p == pytest.approx(1 / 2001)


def test_pooled_shift_test_is_calibrated_without_signal(rng):
    p = np.array([pooled_shift_test(*_blocks(rng, signal=0.0), n_draws=200, seed=i).p for i in range(400)])
    assert 0.02 <= (p < 0.05).mean() <= 0.08  # autocorrelated blocks, no signal: about 5 % false positives
    assert 0.4 < np.median(p) < 0.6


def test_pooled_shift_test_weights_the_blocks():
    result = pooled_shift_test(np.array([1.0, 0.0]), [np.zeros(3), np.zeros(3)], np.array([3, 1]), n_draws=10)
    assert result.observed == 0.75 and result.null_mean == 0.0 and result.p == pytest.approx(1 / 11)
