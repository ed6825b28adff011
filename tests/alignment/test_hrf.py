import numpy as np
import pytest
from nilearn.glm.first_level import compute_regressor, glover_hrf, spm_hrf
from nilearn.glm.first_level.hemodynamic_models import orthogonalize

from giblet.alignment import HRF_MODELS, Hrf, convolve_hrf
from giblet.alignment.hrf import hrf_kernel

CANONICAL = ["glover", "spm"]


def _boxcar(onset_s, duration_s):
    """A unit boxcar as sample-and-hold features: 0 before, 1 during, 0 after."""
    return np.array([[0.0], [1.0], [0.0]]), np.array([onset_s - 10.0, onset_s, onset_s + duration_s])


def _nilearn_exact(onset_s, duration_s, model, frame_times, oversampling):
    """compute_regressor with its first-order grid error removed by Richardson extrapolation.

    nilearn places the boxcar and the kernel on a grid of TR / oversampling and its regressor
    lags the exact one by about half a grid step (error ~3e-3 at the default oversampling).
    That error is proportional to the step, so 2 * R(2m) - R(m) cancels it. The onset and
    offset sit just before points of both grids, so nilearn's rounding is the same at both.
    """
    condition = np.array([[onset_s], [duration_s], [1.0]])
    coarse, fine = (
        compute_regressor(condition, model, frame_times, oversampling=m, min_onset=0)[0]
        for m in (oversampling, 2 * oversampling)
    )
    return 2 * fine - coarse


@pytest.mark.parametrize("model", list(HRF_MODELS))
def test_hrf_kernel_unit_integral(model):
    dt = 0.05
    kernel = hrf_kernel(model, dt)
    assert kernel.shape == (640, model.count("+") + 1)
    assert kernel[:, 0].sum() * dt == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel[:, 1:].sum(axis=0) * dt, 0.0, atol=1e-12)


@pytest.mark.parametrize(("model", "nilearn_hrf"), [("glover", glover_hrf), ("spm", spm_hrf)])
def test_hrf_kernel_matches_nilearn_shape(model, nilearn_hrf):
    dt = 0.01
    ours = hrf_kernel(model, dt)[:, 0] * dt  # bin integrals, centred at (j + 0.5) * dt
    theirs = nilearn_hrf(t_r=dt, oversampling=1)  # point samples at linspace(0, 32) - dt
    times = np.linspace(0, 32, theirs.size) - dt
    at_bin_centres = np.interp((np.arange(ours.size) + 0.5) * dt, times, theirs)
    np.testing.assert_allclose(ours, at_bin_centres, atol=2e-3 * ours.max())


@pytest.mark.parametrize(("model", "peak_s"), [("glover", 5.0), ("spm", 5.0)])
def test_hrf_kernel_peak_time(model, peak_s):
    assert np.argmax(hrf_kernel(model, 0.01)[:, 0]) * 0.01 == pytest.approx(peak_s, abs=0.1)


def test_hrf_kernel_accepts_nilearn_spelling():
    np.testing.assert_array_equal(hrf_kernel("glover + derivative", 0.1), hrf_kernel("glover+derivative", 0.1))


def test_hrf_kernel_unknown_model_error():
    with pytest.raises(ValueError, match=r"model must be one of \[.*'glover'.*got 'gamma'"):
        hrf_kernel("gamma", 0.1)


@pytest.mark.parametrize("model", CANONICAL)
@pytest.mark.parametrize("tr", [0.8, 1.5, 2.0])
@pytest.mark.parametrize("duration_s", [0.1, 1.0, 7.3, 30.0])
def test_convolve_hrf_matches_nilearn_compute_regressor(model, tr, duration_s, rng):
    oversampling = 60  # 32 s is a whole number of grid steps for all three TRs
    step = tr / oversampling
    onset_s = step * np.round(rng.uniform(3.0, 3.0 + tr) / step) - 1e-7  # off the TR grid
    duration_s = step * np.round(duration_s / step)
    frame_times = np.arange(int((onset_s + duration_s + 34) / tr)) * tr
    ours = convolve_hrf(*_boxcar(onset_s, duration_s), frame_times, Hrf(model), dtype=np.float64)
    reference = _nilearn_exact(onset_s, duration_s, model, frame_times, oversampling)
    assert np.abs(ours - reference).max() <= 1e-4
    assert np.abs(ours - reference).max() <= 1e-3 * np.abs(ours).max()  # also relative to the response


@pytest.mark.parametrize("model", ["glover+derivative", "spm+derivative"])
def test_convolve_hrf_derivative_matches_nilearn(model):
    onset_s, duration_s, frame_times = 4.0 - 1e-7, 2.0, np.arange(30) * 1.5
    ours = orthogonalize(convolve_hrf(*_boxcar(onset_s, duration_s), frame_times, Hrf(model), dtype=np.float64))
    reference = _nilearn_exact(onset_s, duration_s, model.replace("+", " + "), frame_times, 60)
    assert np.abs(ours - reference).max() <= 1e-4


@pytest.mark.parametrize("model", CANONICAL)
def test_convolve_hrf_impulse_peaks_4_to_6_5_s_later(model):
    stimulus_s = 10.37
    frame_times = np.arange(0, 60, 0.01)
    impulse = np.array([[0.0], [100.0], [0.0]])  # unit area over 10 ms
    response = convolve_hrf(impulse, [0.0, stimulus_s, stimulus_s + 0.01], frame_times, Hrf(model))[:, 0]
    assert 4.0 <= frame_times[np.argmax(response)] - stimulus_s <= 6.5
    assert not response[frame_times <= stimulus_s].any()
    assert response.max() > 0.1


