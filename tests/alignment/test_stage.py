import numpy as np
import pytest
from scipy.io import loadmat

from giblet.alignment import delay, run_align, scan_frame_times
from giblet.features import FeatureTable
from tests.conftest import SHARED_DATA

SHERLOCK = SHARED_DATA / "sherlock"
TR_S = 1.5


def _write(path, values, times_s, names=None, kind="continuous", runs=None):
    names = names or tuple(f"f{j}" for j in range(values.shape[1]))
    return FeatureTable(np.asarray(values, dtype=np.float32), np.asarray(times_s, float), names, kind, runs).save(path)


def _impulse_table(path, n_trs, at_s):
    times = np.arange(int(n_trs * TR_S * 75)) / 75  # 75 Hz codec-like frames
    values = np.zeros((times.size, 1))
    values[np.searchsorted(times, at_s)] = 75.0  # unit area
    return _write(path, values, times)


def test_scan_frame_times_sherlock_preshift():
    frame_times, frame_runs = scan_frame_times([946, 1030], TR_S, preshift_trs=3)
    assert frame_times[27] == 30 * TR_S  # the volume recorded at TR 30 is stored at TR 27
    assert frame_times.shape == (1976,)
    np.testing.assert_array_equal(np.bincount(frame_runs), [946, 1030])


def test_run_align_writes_three_tables(tmp_path, rng):
    times = np.arange(int(50 * TR_S * 75)) / 75
    features = _write(tmp_path / "codec.npz", rng.standard_normal((times.size, 2)), times, ("e0", "e1"))
    scenes = np.eye(3)[[0, 1, 2, 1]]
    labels = _write(tmp_path / "scene.npz", scenes, [0.0, 20.0, 40.0, 60.0], ("a", "b", "c"), "labels")
    written = run_align([features, labels], tmp_path / "out", run_n_trs=[20, 30], tr_s=TR_S,
                        hrf_model="spm+derivative", delays_trs=(1, 2), preshift_trs=3)
    assert [p.name for p in written] == ["codec_hrf.npz", "codec_tr.npz", "codec_fir.npz",
                                         "scene_hrf.npz", "scene_tr.npz", "scene_fir.npz"]
    hrf, tr, fir = (FeatureTable.load(p) for p in written[:3])
    assert hrf.names == ("e0", "e1", "e0_derivative", "e1_derivative")
    assert fir.names == ("e0_delay1", "e1_delay1", "e0_delay2", "e1_delay2")
    for table in (hrf, tr, fir):
        assert table.values.shape[0] == 50
        np.testing.assert_array_equal(table.times_s, (np.arange(50) + 3) * TR_S)
        np.testing.assert_array_equal(table.runs, np.repeat([0, 1], [20, 30]))
        assert table.meta["preshift_trs"] == 3 and table.meta["source"] == str(features)
    assert hrf.meta["hrf_model"] == "spm+derivative" and fir.meta["delays_trs"] == [1, 2]
    scene_tr = FeatureTable.load(written[4])
    assert scene_tr.kind == "labels"
    np.testing.assert_allclose(scene_tr.values[scene_tr.values.any(axis=1)].sum(axis=1), 1.0, rtol=1e-6)


def test_run_align_preshift_applies_lag_once(tmp_path):
    source = _impulse_table(tmp_path / "impulse.npz", 70, at_s=30.0)
    shifted = run_align([source], tmp_path / "p3", run_n_trs=[60], tr_s=TR_S, preshift_trs=3)
    plain = run_align([source], tmp_path / "p0", run_n_trs=[63], tr_s=TR_S, preshift_trs=0)
    for p3, p0 in zip(shifted, plain):
        # stored row t of pre-shifted data was acquired at TR t + 3: same numbers, 3 rows earlier
        np.testing.assert_array_equal(FeatureTable.load(p3).values, FeatureTable.load(p0).values[3:])
    hrf = FeatureTable.load(shifted[0]).values[:, 0]
    assert np.argmax(hrf) in (20, 21)  # acquired at 34.5-36 s: 4.5-6 s after the stimulus, stored 3 TRs early
    assert np.flatnonzero(FeatureTable.load(shifted[1]).values[:, 0]).tolist() == [17]  # window [30, 31.5) s


def test_run_align_fir_is_delay_of_tr_table_inside_runs(tmp_path, rng):
    times = np.arange(int(40 * TR_S * 10)) / 10
    source = _write(tmp_path / "x.npz", rng.standard_normal((times.size, 3)), times)
    written = run_align([source], tmp_path / "out", run_n_trs=[15, 25], tr_s=TR_S, delays_trs=(1, 2, 4),
                        preshift_trs=3)
    tr, fir = FeatureTable.load(written[1]), FeatureTable.load(written[2])
    expected = delay(tr.values, (1, 2, 4), runs=tr.runs)
    inside = np.ones(40, bool)
    inside[[0, 1, 2, 3, 15, 16, 17, 18]] = False
    np.testing.assert_allclose(fir.values[inside], expected[inside], rtol=1e-6)
    # at run starts the stimulus shown before the first stored volume is kept, not zeroed
    assert fir.values[15, :3].any() and not expected[15, :3].any()


