import numpy as np
import pytest

from giblet.audio import score_audio
from giblet.audio.metrics import (
    AUDIO_METRICS,
    log_mel_distance,
    multi_resolution_stft_distance,
    score_audio_pairs,
    si_sdr,
    stoi,
)
from tests.audio.conftest import make_soundtrack

SAMPLE_RATE_HZ = 16_000


@pytest.fixture(scope="module")
def speech():
    return make_soundtrack(3.0, SAMPLE_RATE_HZ).astype(np.float64)


def _with_noise(signal, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(len(signal))
    noise *= np.sqrt(np.sum((signal - signal.mean()) ** 2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return signal + noise


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_si_sdr_recovers_known_snr(speech, snr_db):
    assert si_sdr(speech, _with_noise(speech, snr_db)) == pytest.approx(snr_db, abs=0.2)


def test_si_sdr_is_scale_invariant(speech):
    noisy = _with_noise(speech, 10.0)
    assert si_sdr(speech, 3.0 * noisy) == pytest.approx(si_sdr(speech, noisy), abs=1e-9)
    assert si_sdr(speech, 0.5 * speech) > 80


@pytest.mark.parametrize("metric", [log_mel_distance, multi_resolution_stft_distance])
def test_spectral_distances_zero_for_identity_and_grow_with_noise(speech, metric):
    distances = [metric(speech, _with_noise(speech, snr_db), SAMPLE_RATE_HZ) for snr_db in (30.0, 10.0, 0.0)]
    assert metric(speech, speech, SAMPLE_RATE_HZ) == pytest.approx(0.0, abs=1e-9)
    assert 0 < distances[0] < distances[1] < distances[2]


def test_stoi_ordering(speech):
    assert stoi(speech, speech, SAMPLE_RATE_HZ) == pytest.approx(1.0, abs=1e-6)
    assert stoi(speech, _with_noise(speech, -5.0), SAMPLE_RATE_HZ) < stoi(speech, _with_noise(speech, 10.0),
                                                                           SAMPLE_RATE_HZ) < 1.0


def test_score_audio_reports_every_metric(speech):
    scores = score_audio(speech, _with_noise(speech, 10.0), SAMPLE_RATE_HZ)
    assert set(scores) == set(AUDIO_METRICS) == {"si_sdr_db", "log_mel_distance", "mrstft_distance", "stoi"}
    assert scores["si_sdr_db"] == pytest.approx(10.0, abs=0.2)


def test_metrics_reject_unequal_lengths(speech):
    for metric in AUDIO_METRICS.values():
        with pytest.raises(ValueError, match="must be mono waveforms of equal length"):
            metric(speech, speech[:-1], SAMPLE_RATE_HZ)


def test_score_audio_pairs_equals_score_audio_of_every_pair(speech):
    estimates = {"noisy": _with_noise(speech, 5.0), "quiet": 0.5 * _with_noise(speech, 20.0, seed=1)}
    references = {"clean": speech, "other": _with_noise(speech, 10.0, seed=2)}
    rows = score_audio_pairs(estimates, references, SAMPLE_RATE_HZ)
    assert [(r["estimate"], r["reference"]) for r in rows] == [(e, r) for e in estimates for r in references]
    for row in rows:
        assert {k: row[k] for k in AUDIO_METRICS} == score_audio(references[row["reference"]],
                                                                  estimates[row["estimate"]], SAMPLE_RATE_HZ)


def test_score_audio_pairs_identical_is_perfect(speech):
    (row,) = score_audio_pairs({"decoded": speech}, {"codec_resynthesis": speech}, SAMPLE_RATE_HZ)
    assert row["si_sdr_db"] > 60 and row["log_mel_distance"] == 0 and row["stoi"] == pytest.approx(1.0, abs=1e-3)


def test_score_audio_pairs_rejects_unequal_lengths(speech):
    with pytest.raises(ValueError, match="must be mono waveforms of equal length"):
        score_audio_pairs({"short": speech[:-1]}, {"clean": speech}, SAMPLE_RATE_HZ)
