import av
import numpy as np
import pytest
from scipy.io import wavfile

from giblet.video import iter_frames

VFR_TIMES_S = [0.0, 0.1, 0.15, 0.9, 1.0, 1.6, 2.9, 3.0]


def test_iter_frames_vfr_timestamps(tmp_path, write_clip, grey):
    path = write_clip(tmp_path / "vfr.mp4", [grey(30 * i) for i in range(8)], VFR_TIMES_S, audio_s=3.0)
    frames = list(iter_frames(path, progress=False))
    onsets = [f.onset_s for f in frames]
    offsets = [f.offset_s for f in frames]
    np.testing.assert_allclose(onsets, VFR_TIMES_S, atol=1e-3)
    np.testing.assert_allclose(offsets[:-1], VFR_TIMES_S[1:], atol=1e-3)
    assert offsets[-1] == pytest.approx(3.0 + 1 / 30, abs=2e-3)  # last frame lasts one frame at the stream rate
    levels = [f.frame.to_ndarray(format="rgb24").mean() for f in frames]
    np.testing.assert_allclose(levels, 30 * np.arange(8), atol=2)


def test_iter_frames_missing_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4: stimulus video not found"):
        next(iter_frames(tmp_path / "nope.mp4"))


def test_iter_frames_audio_only_error(tmp_path):
    path = tmp_path / "sound.wav"
    wavfile.write(path, 16000, np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="sound.wav: no video stream"):
        next(iter_frames(path))


def test_iter_frames_clean_clip_matches_plain_decode(textured_clip):
    frames = list(iter_frames(textured_clip, progress=False))
    with av.open(str(textured_clip)) as container:
        plain = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == len(plain) == 30
    np.testing.assert_allclose([f.onset_s for f in frames], np.arange(30) / 15, atol=1e-3)
    for timed, reference in zip(frames, plain):
        np.testing.assert_array_equal(timed.frame.to_ndarray(format="rgb24"), reference)


@pytest.mark.parametrize("fill, where", [(b"\x00", r"after 0\.73 s \(.*Invalid data"),
                                         (b"\xff", r"at 0\.80 s \(the decoder concealed errors")],
                         ids=["zeros-rejected", "ff-concealed"])
def test_iter_frames_damaged_packet_error(tmp_path, textured_clip, damage_packet, fill, where):
    """Regression (issue 19): FFmpeg concealed damaged video packets; features changed with no warning.

    Half of the 0.8 s frame's packet is overwritten: zeros (a hole in a download) the decoder rejects, so
    the error follows the last good frame (0.73 s); 0xFF bytes it conceals, flagging the frame corrupt.
    """
    assert damage_packet(textured_clip, tmp_path / "bad.mp4", 12, fill) == pytest.approx(0.8)
    with pytest.raises(ValueError, match=rf"bad.mp4: video stream is corrupt {where}.*re-download it"):
        list(iter_frames(tmp_path / "bad.mp4", progress=False))
