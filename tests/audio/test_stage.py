import contextlib
import json

import numpy as np
import pytest
from scipy.io import wavfile
from transformers import EncodecConfig

from giblet.alignment import run_align
from giblet.audio import (
    UNTRAINED_STATUS,
    CodecConfig,
    CodeStream,
    EncodecCodec,
    codes_by_tr,
    run_decode_audio,
    run_extract_audio,
)
from giblet.audio.codec import CodecUnavailableError
from giblet.audio.codes import stream_from_trs
from giblet.audio.descriptors import frame_tr_means
from giblet.audio.stage import load_stage_codec
from giblet.features import FeatureTable
from giblet.outputs import UNTRAINED_CODEC_DIR
from giblet.timing import ScanTiming
from tests.audio.conftest import TINY_BANDWIDTH_KBPS, TINY_CONFIG, make_soundtrack, write_clip
from tests.conftest import REPO_ROOT

DEMO_MOVIE = REPO_ROOT / "data" / "demo" / "stimulus" / "movie.mp4"


@contextlib.contextmanager
def _tiny_fallback():
    """Make the untrained fallback build the tiny architecture (the real one is tested in the slow test)."""
    untrained = EncodecCodec.untrained.__func__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EncodecCodec, "untrained",
                      classmethod(lambda cls, config=None, **kw: untrained(cls, EncodecConfig(**TINY_CONFIG), **kw)))
        yield


@pytest.fixture
def tiny_fallback():
    with _tiny_fallback():
        yield


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("stimulus") / "movie.mp4", make_soundtrack(12.0, 48_000), 48_000)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, movie):
    with _tiny_fallback():
        return _extract(movie, tmp_path_factory.mktemp("extract") / "audio", run_n_trs=(3, 4), fallback="untrained")


def _extract(movie, out_dir, run_n_trs=(7,), **codec):
    config = CodecConfig(model=str(out_dir.parent / "no_local_copy"), bandwidth_kbps=TINY_BANDWIDTH_KBPS,
                         chunk_s=4.0, context_s=0.5, **codec)
    return run_extract_audio(movie, out_dir, ScanTiming(1.5, run_n_trs, start_offset_s=0.5), config, seed=0,
                             device="cpu")


def test_run_extract_audio_untrained_fallback_writes_stamped_outputs(extracted):
    paths = extracted
    info = json.loads(paths["codec"].read_text())
    assert info["codec_status"] == UNTRAINED_STATUS == "untrained — waveforms are not perceptually meaningful"
    assert (info["n_codebooks"], info["frame_rate_hz"], info["bandwidth_kbps"]) == (3, 75.0, 1.5)
    assert info["n_frames"] == 788  # ceil(7 TRs x 112.5)

    stream = CodeStream.load(paths["codes"])
    assert stream.codec_status == UNTRAINED_STATUS
    with np.load(paths["codes"]) as z:
        np.testing.assert_array_equal(z["tr_frame_spans"][:3], [[0, 112], [112, 225], [225, 337]])
        assert z["tr_frame_spans"][-1, 1] == 787  # frame 787's centre (10.5067 s) is past the scan

    frames = FeatureTable.load(paths["frames"])
    assert frames.values.shape == (788, 16)
    np.testing.assert_allclose(frames.times_s[[0, 1, 787]], [0.0, 1 / 75, 787 / 75])
    # run 2 starts at 4.5 s, mid-frame 337: a frame's run is the one its start lies in, as giblet align reads it
    assert frames.runs[337] == 0 and frames.runs[338] == 1
    pooled = FeatureTable.load(paths["pooled"])
    assert pooled.values.shape == (7, 4 * 16)
    np.testing.assert_array_equal(pooled.runs, [0, 0, 0, 1, 1, 1, 1])
    histograms = FeatureTable.load(paths["histograms"])
    assert histograms.values.shape == (7, 3 * 64) and histograms.kind == "labels"
    for table in (frames, pooled, histograms):
        assert table.meta["codec_status"] == UNTRAINED_STATUS
    with np.load(paths["codebooks"]) as z:
        assert z["vectors"].shape == (3, 64, 16)
        assert json.loads(str(z["meta"]))["codec_status"] == UNTRAINED_STATUS
    assert all(len(np.unique(codes)) >= 32 for codes in stream.codes)
    # the synthetic speech's syllable gaps are exact zeros (125 ms each); the quiet segments are room tone
    assert info["digital_silence_s"] == pytest.approx(0.93, abs=0.05)


