"""Decoded codes to exact-length WAVs."""

import numpy as np
import pytest
from scipy.io import wavfile

from giblet.audio import CodeStream, codes_by_tr
from giblet.audio.codes import tr_frame_spans
from giblet.audio.stage import load_stage_codec
from giblet.evaluation.waveforms import trs_waveform, write_wav
from tests.evaluation.conftest import RUN_N_TRS, TR_S, read_json


@pytest.fixture(scope="module")
def codec(pipeline):
    return load_stage_codec(pipeline["features_dir"] / "codec.json", device="cpu")


@pytest.fixture(scope="module")
def per_tr(pipeline):
    return codes_by_tr(CodeStream.load(pipeline["features_dir"] / "codes.npz"), TR_S, sum(RUN_N_TRS))


@pytest.mark.parametrize("run", [0, 1])
def test_trs_waveform_of_a_whole_run_lasts_exactly_the_run(codec, per_tr, run):
    codes, mask = per_tr
    first = sum(RUN_N_TRS[:run])
    rows = slice(first, first + RUN_N_TRS[run])  # 41 and 39 TRs: 4612.5 and 4387.5 frames
    wave = trs_waveform(codec, codes[rows], mask[rows], first_tr=first, tr_s=TR_S)
    assert len(wave) == RUN_N_TRS[run] * TR_S * 24_000 and wave.dtype == np.float32


def test_trs_waveform_cuts_the_half_frame_before_an_odd_tr(codec, per_tr):
    codes, mask = per_tr
    # TR 41 starts at 61.5 s, mid-frame: its first frame starts half a hop (160 samples) earlier, and the
    # frame straddling the end belongs to TR 43, so the last 160 samples are silence
    first = 41
    wave = trs_waveform(codec, codes[first : first + 2], mask[first : first + 2], first_tr=first, tr_s=TR_S)
    start, stop = tr_frame_spans(2, TR_S, 75.0, first_tr=first)[[0, -1], [0, 1]]
    stream = CodeStream(codes[first : first + 2].transpose(1, 0, 2)[:, mask[first : first + 2]], 75.0)
    decoded = codec.decode(stream)
    assert start * 320 == first * 36_000 - 160 and stop - start == 225
    np.testing.assert_array_equal(wave[:-160], decoded[160:])
    assert len(wave) == 72_000 and not wave[-160:].any()


def test_trs_waveform_matches_the_codec_on_the_frame_grid(codec, per_tr):
    codes, mask = per_tr
    wave = trs_waveform(codec, codes[:2], mask[:2], first_tr=0, tr_s=TR_S)
    stream = CodeStream(codes[:2].transpose(1, 0, 2)[:, mask[:2]], 75.0)
    np.testing.assert_array_equal(wave, codec.decode(stream))


def test_write_wav_has_exact_samples_and_a_sidecar(tmp_path, rng):
    wave = rng.uniform(-0.5, 0.5, 2400).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", wave, 24_000, codec_status="untrained — not meaningful", source="test")
    rate, read = wavfile.read(path)
    assert rate == 24_000 and np.array_equal(read, wave)
    meta = read_json(tmp_path / "x.json")
    assert meta["codec_status"] == "untrained — not meaningful" and meta["duration_s"] == 0.1
