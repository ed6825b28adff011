import numpy as np
import pytest

from giblet.features import FeatureTable
from giblet.timing import ScanTiming
from giblet.video import VideoConfig, run_extract_video

# Variable frame rate: frame i shows grey level LEVELS[i] from VFR_TIMES_S[i] to the next onset.
VFR_TIMES_S = np.array([0.0, 0.1, 0.15, 0.9, 1.0, 1.6, 2.9, 3.0])
LEVELS = np.array([0, 200, 40, 240, 80, 160, 20, 220])


def _extract(path, out, timing, **video):
    written = run_extract_video(path, out, timing, VideoConfig(**video), progress=False)
    return {key: FeatureTable.load(p) for key, p in written.items()}


@pytest.fixture
def vfr_clip(tmp_path, write_clip, grey):
    return write_clip(tmp_path / "vfr.mp4", [grey(level) for level in LEVELS], VFR_TIMES_S, audio_s=3.0)


def test_run_extract_video_vfr_tr_means(vfr_clip, tmp_path):
    tables = _extract(vfr_clip, tmp_path / "out", ScanTiming(1.0, (3,)))
    frames, trs = tables["lowlevel_frames"], tables["lowlevel_tr"]
    np.testing.assert_allclose(frames.times_s, VFR_TIMES_S, atol=1e-3)
    np.testing.assert_allclose(frames.values[:, 0], LEVELS / 255, atol=0.01)
    # seconds each frame is on screen within each 1 s TR
    on_screen_s = np.array([
        [0.1, 0.05, 0.75, 0.1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0.6, 0.4, 0, 0],
        [0, 0, 0, 0, 0, 0.9, 0.1, 0],
    ])
    expected = on_screen_s @ (LEVELS / 255)
    np.testing.assert_allclose(trs.values[:, 0], expected, atol=0.01)
    naive_trs = np.floor(np.arange(8) / (8 / 3.033)).astype(int)  # frame index / mean frame rate
    naive = [LEVELS[naive_trs == t].mean() / 255 for t in range(3)]
    assert np.abs(expected - naive).max() > 0.1  # the test tells timestamps from frame counting
    np.testing.assert_array_equal(trs.times_s, [0.0, 1.0, 2.0])


def test_run_extract_video_start_offset(vfr_clip, tmp_path):
    tables = _extract(vfr_clip, tmp_path / "out", ScanTiming(1.0, (1, 1), start_offset_s=1.0))
    frames, trs = tables["lowlevel_frames"], tables["lowlevel_tr"]
    np.testing.assert_allclose(frames.times_s, VFR_TIMES_S - 1.0, atol=1e-3)
    np.testing.assert_allclose(trs.values[:, 0], [(0.6 * 80 + 0.4 * 160) / 255, (0.9 * 160 + 0.1 * 20) / 255], atol=0.01)
    np.testing.assert_array_equal(trs.runs, [0, 1])
    np.testing.assert_array_equal(frames.runs, [0, 0, 0, 0, 0, 0, 1, 1])  # frames before the scan join run 0


def test_run_extract_video_motion_energy(vfr_clip, tmp_path):
    motion = _extract(vfr_clip, tmp_path / "out", ScanTiming(1.0, (3,)))["lowlevel_frames"].values[:, -1]
    expected = np.abs(np.diff(LEVELS)) / 255 / np.diff(VFR_TIMES_S)
    np.testing.assert_allclose(motion[1:], expected, rtol=0.03)
    assert motion[0] == motion[1]


def test_run_extract_video_thumbnails(tmp_path, write_clip):
    image = np.zeros((36, 64, 3), np.uint8)
    image[:, :32, 0] = 255  # red left half, blue right half
    image[:, 32:, 2] = 255
    path = write_clip(tmp_path / "halves.mp4", [image, image[:, ::-1]], [0.0, 1.5], rate=1)
    thumbs = _extract(path, tmp_path / "out", ScanTiming(1.5, (2,)), thumb_size=(8, 4))["thumbnails_tr"]
    assert thumbs.meta["image_shape"] == [4, 8, 3]
    images = thumbs.values.reshape(-1, *thumbs.meta["image_shape"])
    np.testing.assert_allclose(images[0, :, :4], np.broadcast_to([1, 0, 0], (4, 4, 3)), atol=0.02)
    np.testing.assert_allclose(images[0, :, 4:], np.broadcast_to([0, 0, 1], (4, 4, 3)), atol=0.02)
    np.testing.assert_allclose(images[1], images[0, :, ::-1], atol=0.02)


