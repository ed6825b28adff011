import numpy as np
import pytest
import torch

from giblet.models.towers import AudioTower, CodebookEmbedding, FeatureTower
from tests.models.conftest import make_batch, tiny_config


def test_codebook_embedding_copies_codec_vectors_and_zeroes_invalid(rng):
    vectors = rng.standard_normal((2, 16, 8)).astype(np.float32)
    emb = CodebookEmbedding(2, 16, 8, vectors)
    codes = torch.tensor([[[3, 5, -1], [0, 15, -1]]])  # (1, n_codebooks, W), PAD_CODE in the last slot
    mask = torch.tensor([[True, True, False]])
    out = emb(codes, mask)
    assert out.shape == (1, 3, 2, 8)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), vectors[0, 3])
    np.testing.assert_allclose(out[0, 1, 1].numpy(), vectors[1, 15])
    assert not out[0, 2].any()
    assert not any(p.requires_grad for p in emb.parameters())
    assert all(p.requires_grad for p in CodebookEmbedding(2, 16, 8, vectors, trainable=True).parameters())


def test_codebook_embedding_rejects_wrong_vector_shape():
    with pytest.raises(ValueError, match=r"expected \(2, 16, 8\)"):
        CodebookEmbedding(2, 16, 8, np.zeros((2, 16, 4), np.float32))


@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_audio_tower_ignores_invalid_frames(merge):
    cfg = tiny_config(audio_merge=merge)
    tower = AudioTower(cfg, CodebookEmbedding(2, 16, 8))
    batch = make_batch(cfg)
    codes, mask, descriptor = batch["audio_codes"], batch["audio_mask"], batch["audio_descriptor"]
    out = tower(codes, mask, descriptor)
    assert out.shape == (2, 12, cfg.hidden)
    other = torch.where(mask.unsqueeze(-2), codes, 7)  # change only the padded slots
    torch.testing.assert_close(tower(other, mask, descriptor), out)
    changed = codes.clone()
    changed[0, 3, 1, 0] = (codes[0, 3, 1, 0] + 1) % 16  # a valid frame of TR 3
    diff = (tower(changed, mask, descriptor) - out).abs().sum(-1)
    assert diff[0, 3] > 0 and diff.sum() == diff[0, 3]
    louder = descriptor.clone()
    louder[1, 6] += 1.0  # the log-mel of TR 6 moves TR 6 only
    diff = (tower(codes, mask, louder) - out).abs().sum(-1)
    assert diff[1, 6] > 0 and diff.sum() == diff[1, 6]


def test_audio_tower_tr_without_frames_is_zero():
    cfg = tiny_config()
    tower = AudioTower(cfg, CodebookEmbedding(2, 16, 8))
    batch = make_batch(cfg)
    mask = batch["audio_mask"].clone()
    mask[1, 4] = False
    out = tower(batch["audio_codes"], mask, batch["audio_descriptor"])
    assert not out[1, 4].any() and out[1, 5].abs().sum() > 0


def test_feature_tower_shape():
    assert FeatureTower(5, 16)(torch.zeros(2, 3, 5)).shape == (2, 3, 16)
