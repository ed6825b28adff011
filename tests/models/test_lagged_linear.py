import numpy as np
import pytest
import torch

from giblet.models import LaggedLinear, temporal
from giblet.training.encoder_routes import trailing_means


def _fitted(rng, n_in=7, n_out=3, lags=(1, 2, 3), inputs=(1, 4, 6), outputs=(0, 1, 2)):
    lagged = LaggedLinear(n_in, n_out, lags)
    width = len(inputs) * len(lags)
    weights = {"inputs": np.array(inputs), "outputs": np.array(outputs), "mean": rng.standard_normal(width),
               "scale": rng.uniform(0.5, 2, width), "weight": rng.standard_normal((width, len(outputs))),
               "bias": rng.standard_normal(len(outputs))}
    lagged.set_weights(**weights)
    return lagged, weights


@pytest.mark.parametrize("lags", [(1, 2, 3), (-1, -3)])
def test_lagged_linear_is_the_ridge_formula_on_the_window(rng, lags):
    lagged, w = _fitted(rng, lags=lags)
    x = rng.standard_normal((2, 10, 7)).astype(np.float32)
    padded = np.concatenate([np.zeros((2, 3, 7)), x, np.zeros((2, 3, 7))], axis=1)  # outside the chunk: zeros
    window = np.concatenate([padded[:, 3 + lag : 13 + lag][..., w["inputs"]] for lag in lags], axis=-1)
    expected = (window - w["mean"]) / w["scale"] @ w["weight"] + w["bias"]
    np.testing.assert_allclose(lagged(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_lagged_linear_reads_its_inputs_at_its_lags_and_writes_only_its_outputs(rng):
    lagged, _ = _fitted(rng, n_out=6, outputs=(1, 3, 4))
    x = torch.randn(1, 10, 7)
    before = lagged(x)
    assert before[..., [0, 2, 5]].abs().max() == 0
    other = x.clone()
    other[:, :, [0, 2, 3, 5]] += 5.0  # columns not read
    torch.testing.assert_close(lagged(other), before)
    later = x.clone()
    later[:, 6, 4] += 1.0  # a read column at TR 6 moves TRs 3, 4, 5 (lags +1..+3) only
    changed = torch.nonzero((lagged(later) - before).abs().sum(-1)[0] > 1e-6).flatten().tolist()
    assert changed == [3, 4, 5]


def test_lagged_linear_is_zero_until_fitted_and_rejects_bad_weights():
    lagged = LaggedLinear(5, 2, (1, 2))
    torch.testing.assert_close(lagged(torch.randn(2, 4, 5)), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"needs shapes"):
        lagged.set_weights([0, 1], [0, 1], np.zeros(4), np.ones(4), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="indices outside"):
        lagged.set_weights([0, 5], [0, 1], np.zeros(4), np.ones(4), np.zeros((4, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="reads 5 columns"):
        lagged(torch.randn(1, 4, 6))


def test_lagged_linear_state_dict_resizes_on_load(rng):
    lagged, _ = _fitted(rng)
    empty = LaggedLinear(7, 3, (1, 2, 3))
    empty.load_state_dict(lagged.state_dict())
    assert empty.inputs.tolist() == [1, 4, 6]
    x = torch.randn(2, 6, 7)
    torch.testing.assert_close(empty(x), lagged(x))


def test_trailing_means_on_a_chunk_equal_those_of_the_whole_run(rng):
    x = rng.standard_normal((60, 3))
    runs = np.repeat([0, 1], 30)
    whole = trailing_means(x, runs, (4, 9))
    assert whole.shape == (60, 9)
    np.testing.assert_allclose(whole[10, 3:6], x[7:11].mean(axis=0))  # TR 10: the mean of TRs 7-10
    np.testing.assert_allclose(whole[31, 6:], x[30:32].mean(axis=0))  # a run's start: only its own TRs
    chunk = torch.from_numpy(x[30:]).unsqueeze(0)  # the second run as one chunk
    np.testing.assert_allclose(temporal.trailing_means(chunk, (4, 9))[0].numpy(), whole[30:], rtol=1e-10)


def test_lagged_linear_reads_the_trailing_means_of_its_inputs_at_every_lag(rng):
    lagged = LaggedLinear(4, 2, (-1, -2), context=(3,))
    inputs, width = np.array([0, 2]), 2 * 2 * 2  # 2 inputs and their 3-TR means, at 2 lags
    w = {"inputs": inputs, "outputs": np.array([0, 1]), "mean": rng.standard_normal(width),
         "scale": rng.uniform(0.5, 2, width), "weight": rng.standard_normal((width, 2)), "bias": rng.standard_normal(2)}
    lagged.set_weights(**w)
    x = rng.standard_normal((1, 12, 4))
    z = trailing_means(x[0][:, inputs], np.zeros(12, int), (3,))
    rows = np.arange(2, 12)
    window = np.concatenate([z[rows - 1], z[rows - 2]], axis=1)
    expected = (window - w["mean"]) / w["scale"] @ w["weight"] + w["bias"]
    got = lagged(torch.from_numpy(x).float()).numpy()[0, rows]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"context \(3,\)"):
        lagged.set_weights(inputs, [0, 1], np.zeros(4), np.ones(4), np.zeros((4, 2)), np.zeros(2))
