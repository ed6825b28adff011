import logging

import numpy as np
import pytest
from scipy import signal

from giblet.demo.brain import FINE_DT_S, ROI_DRIVERS, roi_masks, simulate_subject
from giblet.fmri.quality import constant_voxels, find_bad
from tests.conftest import SHARED_DATA

NO_BAD_TR = {"nan": 0, "constant": 0, "repeated": 0, "outlier": 0}


def _raw_bold(rng, n_trs=240, n_voxels=600, rho=0.4, drift_sd=0.5, global_sd=0.0):
    """Raw-scale BOLD (n_trs, n_voxels): baseline 500-1000, 1 % noise of AR(1) + cosine drift + a global signal."""

    def ar1(n_columns):
        return signal.lfilter([np.sqrt(1 - rho**2)], [1, -rho], rng.standard_normal((n_trs, n_columns)), axis=0)

    t = np.arange(n_trs)[:, None]
    drift = np.cos(np.pi * t * np.arange(1, 4) / n_trs) @ rng.normal(0, drift_sd, (3, n_voxels))
    y = ar1(n_voxels) + global_sd * ar1(1) + drift
    return (rng.uniform(500, 1000, n_voxels) * (1 + 0.01 * y)).astype(np.float32)


def _demo_bold(rng, run_n_trs=(240, 240), tr_s=1.5):
    """A subject of the demo's brain model (giblet.demo, default demo config) driven by smooth random drives."""
    ijk = np.indices((20, 24, 20)).transpose(1, 2, 3, 0)
    brain = ((((ijk - 9.5) / (9.0, 11.0, 9.0)) ** 2).sum(-1) <= 1)
    rois = roi_masks(brain)
    n_fine = int(round(sum(run_n_trs) * tr_s / FINE_DT_S))
    drives = {m: signal.lfilter([0.05], [1, -0.95], rng.standard_normal((n_fine, 4)), axis=0)
              for m in ("audio", "video", "annotations", "events")}
    shared = {name: rng.standard_normal((4, 1)) + 0.5 * rng.standard_normal((4, int(rois[name].sum())))
              for name, modality in ROI_DRIVERS.items() if modality is not None}
    params = {"hrf_peak_s": 5.0, "snr": 0.8, "ar1_rho": 0.4, "noise_spatial_corr": 0.5,
              "individual_weight_sd": 0.5, "drift_sd": 0.5}
    y = simulate_subject(rng, drives, rois, brain, shared, params, list(run_n_trs), tr_s)
    return (rng.uniform(500, 1000, brain.sum()) * (1 + 0.01 * y)).astype(np.float32)


def test_find_bad_nan_trs_and_voxels(rng):
    values = rng.standard_normal((30, 8))
    values[4] = np.nan  # a missing volume
    values[10:12, 3] = np.nan  # 2 of 29 TRs (7 %): too many, dropped
    values[20, 5] = np.nan  # 1 of 29 TRs (3.4 %): kept, to be filled
    quality = find_bad(values)
    assert np.flatnonzero(quality.bad_trs["nan"]).tolist() == [4]
    assert np.flatnonzero(quality.bad_voxels["nan"]).tolist() == [3]
    assert quality.tr_ok.sum() == 29 and quality.voxel_ok.sum() == 7
    assert np.flatnonzero(find_bad(values, max_nan_fraction=0.1).bad_voxels["nan"]).tolist() == []


def test_find_bad_scattered_nan_keeps_voxels(rng):
    """Issue 19: 1 % of the samples NaN at random dropped 3481 of 3800 voxels; now none, and no TR."""
    values = _raw_bold(rng, n_trs=480, n_voxels=3800)
    values[rng.random(values.shape) < 0.01] = np.nan
    quality = find_bad(values)
    assert quality.summary()["n_bad_voxels"] == {"nan": 0, "constant": 0}
    assert quality.summary()["n_bad_trs"] == NO_BAD_TR


def test_find_bad_many_nan_voxels_warn(rng, caplog):
    values = _raw_bold(rng, n_voxels=500)
    values[:24, :100] = np.nan  # 100 voxels NaN at 10 % of the TRs
    values[:, 100:150] = np.nan  # 50 voxels never hold data
    with caplog.at_level(logging.WARNING):
        quality = find_bad(values, source="sub-01.nii.gz")
    assert quality.bad_voxels["nan"].sum() == 150 and quality.summary()["n_bad_trs"] == NO_BAD_TR
    assert "sub-01.nii.gz: 150 of 500 voxels (30%) dropped for NaN: 50 NaN at every TR, 100 at more than 5%" in caplog.text


