import numpy as np
import pytest
import torch

from giblet.models import WindowDecoder


def _fitted(rng, n_voxels=7, delays=(1, 2, 3), n_features=3):
    decoder = WindowDecoder(n_voxels, n_features, delays)
    selected = np.array([1, 4, 6])
    width = len(selected) * len(delays)
    weights = {"selected": selected, "mean": rng.standard_normal(width), "scale": rng.uniform(0.5, 2, width),
               "weight": rng.standard_normal((width, n_features)), "bias": rng.standard_normal(n_features)}
    decoder.set_weights(**weights)
    return decoder, weights


def test_window_decoder_is_the_ridge_formula_on_the_selected_voxels_after_each_tr(rng):
    decoder, w = _fitted(rng)
    bold = rng.standard_normal((2, 10, 7)).astype(np.float32)
    padded = np.concatenate([bold, np.zeros((2, 3, 7), np.float32)], axis=1)  # past the chunk: zeros
    window = np.concatenate([padded[:, d : d + 10][..., w["selected"]] for d in (1, 2, 3)], axis=-1)
    expected = (window - w["mean"]) / w["scale"] @ w["weight"] + w["bias"]
    got = decoder(torch.from_numpy(bold)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_window_decoder_reads_only_selected_voxels_at_later_trs(rng):
    decoder, _ = _fitted(rng)
    bold = torch.randn(1, 10, 7)
    before = decoder(bold)
    other = bold.clone()
    other[:, :, [0, 2, 3, 5]] += 5.0  # unselected voxels
    torch.testing.assert_close(decoder(other), before)
    later = bold.clone()
    later[:, 6, 4] += 1.0  # a selected voxel at TR 6 moves TRs 3, 4, 5 (delays 1..3) only
    changed = torch.nonzero((decoder(later) - before).abs().sum(-1)[0] > 1e-6).flatten().tolist()
    assert changed == [3, 4, 5]


def test_window_decoder_predicts_zero_until_fitted_and_rejects_bad_weights(rng):
    decoder = WindowDecoder(5, 2, (1, 2))
    assert decoder.n_selected == 0
    torch.testing.assert_close(decoder(torch.randn(2, 4, 5)), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"needs shapes"):
        decoder.set_weights([0, 1], np.zeros(4), np.ones(4), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="indices outside"):
        decoder.set_weights([0, 5], np.zeros(4), np.ones(4), np.zeros((4, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="reads 5 voxels"):
        decoder(torch.randn(1, 4, 6))


def test_window_decoder_state_dict_resizes_on_load(rng):
    decoder, _ = _fitted(rng)
    empty = WindowDecoder(7, 3, (1, 2, 3))
    empty.load_state_dict(decoder.state_dict())
    assert empty.n_selected == 3
    bold = torch.randn(2, 6, 7)
    torch.testing.assert_close(empty(bold), decoder(bold))
