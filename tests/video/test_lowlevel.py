import numpy as np
import pytest

from giblet.video import frame_features
from giblet.video.lowlevel import FRAME_FEATURE_NAMES, LOWLEVEL_FEATURES, motion_energy


def _features(rgb):
    return dict(zip(LOWLEVEL_FEATURES, frame_features(np.asarray(rgb, np.uint8))[0]))


def test_frame_features_grey():
    f = _features(np.full((4, 6, 3), 51))
    assert f["luminance"] == pytest.approx(0.2, abs=1e-6)
    assert f["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert f["saturation"] == f["colorfulness"] == pytest.approx(0.0, abs=1e-6)


def test_frame_features_pure_red():
    f = _features(np.tile([255, 0, 0], (4, 6, 1)))
    assert f["luminance"] == pytest.approx(0.2126, abs=1e-5)
    assert (f["red"], f["green"], f["blue"], f["saturation"]) == pytest.approx((1, 0, 0, 1))
    assert f["colorfulness"] == pytest.approx(0.3 * np.hypot(1.0, 0.5), abs=1e-5)


def test_frame_features_checkerboard_contrast():
    board = (np.indices((4, 6)).sum(axis=0) % 2)[..., None].repeat(3, axis=2) * 255
    f = _features(board)
    assert (f["luminance"], f["contrast"]) == pytest.approx((0.5, 0.5), abs=1e-5)


def test_motion_energy_per_second():
    assert motion_energy(np.zeros((3, 3)), np.full((3, 3), 0.2), 0.5) == pytest.approx(0.4)


def test_frame_feature_names_end_with_motion():
    assert FRAME_FEATURE_NAMES == (*LOWLEVEL_FEATURES, "motion_energy")
