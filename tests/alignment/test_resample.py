import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giblet.alignment import resample_to_trs

TRS = st.sampled_from([0.8, 1.49, 1.5, 2.0]) | st.floats(0.3, 3.0)
SAMPLES_PER_TR = st.sampled_from([112.5, 75 * 1.49, 1.0, 0.5]) | st.floats(0.2, 150.0)


def _regular_clock(start_s, tr, n_frames, samples_per_tr):
    """Samples that tile exactly ``n_frames`` windows: the last one ends where the last window ends."""
    n_samples = max(2, int(round(n_frames * samples_per_tr)))
    spacing_s = n_frames * tr / n_samples
    return start_s + np.arange(n_samples) * spacing_s, spacing_s, start_s + np.arange(n_frames) * tr


def _overlap_reference(values, starts, ends, frame_times, tr):
    """Time-weighted window means by brute force over every (frame, sample) pair."""
    overlap = np.clip(np.minimum(ends, frame_times[:, None] + tr) - np.maximum(starts, frame_times[:, None]), 0, None)
    with np.errstate(invalid="ignore"):  # uncovered frames become NaN
        return overlap @ values / overlap.sum(axis=1, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20), TRS, st.integers(1, 8), SAMPLES_PER_TR, st.floats(-5, 5))
def test_resample_to_trs_constant_exact(start_s, tr, n_frames, samples_per_tr, level):
    times, _, frames = _regular_clock(start_s, tr, n_frames, samples_per_tr)
    out = resample_to_trs(np.full((times.size, 2), level), times, frames, tr)
    np.testing.assert_allclose(out, level, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20), TRS, st.integers(1, 6), SAMPLES_PER_TR)
def test_resample_to_trs_counts_every_sample_once(start_s, tr, n_frames, samples_per_tr):
    times, spacing_s, frames = _regular_clock(start_s, tr, n_frames, samples_per_tr)
    weights = resample_to_trs(np.eye(times.size), times, frames, tr)  # column k: where sample k went
    np.testing.assert_allclose(weights.sum(axis=0) * tr, spacing_s, rtol=1e-9)  # nothing lost at TR edges
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-9)


def test_resample_to_trs_112_5_samples_per_tr_split_at_edge():
    times = np.arange(225) / 75  # 75 Hz over two 1.5 s TRs
    values = np.zeros((225, 1))
    values[112] = 1.0  # the frame at 1.4933 s straddles the TR edge at 1.5 s
    out = resample_to_trs(values, times, [0.0, 1.5], 1.5)[:, 0]
    np.testing.assert_allclose(out, [0.5 / 112.5, 0.5 / 112.5], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), TRS, st.integers(2, 40))
def test_resample_to_trs_irregular_matches_brute_force(seed, tr, n_samples):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 10 * tr, n_samples))
    values = rng.standard_normal((times.size, 3))
    ends = np.append(times[1:], times[-1] + np.median(np.diff(times)))
    frames = np.arange(-1, 12) * tr
    out = resample_to_trs(values, times, frames, tr)
    reference = _overlap_reference(values, times, ends, frames, tr)
    covered = ~np.isnan(reference).any(axis=1)
    np.testing.assert_allclose(out[covered], reference[covered], rtol=1e-9, atol=1e-12)
    assert not out[~covered].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), TRS, st.integers(2, 4))
def test_resample_to_trs_fractions_sum_to_one(seed, tr, n_categories):
    rng = np.random.default_rng(seed)
    times = np.unique(np.concatenate([[0.0], rng.uniform(0, 8 * tr, 20)]))
    labels = np.eye(n_categories)[rng.integers(0, n_categories, times.size)]
    ends = np.append(times[1:], times[-1] + np.median(np.diff(times)))
    frames = np.arange(8) * tr
    out = resample_to_trs(labels, times, frames, tr, how="fraction")
    covered = frames + tr <= ends[-1]
    np.testing.assert_allclose(out[covered].sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(out[covered], _overlap_reference(labels, times, ends, frames, tr)[covered], atol=1e-12)


def test_resample_to_trs_fraction_of_annotation_segments():
    # two segments: category 0 over [0, 2.5) s, category 1 over [2.5, 6) s; TR 2 s
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    out = resample_to_trs(labels, [0.0, 2.5, 4.0], [0.0, 2.0, 4.0], 2.0, how="fraction")
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.25, 0.75], [0.0, 1.0]], atol=1e-12)


def test_resample_to_trs_last_is_value_held_at_window_end():
    values = np.array([[1.0], [2.0], [3.0], [4.0]])
    out = resample_to_trs(values, [0.0, 0.5, 2.9, 3.2], [0.0, 1.0, 2.0, 3.0], 1.0, how="last")[:, 0]
    np.testing.assert_array_equal(out, [2.0, 2.0, 3.0, 4.0])


def test_resample_to_trs_keeps_runs_apart():
    times = np.arange(8) * 1.0
    runs = np.repeat([0, 1], 4)
    values = np.arange(8.0)[:, None]
    frames = np.arange(8) * 1.0 + 2.0  # windows 2 TRs late: run 0's last two run past its stimulus
    out = resample_to_trs(values, times, frames, 1.0, runs=(runs, runs))[:, 0]
    np.testing.assert_array_equal(out, [2.0, 3.0, 0.0, 0.0, 6.0, 7.0, 0.0, 0.0])


def test_resample_to_trs_float32_stays_float32(rng):
    features = rng.standard_normal((300, 4)).astype(np.float32)
    out = resample_to_trs(features, np.arange(300) / 75, np.arange(2) * 1.5, 1.5)
    assert out.dtype == np.float32


def test_resample_to_trs_rejects_integer_codes():
    codes = np.zeros((10, 8), dtype=np.int64)
    with pytest.raises(TypeError, match="integer dtype int64.*embed them first"):
        resample_to_trs(codes, np.arange(10.0), np.arange(3.0), 1.0)


def test_resample_to_trs_fraction_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match=r"how='fraction' needs category indicators .* \[-0.5, 1\]; use how='mean'"):
        resample_to_trs(np.array([[-0.5, 1.0], [1.0, 0.0]]), [0.0, 1.0], [0.0], 2.0, how="fraction")


def test_resample_to_trs_multi_hot_fractions_per_category():
    # two characters: A on screen throughout, B joins for the second half
    labels = np.array([[1.0, 0.0], [1.0, 1.0]])
    out = resample_to_trs(labels, [0.0, 1.0], [0.0], 2.0, how="fraction")
    np.testing.assert_allclose(out, [[1.0, 0.5]], atol=1e-12)


def test_resample_to_trs_durations_leave_gaps_empty():
    # segments [0, 1) and [3, 4) s: the TR [1.5, 3) between them holds nothing
    out = resample_to_trs(np.array([[2.0], [4.0]]), [0.0, 3.0], [0.0, 1.5, 3.0], 1.5, durations=[1.0, 1.0])[:, 0]
    np.testing.assert_allclose(out, [2.0, 0.0, 4.0], atol=1e-12)


def test_resample_to_trs_rejects_bad_durations():
    with pytest.raises(ValueError, match=r"durations must be positive finite seconds of shape \(2,\)"):
        resample_to_trs(np.ones((2, 1)), [0.0, 1.0], [0.0], 1.0, durations=[1.0, 0.0])


def test_resample_to_trs_unknown_how_error():
    with pytest.raises(ValueError, match=r"how must be one of \['fraction', 'last', 'mean'\], got 'linear'"):
        resample_to_trs(np.ones((2, 1)), [0.0, 1.0], [0.0], 1.0, how="linear")