def test_convolve_hrf_impulse_at_tr_50_peaks_after_it():
    """Regression: the prototype trimmed its convolution so that an impulse at TR 50 peaked at TR 44."""
    tr = 1.5
    features = np.zeros((100, 1))
    features[50] = 1.0
    response = convolve_hrf(features, np.arange(100) * tr, np.arange(100) * tr)[:, 0]
    assert np.argmax(response) in (53, 54)
    assert not response[:51].any()


def test_convolve_hrf_constant_input_reaches_one():
    times = np.arange(0, 80, 0.5)
    response = convolve_hrf(np.ones((times.size, 1)), times, np.arange(0, 80, 2.0))[:, 0]
    np.testing.assert_allclose(response[np.arange(0, 80, 2.0) >= 32], 1.0, rtol=1e-6)


def test_convolve_hrf_kernel_length_is_hrf_duration():
    impulse, frame_times = np.array([[0.0], [100.0], [0.0]]), np.arange(0, 60, 0.5)
    response = convolve_hrf(impulse, [0.0, 10.0, 10.01], frame_times, Hrf(duration=16.0))[:, 0]
    assert response[frame_times < 26.0].any() and not response[frame_times >= 26.01].any()


def test_convolve_hrf_linear_and_superposes(rng):
    times = np.sort(rng.uniform(0, 60, 300))
    x, y = rng.standard_normal((2, 300, 3))
    frames = np.arange(40) * 1.5

    def conv(features):
        return convolve_hrf(features, times, frames, dtype=np.float64)

    np.testing.assert_allclose(conv(2.0 * x - 0.5 * y), 2.0 * conv(x) - 0.5 * conv(y), atol=1e-12)
    np.testing.assert_allclose(conv(x[:, [1]])[:, 0], conv(x)[:, 1], atol=1e-12)


def test_convolve_hrf_split_samples_give_same_output(rng):
    """Exactness: cutting a held sample in two (irregular times) changes nothing."""
    tr = 1.5
    times = np.arange(int(60 * 75)) / 75  # 112.5 samples per TR
    x = rng.standard_normal((times.size, 2))
    cuts = np.sort(rng.choice(times.size - 1, 200, replace=False))
    split_times = np.sort(np.concatenate([times, times[cuts] + rng.uniform(0.1, 0.9, cuts.size) / 75]))
    split_x = x[np.searchsorted(times, split_times, side="right") - 1]
    frames = np.arange(40) * tr
    np.testing.assert_allclose(
        convolve_hrf(split_x, split_times, frames, dtype=np.float64),
        convolve_hrf(x, times, frames, dtype=np.float64),
        atol=1e-12,
    )


def test_convolve_hrf_durations_equal_explicit_zero_samples(rng):
    onsets = np.array([2.0, 9.0, 20.0])
    lengths = np.array([3.0, 0.5, 4.0])
    values = rng.standard_normal((3, 2))
    frames = np.arange(40) * 1.5
    held = convolve_hrf(values, onsets, frames, durations=lengths, dtype=np.float64)
    with_gaps = np.insert(values, [1, 2, 3], 0.0, axis=0)  # a zero sample closes each segment
    times = np.sort(np.concatenate([onsets, onsets + lengths]))
    np.testing.assert_allclose(held, convolve_hrf(with_gaps, times, frames, dtype=np.float64), atol=1e-12)


def test_convolve_hrf_run_isolation():
    tr = 1.5
    times = np.arange(40) * tr
    runs = np.repeat([0, 1], 20)
    features = np.zeros((40, 1))
    features[19] = 1.0  # last sample of run 0
    frames = times + 3 * tr  # acquired 3 TRs after the matching stimulus: run 0 outlasts its stimulus
    response = convolve_hrf(features, times, frames, runs=(runs, runs))[:, 0]
    assert response[18:20].min() > 0.1
    assert not response[20:].any()


def test_convolve_hrf_slice_time_ref_samples_later(rng):
    times = np.arange(0, 60, 0.25)
    x = rng.standard_normal((times.size, 2))
    frames = np.arange(30) * 2.0
    np.testing.assert_allclose(
        convolve_hrf(x, times, frames, slice_time_ref=0.5, dtype=np.float64),
        convolve_hrf(x, times, frames + 1.0, dtype=np.float64),
        atol=1e-12,
    )


def test_convolve_hrf_float32_and_many_features(rng):
    times = np.arange(50) * 0.5
    x = rng.standard_normal((50, 100_000)).astype(np.float32)
    out = convolve_hrf(x, times, np.arange(15) * 2.0, Hrf("glover+derivative"))
    assert out.dtype == np.float32
    assert out.shape == (15, 200_000)
    for j in (0, 54_321, 99_999):
        one = convolve_hrf(x[:, [j]], times, np.arange(15) * 2.0, Hrf("glover+derivative"))
        np.testing.assert_allclose(out[:, [j, 100_000 + j]], one, rtol=1e-5, atol=1e-6)


def test_convolve_hrf_rejects_integer_codes():
    with pytest.raises(TypeError, match="embed them first"):
        convolve_hrf(np.zeros((10, 4), dtype=np.int16), np.arange(10.0), np.arange(5.0))


def test_convolve_hrf_rejects_nan():
    features = np.ones((10, 2))
    features[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 rows with NaN or inf .first: row 3.; fill them"):
        convolve_hrf(features, np.arange(10.0), np.arange(5.0))


def test_convolve_hrf_rejects_unsorted_times():
    with pytest.raises(ValueError, match=r"sample_times must increase strictly, but sample_times\[1\]=2.0"):
        convolve_hrf(np.ones((3, 1)), [0.0, 2.0, 1.0], np.arange(5.0))
