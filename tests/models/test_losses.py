import math

import numpy as np
import pytest
import torch

from giblet.models import (
    AudioHead,
    CodebookEmbedding,
    GibletAutoencoder,
    audio_code_loss,
    code_cross_entropy,
    fmri_losses,
    reconstruction_losses,
    text_cosine,
    thumbnail_mse,
    voxel_mse,
    voxel_neg_pearson,
)
from tests.models.conftest import make_batch, tiny_config


def _audio_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 2, 5, generator=g)  # (B, T, W, n_codebooks, K)
    codes = torch.randint(5, (2, 3, 2, 4), generator=g)  # (B, T, n_codebooks, W)
    frame_valid = torch.rand(2, 3, 4, generator=g) > 0.4
    return logits, codes, frame_valid


def test_code_cross_entropy_matches_manual_mean():
    logits, codes, frame_valid = _audio_case()
    logp = logits.log_softmax(-1)
    terms = [-logp[b, t, w, c, codes[b, t, c, w]] for b, t, w in frame_valid.nonzero().tolist() for c in range(2)]
    assert code_cross_entropy(logits, codes, frame_valid).item() == pytest.approx(torch.stack(terms).mean().item())


def test_code_cross_entropy_ignores_invalid_frames():
    logits, codes, frame_valid = _audio_case()
    loss = code_cross_entropy(logits, codes, frame_valid)
    invalid = ~frame_valid
    other_logits = torch.where(invalid[..., None, None], 100 * torch.randn_like(logits), logits)
    other_codes = torch.where(invalid.unsqueeze(-2), -1, codes)  # PAD_CODE there
    assert code_cross_entropy(other_logits, other_codes, frame_valid).item() == pytest.approx(loss.item())
    changed = logits.clone()
    b, t, w = frame_valid.nonzero()[0].tolist()
    changed[b, t, w] += torch.arange(5.0)
    assert code_cross_entropy(changed, codes, frame_valid).item() != pytest.approx(loss.item())


def test_code_cross_entropy_nothing_valid_is_zero_with_graph():
    logits, codes, frame_valid = _audio_case()
    logits.requires_grad_(True)
    loss = code_cross_entropy(logits, codes, torch.zeros_like(frame_valid))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_audio_code_loss_equals_full_cross_entropy_and_subsamples():
    cfg = tiny_config()
    head = AudioHead(cfg, CodebookEmbedding(2, 16, 8))
    batch = make_batch(cfg)
    latent = head(torch.randn(2, 12, cfg.hidden))
    frame_valid = batch["audio_mask"] & (torch.arange(12) < 9)[:, None]  # last 3 TRs invalid
    full = code_cross_entropy(head.logits(latent), batch["audio_codes"], frame_valid)
    assert audio_code_loss(head, latent, batch["audio_codes"], frame_valid).item() == pytest.approx(full.item())
    sub = [audio_code_loss(head, latent, batch["audio_codes"], frame_valid, max_frames=10,
                           generator=torch.Generator().manual_seed(s)).item() for s in (0, 0, 1)]
    assert sub[0] == sub[1] != sub[2]


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


def test_thumbnail_mse_and_text_cosine_values():
    valid = torch.tensor([[True, False]])
    thumbs = torch.zeros(1, 2, 3, 4, 4)
    target = torch.full_like(thumbs, 0.5)
    target[0, 1] = 1.0
    assert thumbnail_mse(thumbs, target, valid).item() == pytest.approx(0.25)
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
    rec = reconstruction_losses(model, predictions, batch, batch["tr_valid"])
    assert set(rec) == {"audio", "video", "text"}
    assert rec["audio"].item() == pytest.approx(math.log(16), rel=0.2)  # chance at start
    without_thumbs = {k: v for k, v in batch.items() if k != "thumbs"}
    assert set(reconstruction_losses(model, predictions, without_thumbs, batch["tr_valid"])) == {"audio", "text"}
