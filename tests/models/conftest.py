"""Tiny autoencoder configs and random batches for the model tests."""

import pytest
import torch

from giblet.models import AutoencoderConfig

TINY = dict(
    n_voxels={"sub-01": 12, "sub-02": 9},
    n_codebooks=2,
    codebook_size=16,
    codebook_dim=8,
    frames_per_tr=6,
    n_audio_descriptor=4,
    n_video_features=5,
    n_text_features=7,
    thumb_shape=(3, 8, 12),
    n_thumb_components=3,
    hidden=16,
    n_layers=1,
    dropout=0.0,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; OpenMP threads spin badly on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides):
    return AutoencoderConfig(**{**TINY, **overrides})


def _random_map(lagged, g):
    """Every input to every output, random weights."""
    width = lagged.n_in * len(lagged.lags)
    lagged.set_weights(torch.arange(lagged.n_in), torch.arange(lagged.n_out), torch.zeros(width), torch.ones(width),
                       torch.randn(width, lagged.n_out, generator=g) / width**0.5, torch.zeros(lagged.n_out))


def fitted(model, seed=0):
    """``model`` with its closed-form routes set as if fitted (every voxel, random weights), a code model, a
    thumbnail basis, and readouts as if trained (they start at zero)."""
    config, g = model.config, torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for readout in model.readouts.values():
            for weight in readout.parameters():
                weight.copy_(0.1 * torch.randn(weight.shape, generator=g))
    if "audio" in config.modalities:
        for subject in config.n_voxels:
            _random_map(model.audio_decoders[subject], g)
        with torch.no_grad():
            model.code_model.weight.copy_(torch.randn(model.code_model.weight.shape, generator=g))
    for routes in model.encoder_routes.values():
        for subject in config.n_voxels:
            _random_map(routes[subject], g)
    if "text" in config.modalities:
        for subject in config.n_voxels:
            _random_map(model.text_decoders[subject], g)
    if "video" in config.modalities:
        for subject in config.n_voxels:
            _random_map(model.picture_decoders[subject], g)
        model.set_thumbnail_basis(torch.full(model.thumb_mean.shape, 0.5),
                                  0.1 * torch.randn(model.thumb_basis.shape, generator=g))
    return model


def make_batch(config, batch=2, n_trs=12, seed=0, device="cpu"):
    """Random inputs and targets; odd TRs hold one frame fewer (like 112/113 frames at 75 Hz)."""
    g = torch.Generator().manual_seed(seed)
    width = config.frames_per_tr
    mask = torch.ones(batch, n_trs, width, dtype=torch.bool)
    mask[:, 1::2, width - 1] = False
    codes = torch.randint(config.codebook_size, (batch, n_trs, config.n_codebooks, width), generator=g)
    codes = torch.where(mask.unsqueeze(-2), codes, -1)  # PAD_CODE at invalid slots
    out = {
        "audio_codes": codes,
        "audio_mask": mask,
        "audio_descriptor": torch.randn(batch, n_trs, config.n_audio_descriptor, generator=g),
        "video": torch.randn(batch, n_trs, config.n_video_features, generator=g),
        "text": torch.randn(batch, n_trs, config.n_text_features, generator=g),
        "thumbs": torch.rand(batch, n_trs, *config.thumb_shape, generator=g),
        "tr_valid": torch.ones(batch, n_trs, dtype=torch.bool),
    }
    for subject, n_voxels in config.n_voxels.items():
        out[f"bold/{subject}"] = torch.randn(batch, n_trs, n_voxels, generator=g)
    return {k: v.to(device) for k, v in out.items()}


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])]