def test_find_bad_nan_almost_everywhere_raises(rng):
    values = _raw_bold(rng, n_voxels=500)
    values[rng.random(values.shape) < 0.1] = np.nan  # 10 % of every voxel's samples
    with pytest.raises(ValueError, match=r"sub-01.nii.gz: 500 of 500 voxels \(100%\) dropped for NaN: 0 NaN at every "
                                         r"TR, 500 at more than 5% .*raise fmri.max_nan_fraction"):
        find_bad(values, source="sub-01.nii.gz")
    assert find_bad(values, max_nan_fraction=0.2).voxel_ok.all()


def test_find_bad_nan_trs_count_voxels_with_data(rng):
    values = _raw_bold(rng, n_trs=100, n_voxels=50)
    values[:, :30] = np.nan  # a mask larger than the data: 60 % of the voxels never hold data
    values[40, 30:] = np.nan  # a missing volume
    quality = find_bad(values)
    assert np.flatnonzero(quality.bad_trs["nan"]).tolist() == [40]
    assert quality.bad_voxels["nan"].sum() == 30


def test_find_bad_zero_volume_is_a_bad_tr(rng, caplog):
    """Issue 19: one zero volume passed every check and became a training TR with |z| ~ 17."""
    values = _raw_bold(rng)
    values[100] = 0.0
    with caplog.at_level(logging.WARNING):
        quality = find_bad(values, source="sub-01_run-1.nii.gz")
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "constant": [[100, 101]], "repeated": [], "outlier": []}
    assert not quality.tr_ok[100] and quality.tr_ok.sum() == 239
    assert "sub-01_run-1.nii.gz: 1 TRs excluded as constant volumes" in caplog.text and "[100, 101)" in caplog.text
    zscored = (values - values.mean(axis=0)) / values.std(axis=0)  # a matrix input: 0 is every voxel's mean
    assert np.flatnonzero(~find_bad(zscored).tr_ok).tolist() == [100]


def test_find_bad_zero_run_every_tr_is_bad(rng, caplog):
    """Issue 19: a zero run was flagged only as "repeated", its first TR kept."""
    values = np.concatenate([_raw_bold(rng, n_trs=120), np.zeros((120, 600), np.float32)])
    with caplog.at_level(logging.WARNING):
        quality = find_bad(values, runs=np.repeat([0, 1], 120), source="sub-01.nii.gz")
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "constant": [[120, 240]], "repeated": [], "outlier": []}
    assert np.flatnonzero(quality.tr_ok).tolist() == list(range(120))
    assert "sub-01.nii.gz: run 2 (TRs [120, 240)) has no usable TR {'constant': 120}" in caplog.text


def test_find_bad_outlier_volumes(rng):
    values = _raw_bold(rng, n_trs=300)
    values[150:] *= 1.1  # the second run is brighter: judged within its run, not an outlier
    values[40, :300] = 0.0  # half a volume lost (not constant: the other half holds data)
    values[200] *= 1.05  # an intensity jump
    quality = find_bad(values, runs=np.repeat([0, 1], 150))
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "constant": [], "repeated": [], "outlier": [[40, 41], [200, 201]]}
    assert find_bad(values[:150]).summary()["bad_tr_ranges"]["outlier"] == [[40, 41]]


def test_find_bad_outlier_with_scattered_nan(rng):
    values = _raw_bold(rng)
    values[rng.random(values.shape) < 0.01] = np.nan
    values[60, :300] = 0.0
    assert find_bad(values).summary()["bad_tr_ranges"]["outlier"] == [[60, 61]]


@pytest.mark.parametrize("rho, drift_sd, global_sd, n_trs", [
    (0.4, 0.5, 0.0, 240), (0.8, 2.0, 0.5, 1000), (0.9, 5.0, 1.0, 240), (0.5, 1.0, 2.0, 1000),
])
def test_find_bad_clean_simulation_flags_nothing(rng, rho, drift_sd, global_sd, n_trs):
    values = _raw_bold(rng, n_trs=n_trs, n_voxels=2000, rho=rho, drift_sd=drift_sd, global_sd=global_sd)
    quality = find_bad(values)
    assert quality.summary()["n_bad_trs"] == NO_BAD_TR and quality.voxel_ok.all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_find_bad_demo_brain_model_flags_nothing(seed):
    values = _demo_bold(np.random.default_rng(seed))
    quality = find_bad(values, runs=np.repeat([0, 1], 240))
    assert quality.summary()["n_bad_trs"] == NO_BAD_TR and quality.voxel_ok.all()


