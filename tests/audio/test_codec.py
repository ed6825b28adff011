import copy
import socket

import huggingface_hub
import numpy as np
import pytest
import torch
from transformers import EncodecConfig, EncodecModel
from transformers.models.encodec.modeling_encodec import EncodecConvTranspose1d

from giblet.audio import codec as codec_module
from giblet.audio import UNTRAINED_STATUS, CodeStream, EncodecCodec
from giblet.audio.codec import CodecUnavailableError
from tests.audio.conftest import TINY_BANDWIDTH_KBPS, TINY_CONFIG, make_soundtrack

SAMPLE_RATE_HZ = 24_000
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _rechunked(codec, **kwargs):
    return EncodecCodec(codec.model, model_id=codec.model_id, bandwidth_kbps=codec.bandwidth_kbps,
                        status=codec.status, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def sound():
    return make_soundtrack(4.0, SAMPLE_RATE_HZ, seed=1)


def test_encode_matches_direct_model_encode(tiny_codec, sound):
    """Reference: one transformers EncodecModel.encode call on the same audio."""
    single = _rechunked(tiny_codec, chunk_s=60.0)
    direct = tiny_codec.model.encode(torch.from_numpy(sound)[None, None], bandwidth=TINY_BANDWIDTH_KBPS)
    stream = single.encode(sound, SAMPLE_RATE_HZ)
    assert stream.codes.shape == (3, 300)  # 3 codebooks at 1.5 kbps, 4 s x 75 Hz
    np.testing.assert_array_equal(stream.codes, direct.audio_codes[0, 0].numpy())
    assert stream.frame_rate_hz == 75.0
    assert stream.codec_status == UNTRAINED_STATUS


def test_encode_chunked_latents_match_single_pass(tiny_codec, sound):
    """Causal encoder: 0.5 s of left context makes chunk joins exact to float32 precision."""
    single = _rechunked(tiny_codec, chunk_s=60.0).latents(sound, SAMPLE_RATE_HZ)
    chunked = tiny_codec.latents(sound, SAMPLE_RATE_HZ)  # 2 s chunks, 0.5 s context
    no_context = _rechunked(tiny_codec, chunk_s=2.0, context_s=0.0, crossfade_s=0.0).latents(sound, SAMPLE_RATE_HZ)
    scale = np.abs(single).max()
    assert np.abs(chunked - single).max() < 1e-4 * scale
    assert np.abs(no_context - single).max() > 0.1 * scale  # the context is what makes joins exact


def test_encode_chunked_codes_match_single_pass(tiny_codec, sound):
    single = _rechunked(tiny_codec, chunk_s=60.0).encode(sound, SAMPLE_RATE_HZ)
    chunked = tiny_codec.encode(sound, SAMPLE_RATE_HZ)
    assert chunked.codes.shape == single.codes.shape
    # only near-ties at float precision may flip, mostly in the fine codebooks
    assert (chunked.codes != single.codes).mean() < 0.05
    assert (chunked.codes[0] != single.codes[0]).mean() < 0.02


def test_encode_resamples_other_rates(tiny_codec, sound):
    from giblet.audio.load import resample

    stream = tiny_codec.encode(resample(sound, SAMPLE_RATE_HZ, 16_000), 16_000)
    assert stream.n_frames == 300
    assert (stream.codes[0] == tiny_codec.encode(sound, SAMPLE_RATE_HZ).codes[0]).mean() > 0.5


@pytest.mark.parametrize("n_frames", [1, 7, 112, 150, 151, 300, 451])
def test_decode_exact_length(tiny_codec, n_frames, rng):
    stream = CodeStream(rng.integers(0, 64, (3, n_frames)), 75.0)
    waveform = tiny_codec.decode(stream)
    assert waveform.shape == (n_frames * 320,)
    assert waveform.dtype == np.float32


def test_decode_chunked_matches_single_pass(tiny_codec, sound):
    stream = tiny_codec.encode(sound, SAMPLE_RATE_HZ)
    single = _rechunked(tiny_codec, chunk_s=60.0).decode(stream)
    chunked = tiny_codec.decode(stream)  # 2 s chunks, 0.5 s context, 0.2 s crossfade
    snr_db = 10 * np.log10(np.sum(single**2) / np.sum((chunked - single) ** 2))
    assert snr_db > 60


@pytest.mark.parametrize(("config", "bandwidth_kbps"), [(TINY_CONFIG, TINY_BANDWIDTH_KBPS), ({}, 6.0)],
                         ids=["tiny", "24khz"])
def test_decoder_polyphase_convolutions_match_transformers(config, bandwidth_kbps):
    """Reference: transformers' own EncodecConvTranspose1d.forward and decoder, same seeded weights."""
    codec = EncodecCodec.untrained(EncodecConfig(**config), seed=3, bandwidth_kbps=bandwidth_kbps, device="cpu")
    torch.manual_seed(3)
    reference = EncodecModel(EncodecConfig(**config)).eval()
    generator = torch.Generator().manual_seed(0)
    layers = [m for m in codec.model.decoder.modules() if isinstance(m, EncodecConvTranspose1d)]
    assert len(layers) == 4 and all("forward" in vars(layer) for layer in layers)
    with torch.inference_mode():
        for layer in layers:
            x = torch.randn(2, layer.conv.in_channels, 40, generator=generator)
            expected = EncodecConvTranspose1d.forward(layer, x)
            assert layer(x).shape == expected.shape == (2, layer.conv.out_channels, 40 * layer.conv.stride[0])
            torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        latent = torch.randn(1, codec.model.config.hidden_size, 30, generator=generator)
        waveform, expected = codec.model.decoder(latent), reference.decoder(latent)
    assert waveform.shape == expected.shape == (1, 1, 30 * codec.hop_length)
    torch.testing.assert_close(waveform, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_codebook_vectors_sum_is_quantized_latent(tiny_codec, sound):
    stream = tiny_codec.encode(sound, SAMPLE_RATE_HZ)
    vectors = tiny_codec.codebook_vectors()
    assert vectors.shape == (3, 64, 16)
    summed = sum(vectors[q][stream.codes[q]] for q in range(3))
    reference = tiny_codec.model.quantizer.decode(torch.from_numpy(stream.codes.astype(np.int64))[:, None])
    np.testing.assert_allclose(summed, reference[0].T.numpy(), rtol=1e-5, atol=1e-7)


def test_fit_untrained_uses_many_codes(tiny_codec, sound):
    stream = tiny_codec.encode(sound, SAMPLE_RATE_HZ)
    distinct = [len(np.unique(codes)) for codes in stream.codes]
    assert min(distinct) >= 32  # of 64; an unfitted EncodecModel gives code 0 everywhere


def test_untrained_is_deterministic_for_a_seed(sound):
    config = EncodecConfig(**TINY_CONFIG)
    codecs = [EncodecCodec.untrained(config, seed=seed, bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
              for seed in (3, 3, 4)]
    latents = [codec.latents(sound[:24_000], SAMPLE_RATE_HZ) for codec in codecs]
    for codec, latent in zip(codecs, latents):
        codec.fit_untrained(latent, seed=0)
    np.testing.assert_array_equal(latents[0], latents[1])
    np.testing.assert_array_equal(codecs[0].codebook_vectors(), codecs[1].codebook_vectors())
    assert not np.allclose(latents[0], latents[2])


def test_untrained_refuses_to_encode_before_fit(sound):
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    assert not codec.codebook_vectors().any()
    with pytest.raises(RuntimeError, match="call fit_untrained first"):
        codec.encode(sound, SAMPLE_RATE_HZ)


def test_fit_untrained_returns_the_adapted_encoders_latents(sound):
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    raw = codec.latents(sound, SAMPLE_RATE_HZ)
    adapted = codec.fit_untrained(raw, seed=0)
    np.testing.assert_allclose(adapted.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(adapted.std(axis=0), 1, atol=1e-3)
    np.testing.assert_allclose(codec.latents(sound, SAMPLE_RATE_HZ), adapted, atol=1e-3)
    assert np.abs(raw.mean(axis=0)).max() > 10 * raw.std(axis=0).max()  # why adapting is needed


def test_fit_untrained_needs_enough_frames():
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    with pytest.raises(ValueError, match="at least codebook_size=64 frames.*got weight_norm and 10 frames"):
        codec.fit_untrained(np.zeros((10, 16), np.float32))


def test_fit_untrained_latents_that_do_not_vary_fail():
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    with pytest.raises(ValueError, match="latents do not vary over the stimulus.*give a stimulus with sound"):
        codec.fit_untrained(np.ones((100, 16), np.float32))


def test_fit_untrained_digital_silence_takes_one_code(rng):
    """Regression (issue 19): silent frames differ by float32 noise, which k-means split over many codes.

    Before the fix these latents used 14, 27 and 25 codes on silence (the full-size codec: 73 to 992 per
    codebook on 40 s of digital silence after 20 s of sound).
    """
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    bias = rng.normal(0, 0.1, 16)  # an untrained encoder's constant output, ~200x its variation
    sound = bias + rng.normal(0, 5e-4, (300, 16))
    silence = bias + rng.normal(0, 3e-8, (3000, 16))  # a few float32 steps
    latents = np.concatenate([sound, silence]).astype(np.float32)
    latents[:, 0] = bias[0] + rng.normal(0, 3e-8, len(latents))  # a channel that never varies: SD floored
    stream = codec.quantize(codec.fit_untrained(latents, seed=0))
    assert [len(np.unique(codes[300:])) for codes in stream.codes] == [1, 1, 1]
    assert min(len(np.unique(codes[:300])) for codes in stream.codes) >= 32


def test_default_bandwidth_gives_eight_codebooks():
    codec = EncodecCodec.untrained(seed=0, device="cpu")
    assert (codec.n_codebooks, codec.frame_rate_hz, codec.hop_length, codec.sample_rate_hz) == (8, 75.0, 320, 24_000)
    assert codec.describe()["codec_status"] == "untrained — waveforms are not perceptually meaningful"


def test_bad_bandwidth_names_config_key():
    with pytest.raises(ValueError, match=r"codec.bandwidth_kbps must be one of \[1.5, 3.0\].*got 6.0"):
        EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), bandwidth_kbps=6.0)


def test_from_pretrained_offline_names_config_keys(tmp_path):
    with pytest.raises(CodecUnavailableError, match=r"set codec.model to a local directory.*codec.fallback: untrained"):
        EncodecCodec.from_pretrained(str(tmp_path / "no_such_encodec"))


@pytest.mark.parametrize("listening", [True, False])
def test_hub_unreachable_loads_from_the_cache_only(monkeypatch, listening):
    """Offline, the hub client would retry for ~25 s before failing: a closed endpoint means cache only."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    if not listening:
        server.close()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    seen = {}

    def fake_from_pretrained(model_id, **kwargs):
        seen.update(kwargs)
        raise OSError("no weights here")

    monkeypatch.setattr(codec_module.EncodecModel, "from_pretrained", fake_from_pretrained)
    with pytest.raises(CodecUnavailableError, match="no weights here"):
        EncodecCodec.from_pretrained("facebook/encodec_24khz")
    server.close()
    assert seen == {"local_files_only": not listening}


def test_from_pretrained_local_directory(tmp_path, tiny_codec, sound):
    tiny_codec.model.save_pretrained(tmp_path / "encodec")
    local = EncodecCodec.from_pretrained(str(tmp_path / "encodec"), bandwidth_kbps=TINY_BANDWIDTH_KBPS, device="cpu")
    assert local.status == "pretrained"
    np.testing.assert_array_equal(local.codebook_vectors(), tiny_codec.codebook_vectors())
    with pytest.raises(ValueError, match="refusing to overwrite"):
        local.fit_untrained(np.zeros((100, 16), np.float32))


def test_codec_is_frozen(tiny_codec):
    assert not tiny_codec.model.training
    assert not any(p.requires_grad for p in tiny_codec.model.parameters())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])])
def test_encode_decode_on_device(tiny_codec, sound, device):
    codec = EncodecCodec(copy.deepcopy(tiny_codec.model), model_id="tiny", bandwidth_kbps=TINY_BANDWIDTH_KBPS,
                         status=tiny_codec.status, device=device)
    stream = codec.encode(sound, SAMPLE_RATE_HZ)
    assert codec.device.type == device
    assert (stream.codes == tiny_codec.encode(sound, SAMPLE_RATE_HZ).codes).mean() > 0.95
    assert codec.decode(stream).shape == (300 * 320,)