def test_run_align_uses_segment_durations(tmp_path):
    labels = np.eye(2)[[0, 1]]
    source = FeatureTable(labels.astype(np.float32), np.array([0.0, 6.0]), ("indoor", "outdoor"), "labels",
                          meta={"durations_s": [3.0, 3.0]}).save(tmp_path / "segments.npz")
    written = run_align([source], tmp_path / "out", run_n_trs=[6], tr_s=TR_S)
    tr = FeatureTable.load(written[1])
    np.testing.assert_allclose(tr.values, [[1, 0], [1, 0], [0, 0], [0, 0], [0, 1], [0, 1]], atol=1e-6)
    assert "durations_s" not in tr.meta  # per-sample metadata does not describe volumes


def test_run_align_nothing_crosses_runs(tmp_path):
    source = _impulse_table(tmp_path / "impulse.npz", 40, at_s=20 * TR_S - 1.0)  # 1 s before run 0 ends
    written = run_align([source], tmp_path / "out", run_n_trs=[20, 20], tr_s=TR_S, preshift_trs=3)
    hrf, tr, fir = (FeatureTable.load(p).values for p in written)
    assert hrf[17:20, 0].max() > 0.1  # run 0's last volumes, acquired after its stimulus ended
    assert not hrf[20:].any() and not tr[20:].any() and not fir[20:].any()


def test_run_align_missing_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz: feature table not found; run the features stage"):
        run_align([tmp_path / "nope.npz"], tmp_path / "out", run_n_trs=[10], tr_s=TR_S)


def test_run_align_nan_error_names_file(tmp_path):
    values = np.ones((20, 1))
    values[5] = np.nan
    source = _write(tmp_path / "holes.npz", values, np.arange(20) * TR_S)
    with pytest.raises(ValueError, match=r"holes\.npz: features has 1 rows with NaN"):
        run_align([source], tmp_path / "out", run_n_trs=[20], tr_s=TR_S)


def test_run_align_times_outside_scan_error(tmp_path):
    source = _write(tmp_path / "late.npz", np.ones((5, 1)), 1000.0 + np.arange(5))
    with pytest.raises(ValueError, match=r"late\.npz: samples span 1000.0 to 1004.0 s, outside the scan"):
        run_align([source], tmp_path / "out", run_n_trs=[20], tr_s=TR_S)


def test_run_align_run_labels_disagree_error(tmp_path):
    source = _write(tmp_path / "runs.npz", np.ones((20, 1)), np.arange(20) * TR_S, runs=np.repeat([0, 1], [5, 15]))
    with pytest.raises(ValueError, match=r"runs\.npz: the table's run labels disagree.*fmri\.run_n_trs"):
        run_align([source], tmp_path / "out", run_n_trs=[10, 10], tr_s=TR_S)


def test_run_align_unknown_model_error(tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        run_align([], tmp_path, run_n_trs=[10], tr_s=TR_S, hrf_model="boynton")


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock audio envelope and ROI means)")
def test_run_align_sherlock_audio_tracks_early_auditory(tmp_path):
    """The audio envelope, convolved with the 3-TR pre-shift honoured, follows early auditory cortex."""
    from nilearn.signal import clean

    run_n_trs = [946, 1030]
    runs = np.repeat([0, 1], run_n_trs)
    audio = loadmat(SHERLOCK / "stimulus_features" / "behavior-sensory-sherlock.mat")["audio"][:, 0].astype(float)
    for r in (0, 1):  # the first 26 TRs of each run are NaN: fill with the run's mean
        audio[(runs == r) & np.isnan(audio)] = np.nanmean(audio[runs == r])
    source = _write(tmp_path / "audio.npz", audio[:, None], np.arange(1976) * TR_S, ("audio",))

    def regressor(preshift_trs):
        out_dir = tmp_path / f"p{preshift_trs}"
        path = run_align([source], out_dir, run_n_trs=run_n_trs, tr_s=TR_S, preshift_trs=preshift_trs)[0]
        return FeatureTable.load(path).values[:, 0]

    def roi(name):
        return loadmat(SHERLOCK / "roi_group_mean" / f"{name}_sherlock_movie_roicorr.mat")["meantc"][:, 0]

    keep = np.ones(1976, bool)
    keep[np.concatenate([np.arange(50), 946 + np.arange(50)])] = False  # filled TRs and the HRF's reach

    def r(x, y):
        x, y = (clean(v[:, None], runs=runs, standardize=None, high_pass=0.01, t_r=TR_S)[:, 0] for v in (x, y))
        return np.corrcoef(x[keep], y[keep])[0, 1]

    honoured, twice = regressor(3), regressor(0)
    auditory, pmc = roi("aud_early"), roi("pmc_nn")
    assert r(honoured, auditory) > 0.1
    assert r(honoured, auditory) > r(honoured, pmc) + 0.1
    assert r(twice, auditory) < 0  # applying the lag twice (ignoring the pre-shift) loses it


def test_convolve_hrf_segments_may_start_together_when_durations_are_given():
    """Regression: annotation segments sharing an onset (Sherlock) were rejected as unsorted times."""
    from giblet.alignment import convolve_hrf

    frame_times = np.arange(40) * 1.5
    together = convolve_hrf(np.array([[1.0], [2.0]]), [3.0, 3.0], frame_times, durations=[1.5, 3.0])
    apart = convolve_hrf(np.array([[1.0]]), [3.0], frame_times, durations=[1.5]) + convolve_hrf(
        np.array([[2.0]]), [3.0], frame_times, durations=[3.0])
    np.testing.assert_allclose(together, apart, atol=1e-6)
    with pytest.raises(ValueError, match="must increase strictly"):
        convolve_hrf(np.array([[1.0], [2.0]]), [3.0, 3.0], frame_times)