def test_find_bad_constant_voxels_over_reference_trs(rng):
    values = rng.standard_normal((30, 5))
    values[:, 0] = 0.0  # outside the brain
    values[:20, 2] = 7.0  # flat during training only
    reference = np.arange(30) < 20
    assert np.flatnonzero(find_bad(values, reference_trs=reference).bad_voxels["constant"]).tolist() == [0, 2]
    assert np.flatnonzero(find_bad(values).bad_voxels["constant"]).tolist() == [0]


def test_find_bad_repeated_tail_keeps_the_original(rng):
    values = rng.standard_normal((40, 6)).astype(np.float32)
    values[:, 5] = 1.0  # a constant voxel is equal at every TR and must not make every TR a repeat
    values[35:] = values[34]  # s5-like: the last 5 TRs copy TR 34
    quality = find_bad(values)
    assert np.flatnonzero(quality.bad_trs["repeated"]).tolist() == [35, 36, 37, 38, 39]
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "constant": [], "repeated": [[35, 40]], "outlier": []}
    assert quality.voxel_reasons().tolist() == [""] * 5 + ["constant"]


def test_find_bad_all_nan_raises():
    with pytest.raises(ValueError, match="sub-01.nii.gz: every value is NaN"):
        find_bad(np.full((10, 4), np.nan), source="sub-01.nii.gz")


def test_find_bad_no_usable_voxel_raises():
    with pytest.raises(ValueError, match=r"no usable voxel \(0 with NaN, 3 constant\)"):
        find_bad(np.tile([1.0, 2.0, 3.0], (10, 1)))
    with pytest.raises(ValueError, match=r"every TR of the reference \(training\) block is NaN or constant"):
        find_bad(np.ones((10, 3)))


def test_find_bad_by_blocks_equals_one_block(rng, monkeypatch):
    values = rng.standard_normal((40, 10)).astype(np.float32)
    values[4, :7] = np.nan  # a NaN TR (7 of 10 voxels)
    values[12:16, 8] = np.nan  # a NaN voxel
    values[20, 6] = np.nan  # a kept voxel with a hole
    values[:, 2] = 3.0  # a constant voxel
    values[24] = 0.0  # a zero volume
    values[30:] = values[29]  # a repeated tail
    one = find_bad(values)
    monkeypatch.setattr("giblet.blocks.BLOCK_COLUMNS", 3)
    blocks = find_bad(values)
    for kind in ("bad_trs", "bad_voxels"):
        for reason, mask in getattr(one, kind).items():
            np.testing.assert_array_equal(getattr(blocks, kind)[reason], mask)
    assert np.flatnonzero(blocks.bad_trs["repeated"]).tolist() == list(range(30, 40))
    assert np.flatnonzero(blocks.bad_trs["constant"]).tolist() == [24]
    assert np.flatnonzero(blocks.bad_voxels["nan"]).tolist() == [8]
    assert np.flatnonzero(blocks.bad_voxels["constant"]).tolist() == [2]


def test_constant_voxels_over_some_trs(rng, small_blocks):
    values = rng.standard_normal((10, 7))
    values[:5, 6] = 1.0
    values[:5, 4] = 2.0
    values[3, 4] = np.nan  # constant but for a hole
    values[:5, 0] = np.nan
    assert np.flatnonzero(constant_voxels(values, np.arange(10) < 5)).tolist() == [4, 6]


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels)")
@pytest.mark.parametrize("subject", [f"s{n}" for n in range(1, 13)])
def test_find_bad_sherlock_flags_only_s5_copied_tail(subject):
    """Real data: only s5's 50 copied volumes are bad; no outlier (the PMC voxels reach a robust z of 20)."""
    import scipy.io

    mat = scipy.io.loadmat(SHARED_DATA / "sherlock" / "pmc_voxels" / f"pmc_nn_sherlock_movie_{subject}.mat")
    quality = find_bad(mat["rdata"].T, runs=np.repeat([0, 1], [946, 1030]))
    repeated = [[1926, 1976]] if subject == "s5" else []
    assert quality.summary()["bad_tr_ranges"] == {"nan": [], "constant": [], "repeated": repeated, "outlier": []}
    assert quality.voxel_ok.all()
