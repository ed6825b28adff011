import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giblet.audio import CodeStream, codes_by_tr
from giblet.audio.codes import PAD_CODE, frame_trs, stream_from_trs, tr_frame_spans

TRS_S = [0.8, 1.49, 1.5, 2.0]
FRAME_RATES_HZ = [50.0, 75.0, 150.0]


def _stream(rng, n_frames, frame_rate_hz=75.0, n_codebooks=8, first_frame=0):
    codes = rng.integers(0, 1024, (n_codebooks, n_frames))
    return CodeStream(codes, frame_rate_hz, "test", 6.0, first_frame=first_frame)


def test_tr_frame_spans_sherlock_has_no_drift():
    """Regression: the prototype took 112 frames per 1.5 s TR and drifted ~6 s over 23 min."""
    spans = tr_frame_spans(1976, 1.5, 75.0)
    counts = spans[:, 1] - spans[:, 0]
    np.testing.assert_array_equal(counts[:4], [112, 113, 112, 113])
    assert spans[-1, 1] == 222_300  # 1976 TRs x 112.5 frames, exactly
    np.testing.assert_array_equal(spans[1:, 0], spans[:-1, 1])
    assert spans[946, 0] == 106_425  # run 2 starts at 946 x 112.5 = 106425 frames (1419 s)


@pytest.mark.parametrize("tr_s", TRS_S)
@pytest.mark.parametrize("frame_rate_hz", FRAME_RATES_HZ)
def test_tr_frame_spans_match_frame_centres(tr_s, frame_rate_hz):
    spans = tr_frame_spans(40, tr_s, frame_rate_hz)
    frames = np.arange(spans[-1, 1])
    centres_s = (frames + 0.5) / frame_rate_hz
    # float reference away from ties (ties are tested exactly below)
    clear = np.abs(centres_s / tr_s - np.round(centres_s / tr_s)) > 1e-9
    expected = np.floor(centres_s / tr_s).astype(int)
    owner = np.repeat(np.arange(40), spans[:, 1] - spans[:, 0])
    np.testing.assert_array_equal(owner[clear], expected[clear])
    np.testing.assert_array_equal(frame_trs(frames, tr_s, frame_rate_hz), owner)


def test_frame_trs_centre_on_boundary_goes_to_later_tr():
    # frame 112 spans [1.4933, 1.5067) s; its centre is exactly 1.5 s, the start of TR 1
    np.testing.assert_array_equal(frame_trs([111, 112, 224, 225], 1.5, 75.0), [0, 1, 1, 2])


@settings(max_examples=60, deadline=None)
@given(
    tr_s=st.sampled_from(TRS_S),
    frame_rate_hz=st.sampled_from(FRAME_RATES_HZ),
    n_trs=st.integers(1, 30),
    first_tr=st.integers(0, 2_000),
    seed=st.integers(0, 2**16),
)
def test_codes_by_tr_round_trip_exact(tr_s, frame_rate_hz, n_trs, first_tr, seed):
    rng = np.random.default_rng(seed)
    spans = tr_frame_spans(n_trs, tr_s, frame_rate_hz, first_tr)
    stream = _stream(rng, spans[-1, 1] - spans[0, 0], frame_rate_hz, n_codebooks=4, first_frame=int(spans[0, 0]))
    codes, mask = codes_by_tr(stream, tr_s, n_trs, first_tr)
    assert codes.shape == (n_trs, 4, int(np.ceil(tr_s * frame_rate_hz - 1e-9)))
    back = stream_from_trs(codes, mask, tr_s=tr_s, frame_rate_hz=frame_rate_hz, first_tr=first_tr,
                           codec_id="test", bandwidth_kbps=6.0)
    assert back.first_frame == stream.first_frame
    np.testing.assert_array_equal(back.codes, stream.codes)
    assert (codes[~np.broadcast_to(mask[:, None], codes.shape)] == PAD_CODE).all()


def test_codes_by_tr_blocks_hold_the_right_frames(rng):
    stream = _stream(rng, 500)
    codes, mask = codes_by_tr(stream, 1.5, 4)
    assert codes.shape == (4, 8, 113)
    np.testing.assert_array_equal(mask.sum(axis=1), [112, 113, 112, 113])
    np.testing.assert_array_equal(codes[1, :, :113], stream.codes[:, 112:225])
    np.testing.assert_array_equal(codes[2, :, :112], stream.codes[:, 225:337])
    assert (codes[2, :, 112] == PAD_CODE).all()


def test_codes_by_tr_subset_of_a_longer_stream(rng):
    stream = _stream(rng, 1_000)
    codes, mask = codes_by_tr(stream, 1.5, 2, first_tr=3)  # frames 337..561
    np.testing.assert_array_equal(codes[0, :, :113], stream.codes[:, 337:450])
    back = stream_from_trs(codes, mask, tr_s=1.5, frame_rate_hz=75.0, first_tr=3)
    assert back.first_frame == 337
    assert back.times_s[0] == pytest.approx(337 / 75)
    np.testing.assert_array_equal(back.codes, stream.codes[:, 337:562])


def test_codes_by_tr_stream_too_short(rng):
    with pytest.raises(ValueError, match=r"need frames 0\.\.449 but the stream holds frames 0\.\.399"):
        codes_by_tr(_stream(rng, 400), 1.5, 4)


def test_stream_from_trs_rejects_foreign_mask(rng):
    codes, mask = codes_by_tr(_stream(rng, 500), 1.5, 4)
    with pytest.raises(ValueError, match="pass codes_by_tr's own mask"):
        stream_from_trs(codes, np.ones_like(mask), tr_s=1.5, frame_rate_hz=75.0)
    with pytest.raises(ValueError, match="pass codes_by_tr's own mask"):
        stream_from_trs(codes, mask, tr_s=1.5, frame_rate_hz=75.0, first_tr=1)  # TR 1 has 113 frames, not 112


def test_code_stream_rejects_float_codes():
    with pytest.raises(ValueError, match="never averaged or interpolated"):
        CodeStream(np.full((8, 10), 3.5), 75.0)


def test_code_stream_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"range \[-1, 3\]"):
        CodeStream(np.array([[0, 3, -1]]), 75.0)


def test_code_stream_save_load_round_trip(tmp_path, rng):
    stream = CodeStream(rng.integers(0, 1024, (8, 300)), 75.0, "facebook/encodec_24khz", 6.0, "pretrained", 12)
    stream.save(tmp_path / "codes.npz", tr_s=np.asarray(1.5))
    loaded = CodeStream.load(tmp_path / "codes.npz")
    assert loaded.codes.dtype == np.int16
    np.testing.assert_array_equal(loaded.codes, stream.codes)
    assert (loaded.frame_rate_hz, loaded.codec_id, loaded.bandwidth_kbps, loaded.first_frame) == (
        75.0, "facebook/encodec_24khz", 6.0, 12)
    assert loaded.duration_s == 4.0