def test_run_extract_audio_writes_descriptors_on_the_code_clock(extracted, tmp_path):
    paths = extracted
    frames = FeatureTable.load(paths["logmel_frames"])
    assert frames.values.shape == (788, 32) and np.isfinite(frames.values).all()
    np.testing.assert_array_equal(frames.times_s, FeatureTable.load(paths["frames"]).times_s)
    np.testing.assert_array_equal(frames.runs, FeatureTable.load(paths["frames"]).runs)
    assert frames.values.max() > -60 and frames.values.min() >= frames.meta["floor_db"]
    per_tr, envelope = FeatureTable.load(paths["logmel_tr"]), FeatureTable.load(paths["envelope_tr"])
    assert per_tr.values.shape == (7, 32) and envelope.values.shape == (7, 6)
    np.testing.assert_allclose(per_tr.values, frame_tr_means(frames.values, 1.5, 75.0, 7), rtol=1e-6)
    for table in (per_tr, envelope):
        np.testing.assert_array_equal(table.runs, [0, 0, 0, 1, 1, 1, 1])
        np.testing.assert_array_equal(table.times_s, np.arange(7) * 1.5)
    # both frame tables align; regression: frame 337 straddles the run boundary at 4.5 s and was labelled run 2
    # (its centre's), which giblet align rejected ("run labels disagree with its times_s")
    aligned = run_align([paths["frames"], paths["logmel_frames"]], tmp_path / "aligned", run_n_trs=[3, 4], tr_s=1.5)
    assert [FeatureTable.load(p).values.shape for p in aligned[::3]] == [(7, 16), (7, 32)]



def test_run_extract_audio_is_deterministic(tmp_path, movie, tiny_fallback, extracted):
    again = _extract(movie, tmp_path / "audio", run_n_trs=(3, 4), fallback="untrained")
    np.testing.assert_array_equal(CodeStream.load(again["codes"]).codes, CodeStream.load(extracted["codes"]).codes)
    np.testing.assert_array_equal(FeatureTable.load(again["pooled"]).values,
                                  FeatureTable.load(extracted["pooled"]).values)


def test_run_extract_audio_keeps_the_fallback_folder_and_its_weights(tmp_path, movie, extracted):
    """The workflow declares the fallback codec's folder whenever ``codec.fallback`` is set: it holds the untrained
    codec's weights when the fallback was used and nothing when the configured weights loaded."""
    assert (extracted["codec_weights"] / "config.json").exists()
    local = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), seed=0, bandwidth_kbps=TINY_BANDWIDTH_KBPS,
                                   device="cpu")
    local.model.save_pretrained(tmp_path / "local_codec")
    config = CodecConfig(model=str(tmp_path / "local_codec"), bandwidth_kbps=TINY_BANDWIDTH_KBPS, chunk_s=4.0,
                         context_s=0.5, fallback="untrained")
    paths = run_extract_audio(movie, tmp_path / "audio", ScanTiming(1.5, (7,), start_offset_s=0.5), config,
                              device="cpu")
    assert "codec_weights" not in paths and json.loads(paths["codec"].read_text())["weights_dir"] is None
    assert list((tmp_path / "audio" / UNTRAINED_CODEC_DIR).iterdir()) == []


def test_run_decode_audio_exact_length_and_reproducible(tmp_path, extracted):
    paths = extracted
    wav = run_decode_audio(paths["codes"], tmp_path / "resynth.wav", codec_json=paths["codec"], device="cpu")
    rate_hz, waveform = wavfile.read(wav)
    assert (rate_hz, len(waveform)) == (24_000, 788 * 320)
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert sidecar["codec_status"] == UNTRAINED_STATUS and sidecar["start_s"] == 0.0
    codec = load_stage_codec(paths["codec"], device="cpu")
    np.testing.assert_allclose(codec.decode(CodeStream.load(paths["codes"])), waveform, atol=1e-6)


