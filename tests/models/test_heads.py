import numpy as np
import torch

from giblet.models import AudioHead, CodebookEmbedding, TextHead, ThumbnailHead
from tests.models.conftest import tiny_config


def _rvq(latent, vectors):
    """Hard residual vector quantization (the codec's quantizer): codes (n, n_codebooks)."""
    residual, codes = latent.copy(), []
    for table in vectors:
        k = ((residual[:, None, :] - table[None]) ** 2).sum(-1).argmin(1)
        codes.append(k)
        residual -= table[k]
    return np.stack(codes, 1)


def test_audio_head_shapes():
    cfg = tiny_config()
    head = AudioHead(cfg, CodebookEmbedding(2, 16, 8))
    latent = head(torch.randn(3, 5, cfg.hidden))
    assert latent.shape == (3, 5, 6, 8)  # (B, T, frames_per_tr, codebook_dim)
    assert head.logits(latent).shape == (3, 5, 6, 2, 16)  # (B, T, W, n_codebooks, codebook_size)
    assert head.logits(latent[0, 0]).shape == (6, 2, 16)


def test_audio_head_logits_follow_the_residual_quantizer(rng):
    vectors = np.stack([rng.standard_normal((16, 8)), 0.2 * rng.standard_normal((16, 8))]).astype(np.float32)
    head = AudioHead(tiny_config(), CodebookEmbedding(2, 16, 8, vectors))
    with torch.no_grad():
        head.log_scale.fill_(np.log(200.0))  # sharp: soft residuals become hard
    latent = rng.standard_normal((50, 8)).astype(np.float32)
    predicted = head.logits(torch.from_numpy(latent)).argmax(-1).numpy()
    np.testing.assert_array_equal(predicted, _rvq(latent, vectors))


def test_audio_head_initial_logits_near_chance():
    head = AudioHead(tiny_config(), CodebookEmbedding(2, 16, 8))
    logp = head.logits(head(torch.randn(2, 4, 16))).log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1).mean().item()
    assert 0.5 * np.log(16) < entropy <= np.log(16)


def test_thumbnail_head_shape_and_range():
    out = ThumbnailHead(tiny_config())(100 * torch.randn(2, 3, 16))
    assert out.shape == (2, 3, 3, 8, 12)
    assert out.min() >= 0 and out.max() <= 1


def test_text_head_shape():
    assert TextHead(tiny_config())(torch.randn(2, 3, 16)).shape == (2, 3, 7)
