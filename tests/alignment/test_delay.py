import numpy as np
import pytest

from giblet.alignment import delay


def test_delay_shifts_rows_delay_major():
    features = np.arange(12.0).reshape(6, 2)
    out = delay(features, (1, 3))
    np.testing.assert_array_equal(out[:, :2], np.vstack([np.zeros((1, 2)), features[:-1]]))
    np.testing.assert_array_equal(out[:, 2:], np.vstack([np.zeros((3, 2)), features[:-3]]))


def test_delay_zero_fills_run_starts():
    features = np.arange(1.0, 9.0)[:, None]
    out = delay(features, (1, 2), runs=np.repeat([0, 1], 4))
    np.testing.assert_array_equal(out[:, 0], [0, 1, 2, 3, 0, 5, 6, 7])
    np.testing.assert_array_equal(out[:, 1], [0, 0, 1, 2, 0, 0, 5, 6])


def test_delay_negative_leads():
    out = delay(np.arange(1.0, 5.0)[:, None], (-1, 0))
    np.testing.assert_array_equal(out, [[2, 1], [3, 2], [4, 3], [0, 4]])


def test_delay_keeps_float32(rng):
    assert delay(rng.standard_normal((5, 3)).astype(np.float32)).dtype == np.float32


def test_delay_rejects_duplicate_delays():
    with pytest.raises(ValueError, match=r"delays must be distinct whole numbers of TRs, got \[1, 1\]"):
        delay(np.ones((4, 1)), (1, 1))


def test_delay_rejects_interleaved_runs():
    with pytest.raises(ValueError, match="runs must be contiguous"):
        delay(np.ones((4, 1)), (1,), runs=[0, 1, 0, 1])


def test_delay_rejects_integer_codes():
    with pytest.raises(TypeError, match="embed them first"):
        delay(np.ones((4, 2), dtype=np.int16))