def test_run_decode_audio_of_predicted_tr_block(tmp_path, extracted):
    """The evaluation path: per-TR codes of TRs 3..5 -> stream -> waveform on the stimulus clock."""
    paths = extracted
    stream = CodeStream.load(paths["codes"])
    codes, mask = codes_by_tr(stream, 1.5, 3, first_tr=3)
    block = stream_from_trs(codes, mask, tr_s=1.5, frame_rate_hz=75.0, first_tr=3, codec_id=stream.codec_id,
                            bandwidth_kbps=stream.bandwidth_kbps, codec_status=stream.codec_status)
    wav = run_decode_audio(block, tmp_path / "block.wav", codec_json=paths["codec"], device="cpu")
    assert len(wavfile.read(wav)[1]) == (675 - 337) * 320
    assert json.loads(wav.with_suffix(".json").read_text())["start_s"] == pytest.approx(337 / 75)


def test_run_extract_audio_without_fallback_fails_naming_keys(tmp_path, movie):
    with pytest.raises(CodecUnavailableError, match="codec.model.*codec.fallback: untrained"):
        _extract(movie, tmp_path / "audio")
    assert not (tmp_path / "audio").exists()


def test_run_extract_audio_digitally_silent_soundtrack_fails(tmp_path, tiny_fallback):
    """Regression (issue 19): an all-zero audio stream gave noise codes (1021 of 1024 in codebook 0) and exit 0."""
    silent = write_clip(tmp_path / "silent.mp4", np.zeros(12 * 48_000, np.float32), 48_000)
    with pytest.raises(ValueError, match=r"silent.mp4: audio stream is digitally silent \(peak \|sample\| 0 < "
                                         r"3.1e-05.*check the file's audio track.*drop 'audio' from modalities"):
        _extract(silent, tmp_path / "audio", fallback="untrained")
    assert not (tmp_path / "audio").exists()


def test_run_extract_audio_reports_digital_silence(tmp_path, tiny_fallback, caplog, rng):
    """A film's digitally silent stretch is fine: it is reported, and its frames share a code per codebook."""
    waveform = 0.1 * rng.standard_normal(12 * 48_000).astype(np.float32)
    waveform[4 * 48_000 : 9 * 48_000] = 0  # stimulus 4-9 s = scan 3.5-8.5 s
    movie = write_clip(tmp_path / "gap.mp4", waveform, 48_000)
    with caplog.at_level("INFO", logger="giblet.audio.stage"):
        paths = _extract(movie, tmp_path / "audio", fallback="untrained")
    assert json.loads(paths["codec"].read_text())["digital_silence_s"] == pytest.approx(5.0, abs=0.05)
    assert "5.0 s of the scan's 10.5 s are digitally silent" in caplog.text
    assert "longest stretch 5.0 s from 3.5 s" in caplog.text
    codes = CodeStream.load(paths["codes"]).codes[:, round(4.0 * 75) : round(8.4 * 75)]  # clear of AAC's pre-echo
    assert [len(np.unique(level)) for level in codes] == [1, 1, 1]


def test_run_extract_audio_rejects_unknown_fallback(tmp_path, movie):
    with pytest.raises(ValueError, match=r"codec.fallback must be null or one of \['untrained'\], got 'random'"):
        _extract(movie, tmp_path / "audio", fallback="random")


def test_run_extract_audio_rejects_bad_run_lengths(tmp_path, movie):
    with pytest.raises(ValueError, match=r"run_n_trs=\(7, 0\) must be positive"):
        _extract(movie, tmp_path / "audio", run_n_trs=(7, 0))


@pytest.mark.slow
def test_untrained_fallback_codes_are_informative(tmp_path):
    """Full-size fallback codec (EncodecConfig() defaults): >= 64 distinct codes in each of 8 codebooks."""
    if DEMO_MOVIE.exists():
        movie, n_trs = DEMO_MOVIE, 120  # first 180 s of the demo film
    else:
        movie, n_trs = write_clip(tmp_path / "film.mp4", make_soundtrack(120.0, 16_000, seed=3), 16_000), 80
    paths = run_extract_audio(movie, tmp_path / "audio", ScanTiming(1.5, (n_trs,)),
                              CodecConfig(model=str(tmp_path / "none"), fallback="untrained"), seed=0, device="cpu")
    stream = CodeStream.load(paths["codes"])
    assert stream.n_codebooks == 8
    distinct = [len(np.unique(codes)) for codes in stream.codes]
    assert min(distinct) >= 64, distinct
    assert json.loads(paths["codec"].read_text())["codec_status"] == UNTRAINED_STATUS