def test_run_extract_video_short_video_error(vfr_clip, tmp_path):
    with pytest.raises(ValueError, match=r"vfr.mp4: 1 of 5 TRs \(first \[4\]\) show no frame; the movie ends at 3.03 s"):
        run_extract_video(vfr_clip, tmp_path / "out", ScanTiming(1.0, (5,)), VideoConfig(), progress=False)
    assert not (tmp_path / "out").exists()


def test_run_extract_video_damaged_movie_error(tmp_path, textured_clip, damage_packet):
    damage_packet(textured_clip, tmp_path / "bad.mp4", 12, b"\xff")
    with pytest.raises(ValueError, match=r"bad.mp4: video stream is corrupt at 0.80 s"):
        run_extract_video(tmp_path / "bad.mp4", tmp_path / "out", ScanTiming(1.0, (2,)), VideoConfig(), progress=False)
    assert not (tmp_path / "out").exists()


def test_run_extract_video_run_n_trs_error(vfr_clip, tmp_path):
    with pytest.raises(ValueError, match=r"run_n_trs=\(3, 0\) must be positive"):
        run_extract_video(vfr_clip, tmp_path / "out", ScanTiming(1.0, (3, 0)), VideoConfig())


def test_run_extract_video_deterministic(vfr_clip, tmp_path):
    first = _extract(vfr_clip, tmp_path / "a", ScanTiming(1.0, (3,)))
    second = _extract(vfr_clip, tmp_path / "b", ScanTiming(1.0, (3,)))
    for key in first:
        np.testing.assert_array_equal(first[key].values, second[key].values)


def test_run_extract_video_bad_thumb_size_error(vfr_clip, tmp_path):
    with pytest.raises(ValueError, match=r"thumb_size \(\(0, 36\)\) .* must be positive"):
        run_extract_video(vfr_clip, tmp_path / "out", ScanTiming(1.0, (3,)), VideoConfig(thumb_size=(0, 36)))


def test_run_extract_video_start_offset_per_run(vfr_clip, tmp_path):
    # run 0 shows stimulus [0, 1) s, run 1 shows [1.6, 2.6) s: the frame at 1.0 s is between the parts
    tables = _extract(vfr_clip, tmp_path / "out", ScanTiming(1.0, (1, 1), start_offset_s=(0.0, 1.6)))
    frames, trs = tables["lowlevel_frames"], tables["lowlevel_tr"]
    np.testing.assert_allclose(frames.times_s, [0.0, 0.1, 0.15, 0.9, 1.0], atol=1e-3)
    np.testing.assert_array_equal(frames.runs, [0, 0, 0, 0, 1])
    np.testing.assert_allclose(frames.values[:, 0], LEVELS[[0, 1, 2, 3, 5]] / 255, atol=0.01)
    np.testing.assert_allclose(trs.values[1, 0], 160 / 255, atol=0.01)  # only the clipped frame at 1.6 s
    assert frames.meta["start_offset_s"] == [0.0, 1.6]


@pytest.mark.parametrize(
    "offsets, message",
    [((0.0, 1.0, 2.0), "start_offset_s has 3 values but the scan has 2 runs"),
     ((0.0, 0.5), r"each run's part of the movie must start after the previous part ends \(ends at \[1.0\] s\)")],
)
def test_run_extract_video_start_offset_errors(vfr_clip, tmp_path, offsets, message):
    with pytest.raises(ValueError, match=message):
        run_extract_video(vfr_clip, tmp_path / "out", ScanTiming(1.0, (1, 1), start_offset_s=offsets), VideoConfig())
