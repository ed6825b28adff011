import numpy as np
import pytest
import soxr
from scipy.io import wavfile

from giblet.audio import load_audio
from giblet.audio.load import resample
from tests.audio.conftest import make_soundtrack, write_clip
from tests.conftest import SHARED_DATA

CLIPS = SHARED_DATA / "clips"
needs_clips = pytest.mark.skipif(not CLIPS.exists(), reason="needs ../shared/data/clips")


def _best_lag(reference, estimate, max_lag):
    """Lag (samples) of ``estimate`` behind ``reference`` maximising correlation, and that correlation."""
    n = len(reference) - 2 * max_lag
    corr = [np.corrcoef(reference[max_lag : max_lag + n], estimate[max_lag + lag : max_lag + lag + n])[0, 1]
            for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(corr)) - max_lag, max(corr)


@pytest.mark.parametrize(
    ("suffix", "codec", "video"),
    [("mp4", "aac", True), ("m4v", "aac", True), ("mkv", "aac", True), ("mov", "aac", True),
     ("wav", "pcm_s16le", False), ("flac", "flac", False), ("mp3", "libmp3lame", False)],
    ids=["mp4", "m4v", "mkv", "mov", "wav", "flac", "mp3"],
)
def test_load_audio_container_round_trip_keeps_time(tmp_path, suffix, codec, video):
    sound = make_soundtrack(3.0, 48_000)
    path = write_clip(tmp_path / f"clip.{suffix}", sound, 48_000, codec=codec, video=video)
    loaded = load_audio(path, 24_000)
    reference = resample(sound, 48_000, 24_000)
    lag, corr = _best_lag(reference, loaded, max_lag=48)
    assert lag == 0  # no encoder delay or priming left: within one 24 kHz sample
    assert corr > (0.999 if codec in ("pcm_s16le", "flac") else 0.85)
    assert len(loaded) - len(reference) in range(0, 1200)  # lossy codecs pad the last frame


def test_load_audio_stereo_downmix_is_channel_mean(tmp_path, rng):
    left, right = rng.uniform(-0.5, 0.5, (2, 4_800)).astype(np.float32)
    path = write_clip(tmp_path / "stereo.flac", np.stack([left, right]), 48_000, codec="flac", video=False)
    loaded = load_audio(path, 48_000)
    np.testing.assert_allclose(loaded, (left + right) / 2, atol=2**-15)  # FLAC stores 16-bit samples


def test_load_audio_start_offset_moves_onset(tmp_path):
    sample_rate_hz = 24_000
    t = np.arange(3 * sample_rate_hz) / sample_rate_hz
    tone = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    path = write_clip(tmp_path / "onset.mp4", tone, sample_rate_hz)
    for offset_s, onset_s in [(0.0, 1.0), (0.25, 0.75), (-0.5, 1.5)]:
        loaded = load_audio(path, sample_rate_hz, start_offset_s=offset_s)
        assert np.argmax(np.abs(loaded) > 0.05) / sample_rate_hz == pytest.approx(onset_s, abs=1e-3)


def test_load_audio_cuts_to_scan(tmp_path):
    path = write_clip(tmp_path / "clip.wav", make_soundtrack(4.0, 16_000), 16_000, codec="pcm_s16le", video=False)
    assert len(load_audio(path, 24_000, n_trs=2, tr_s=1.49)) == 71_520  # 2 x 1.49 s x 24 kHz


def test_load_audio_shorter_than_scan_says_by_how_much(tmp_path):
    path = write_clip(tmp_path / "short.wav", make_soundtrack(4.0, 16_000), 16_000, codec="pcm_s16le", video=False)
    with pytest.raises(ValueError, match=r"short\.wav.*2\.500 s \(2 TRs\) short.*start_offset_s"):
        load_audio(path, 24_000, start_offset_s=0.5, n_trs=4, tr_s=1.5)


def test_load_audio_no_audio_stream(tmp_path):
    import av

    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ValueError, match=r"silent_film\.mp4: has no audio stream"):
        load_audio(path, 24_000)


def test_load_audio_unreadable_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a movie at all" * 100)
    with pytest.raises(ValueError, match=r"broken\.mp4: cannot read"):
        load_audio(path, 24_000)


def test_load_audio_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="stimulus.path"):
        load_audio(tmp_path / "nowhere.mp4", 24_000)


@pytest.mark.real
@needs_clips
@pytest.mark.parametrize(
    ("name", "duration_s"),
    [("arctic_a0007.wav", 4.0), ("obama_speech.wav", 8.71), ("obama_speech.mp4", 8.7467),
     ("bigbuckbunny.mp4", 5.312), ("park.mp4", 0.5573)],
)
def test_load_audio_real_clips(name, duration_s):
    """16 kHz mono and 44.1 kHz stereo WAV, AAC at 24 kHz mono, 48 kHz 5.1 and 44.1 kHz stereo."""
    loaded = load_audio(CLIPS / name, 24_000)
    assert loaded.dtype == np.float32
    assert len(loaded) == pytest.approx(duration_s * 24_000, abs=2)
    assert 1e-3 < np.sqrt(np.mean(loaded**2)) < 0.5


@pytest.mark.real
@needs_clips
def test_load_audio_real_wav_matches_scipy_reference():
    native_hz, samples = wavfile.read(CLIPS / "obama_speech.wav")  # 44.1 kHz stereo int16
    reference = soxr.resample(samples.mean(axis=1) / 32768, native_hz, 24_000, quality="VHQ")
    loaded = load_audio(CLIPS / "obama_speech.wav", 24_000)
    np.testing.assert_allclose(loaded, reference, atol=1e-5)


@pytest.mark.real
@needs_clips
def test_load_audio_real_mp4_and_wav_agree():
    """The speech clip ships as AAC/MP4 and as WAV: same content, same clock."""
    from_mp4 = load_audio(CLIPS / "obama_speech.mp4", 24_000)
    from_wav = load_audio(CLIPS / "obama_speech.wav", 24_000)
    lag, corr = _best_lag(from_wav[:180_000], from_mp4[:180_000], max_lag=240)
    assert abs(lag) <= 24  # within 1 ms
    assert corr > 0.9
