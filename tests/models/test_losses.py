import numpy as np
import pytest
import torch

from giblet.models import GibletAutoencoder
from giblet.models.losses import fmri_losses, reconstruction_losses, text_cosine, voxel_mse, voxel_neg_pearson
from tests.models.conftest import make_batch, tiny_config


def test_voxel_mse_ignores_invalid_trs():
    pred, target = torch.zeros(1, 4, 2), torch.ones(1, 4, 2)
    target[0, 3] = 50.0
    valid = torch.tensor([[True, True, True, False]])
    assert voxel_mse(pred, target, valid).item() == 1.0


def test_voxel_neg_pearson_matches_numpy(rng):
    pred, target = rng.standard_normal((2, 10, 3)), rng.standard_normal((2, 10, 3))
    valid = np.ones((2, 10), bool)
    valid[1, 7:] = False
    expected = np.mean([np.corrcoef(pred[valid][:, v], target[valid][:, v])[0, 1] for v in range(3)])
    got = voxel_neg_pearson(torch.tensor(pred), torch.tensor(target), torch.tensor(valid))
    assert got.item() == pytest.approx(-expected)
    perfect = voxel_neg_pearson(torch.tensor(pred), torch.tensor(3 * pred + 1), torch.tensor(valid))
    assert perfect.item() == pytest.approx(-1.0)


def test_text_cosine_values():
    valid = torch.tensor([[True, False]])
    text = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert text_cosine(text, torch.tensor([[[0.0, 3.0], [1.0, 0.0]]]), valid).item() == pytest.approx(1.0)
    assert text_cosine(text, torch.tensor([[[-2.0, 0.0], [1.0, 0.0]]]), valid).item() == pytest.approx(2.0)


def test_fmri_and_reconstruction_losses_cover_every_term():
    cfg = tiny_config()
    model = GibletAutoencoder(cfg).eval()
    batch = make_batch(cfg)
    voxels, predictions = model.autoencode(batch, "sub-01")
    fmri = fmri_losses(voxels, batch["bold/sub-01"], batch["tr_valid"])
    assert set(fmri) == {"mse", "neg_pearson"} and abs(fmri["neg_pearson"].item()) < 0.5
    rec = reconstruction_losses(predictions, batch, batch["tr_valid"])
    assert set(rec) == {"text"}  # sound and pictures are decoded on routes of their own, fitted in closed form
    assert rec["text"].item() == pytest.approx(text_cosine(predictions["text"], batch["text"], batch["tr_valid"]).item())
    without_text = {k: v for k, v in batch.items() if k != "text"}
    assert reconstruction_losses(predictions, without_text, batch["tr_valid"]) == {}
