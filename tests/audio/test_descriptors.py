import numpy as np
import pytest

from giblet.audio.descriptors import audio_descriptors, frame_tr_means, sounding_frames
from giblet.audio.descriptors import FLOOR_DB
from giblet.timing import ScanTiming

SR, HOP = 24_000, 320  # 75 Hz frames: a 1.5 s TR holds 112.5 of them


def _tone(freq_hz, n_samples, amplitude=0.5, sample_rate_hz=SR):
    return (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n_samples) / sample_rate_hz)).astype(np.float32)


@pytest.mark.parametrize("freq_hz", [150.0, 1000.0, 3000.0, 8000.0])
def test_audio_descriptors_tone_peaks_in_its_mel_band(freq_hz):
    tables = audio_descriptors(_tone(freq_hz, 3 * SR), SR, HOP, ScanTiming(1.5, (2,)))
    frames = tables["logmel_frames"]
    centres_hz = np.array(frames.meta["band_centres_hz"])
    assert frames.values.shape == (225, 32) and len(centres_hz) == 32
    loudest = frames.values[10:-10].mean(axis=0).argmax()
    assert abs(loudest - np.abs(centres_hz - freq_hz).argmin()) <= 1 and frames.names[loudest].startswith(
        f"mel{loudest:02d}_")
    # band powers add up to the mean square: a sine of amplitude 1/2 is 1/8, -9.03 dB re full scale
    envelope = tables["envelope_tr"]
    np.testing.assert_allclose(envelope.values[:, envelope.names.index("level_db")], 10 * np.log10(1 / 8), atol=0.05)


def test_audio_descriptors_onset_lands_in_its_frames_and_trs():
    """A tone from 1.5 s (mid-frame 112, TR 1's first frame) to 3.0 s (frame 225, TR 2's first frame)."""
    waveform = np.zeros(6 * SR, np.float32)
    waveform[round(1.5 * SR) : 3 * SR] = _tone(1000.0, round(1.5 * SR))
    tables = audio_descriptors(waveform, SR, HOP, ScanTiming(1.5, (4,)))
    band = tables["logmel_frames"].names.index("mel09_1035hz")
    frames = tables["logmel_frames"].values[:, band]
    steady = frames[150]
    assert steady > -15
    assert (frames[:111] == FLOOR_DB).all() and (frames[227:] == FLOOR_DB).all()  # windows never reach the tone
    assert frames[111] < steady - 10 and frames[226] < steady - 10  # leak from the centred window, -8 dB at most
    np.testing.assert_allclose(frames[113:224], steady, atol=0.1)
    logmel = tables["logmel_tr"].values[:, band]
    # TR 0 = frames 0..111, TR 1 = 112..224, TR 2 = 225..336: never 112 frames each
    np.testing.assert_allclose(logmel, [frames[0:112].mean(), frames[112:225].mean(), frames[225:337].mean(),
                                        frames[337:450].mean()], rtol=1e-5)
    assert logmel[1] > steady - 1 and logmel[0] < FLOOR_DB + 2 and logmel[2] < FLOOR_DB + 2
    assert logmel[3] == FLOOR_DB


def test_audio_descriptors_clicks_do_not_drift_over_1000_trs():
    """A click 0.1 s into every 10th TR (odd TRs: boundaries mid-frame) stays in its TR after 1000 TRs."""
    sample_rate_hz, hop = 2_400, 32  # 75 Hz frames at a tenth of the samples
    n_trs, click_trs = 1000, np.arange(5, 1000, 10)
    waveform = np.zeros(round(n_trs * 1.5 * sample_rate_hz), np.float32)
    starts = np.round((click_trs * 1.5 + 0.1) * sample_rate_hz).astype(int)
    for start in starts:
        waveform[start : start + 24] = _tone(300.0, 24, sample_rate_hz=sample_rate_hz)  # 10 ms
    tables = audio_descriptors(waveform, sample_rate_hz, hop, ScanTiming(1.5, (n_trs,)), n_mels=8, n_fft=128)
    level = tables["envelope_tr"].values[:, tables["envelope_tr"].names.index("level_db")]
    np.testing.assert_array_equal(np.flatnonzero(level > FLOOR_DB), click_trs)
    frames = tables["logmel_frames"].values
    first_heard = np.flatnonzero(np.diff((frames > FLOOR_DB).any(axis=1).astype(int)) == 1) + 1
    # the 128-sample window centred on a frame hears a click 2 frames before the frame it starts in
    np.testing.assert_array_equal(first_heard, starts // hop - 2)


def test_audio_descriptors_silence_reads_the_floor():
    tables = audio_descriptors(np.zeros(3 * SR, np.float32), SR, HOP, ScanTiming(1.5, (2,)), floor_db=-80.0)
    for table in tables.values():
        assert np.isfinite(table.values).all()
    assert (tables["logmel_frames"].values == -80.0).all() and (tables["logmel_tr"].values == -80.0).all()
    np.testing.assert_array_equal(tables["envelope_tr"].values, [[-80.0] * 5 + [0.0]] * 2)


def test_audio_descriptors_tables_carry_clock_runs_and_units():
    tables = audio_descriptors(np.zeros(3 * SR + 100, np.float32), SR, HOP, ScanTiming(1.5, (1, 1)),
                               frame_runs=np.repeat([0, 1], [112, 114]))
    frames, per_tr = tables["logmel_frames"], tables["logmel_tr"]
    assert frames.values.shape == (226, 32)  # ceil(72100 / 320)
    np.testing.assert_allclose(frames.times_s[[0, 1, 225]], [0.0, 1 / 75, 3.0])
    np.testing.assert_array_equal(per_tr.times_s, [0.0, 1.5])
    np.testing.assert_array_equal(per_tr.runs, [0, 1])
    assert per_tr.names == frames.names and frames.names[0] == "mel00_103hz"
    assert frames.meta["units"] == "dB re full scale" and frames.meta["frame_rate_hz"] == 75.0
    assert tables["envelope_tr"].names == ("band_0_250hz_db", "band_250_1000hz_db", "band_1000_4000hz_db",
                                           "band_4000_12000hz_db", "level_db", "level_sd_db")


def test_frame_tr_means_uses_frame_centres():
    values = np.arange(338, dtype=np.float32)[:, None]
    np.testing.assert_allclose(frame_tr_means(values, 1.5, 75.0, 3), [[55.5], [168.0], [280.5]])


def test_frame_tr_means_rejects_short_input():
    with pytest.raises(ValueError, match="3 TRs of 1.5 s need 337 frames at 75.0 Hz but values has 300"):
        frame_tr_means(np.zeros((300, 2)), 1.5, 75.0, 3)


def test_sounding_frames_are_those_within_50_db_of_the_loudest():
    bands = np.full((4, 32), FLOOR_DB)
    for frame, level_db in enumerate((-6.0, -45.0, -60.0, FLOOR_DB)):
        bands[frame, 0] = level_db  # one band carries the frame's level
    np.testing.assert_array_equal(sounding_frames(bands), [True, True, False, False])
    np.testing.assert_array_equal(sounding_frames(bands, below_peak_db=30.0), [True, False, False, False])
