import json

import pytest

from giblet.models import AutoencoderConfig
from tests.models.conftest import tiny_config


def test_autoencoder_config_defaults_encodec_24khz():
    cfg = AutoencoderConfig(n_voxels={"sub-01": 450})
    assert (cfg.n_codebooks, cfg.codebook_size, cfg.codebook_dim) == (8, 1024, 128)
    assert cfg.frames_per_tr == 113  # ceil(1.5 s * 75 Hz), never 112
    assert cfg.encoder_delays_trs == (1, 2, 3, 4) and cfg.decoder_delays_trs == (1, 2, 3, 4)
    assert cfg.subjects == ("sub-01",)


def test_autoencoder_config_json_round_trip():
    cfg = tiny_config(readout_rank=4, encoder_delays_trs=(0, 2))
    restored = AutoencoderConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    assert restored.thumb_shape == (3, 8, 12)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"n_voxels": {}}, "n_voxels is empty"),
        ({"n_voxels": {"a.b": 3}}, "without '.'"),
        ({"modalities": ()}, "non-empty"),
        ({"modalities": ("audio", "smell")}, "must be one of .*'audio'.*got 'smell'"),
        ({"audio_merge": "mean"}, "audio_merge must be one of"),
        ({"encoder_delays_trs": (-1, 1)}, "encoder_delays_trs must be distinct TR delays >= 0"),
        ({"decoder_delays_trs": ()}, "decoder_delays_trs"),
        ({"thumb_shape": (3, 10)}, r"thumb_shape must be \(channels, height, width\)"),
        ({"readout_rank": 0}, "readout_rank"),
        ({"modality_dropout_p": 1.0}, r"modality_dropout_p must be in \[0, 1\)"),
        ({"hidden": 0}, "sizes must be >= 1"),
    ],
)
def test_autoencoder_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**overrides)
