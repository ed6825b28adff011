import logging

import nibabel as nib
import numpy as np
import pytest

from giblet.fmri import GroupIsc, PreparedFmri, PrepareFmriConfig, run_group_isc, run_prepare_fmri
from giblet.fmri.clean import CleanConfig
from giblet.fmri.masks import grid_ijk
from giblet.splits import GAP, SplitConfig, fold_chunks, make_split, pieces
from giblet.timing import ScanTiming
from tests.conftest import SHARED_DATA
from tests.fmri.conftest import AFFINE, GRID

TR_S = 2.0
# the 17-TR val/test pieces (34 s) are shorter than the 100 s high-pass period: nilearn says so, and only detrends
pytestmark = pytest.mark.filterwarnings("ignore:Cosine filter was not created:UserWarning")
RUN_N_TRS = [100, 100]
N_TRS = sum(RUN_N_TRS)
TIMING = ScanTiming(TR_S, RUN_N_TRS)
NAN_TR, CONSTANT_VOXEL, NAN_VOXEL, FILLED_VOXEL = 50, (2, 3, 2), (3, 3, 2), (4, 4, 3)


def _save(path, data, affine=AFFINE):
    img = nib.Nifti1Image(data, affine)
    if img.ndim == 4:
        img.header.set_zooms((3.0, 3.0, 3.0, TR_S))
    nib.save(img, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three simulated subjects (2 runs) and masks with real-world quirks; sub-0 has bad TRs and voxels."""
    root = tmp_path_factory.mktemp("fmri")
    rng = np.random.default_rng(0)
    brain = np.zeros(GRID, np.float32)
    brain[1:5, 1:6, 1:4] = 1.0
    brain[0] = 0.25  # fractional edge, dropped at threshold 0.5
    signal_roi = np.zeros(GRID, np.int16)
    signal_roi[1:3, 1:4, 1:4] = 20  # label image: two labels form one ROI
    signal_roi[3, 1:4, 1:4] = 33
    noise_roi = np.zeros((*GRID, 1), np.uint8)  # 4-D singleton on a grid shifted by one voxel in z
    noise_roi[1:5, 4:6, 0:2, 0] = 1
    shifted = AFFINE.copy()
    shifted[2, 3] += 3.0
    masks = {
        "brain": _save(root / "brain.nii.gz", brain),
        "signal": _save(root / "signal.nii.gz", signal_roi),
        "noise": _save(root / "noise.nii.gz", noise_roi, shifted),
    }
    shared = np.convolve(rng.standard_normal(N_TRS + 10), np.ones(5) / np.sqrt(5), mode="same")[:N_TRS]
    subjects = {}
    for s in range(3):
        data = 100.0 + 0.02 * np.arange(N_TRS) + rng.standard_normal((*GRID, N_TRS))  # drift + noise
        data[signal_roi > 0] += 1.5 * shared
        if s == 0:
            data[..., NAN_TR] = np.nan
            data[..., 195:] = data[..., 194:195]  # the last 5 TRs copy TR 194
            data[CONSTANT_VOXEL] = 100.0
            data[NAN_VOXEL][10:40] = np.nan  # 15 % of the TRs: dropped
            data[FILLED_VOXEL][[20, 60]] = np.nan  # 1 %: kept, filled in time
        data = data.astype(np.float32)
        subjects[f"sub-{s}"] = [_save(root / f"sub-{s}_run-{r + 1}.nii.gz", data[..., r * 100 : (r + 1) * 100])
                                for r in range(2)]
        subjects[f"sub-{s}_data"] = data
    return {"root": root, "masks": masks, "subjects": subjects, "brain": brain >= 0.5, "signal": signal_roi > 0}


def _config(dataset, **kwargs):
    masks = dataset["masks"]
    return PrepareFmriConfig(brain_mask={"path": str(masks["brain"]), "threshold": 0.5},
                             rois={"signal": masks["signal"], "noise": masks["noise"]}, **kwargs)


def _prepare(dataset, subject, out=None, **kwargs):
    out = out or dataset["root"] / f"{subject}.npz"
    return run_prepare_fmri(subject, dataset["subjects"][subject], out, TIMING, config=_config(dataset, **kwargs))


def test_run_prepare_fmri_flags_and_masks_bad_data(dataset):
    p = PreparedFmri.load(_prepare(dataset, "sub-0"))
    split = make_split(N_TRS, TR_S)
    assert p.qc["bad_tr_ranges"] == {"nan": [[NAN_TR, NAN_TR + 1]], "constant": [], "repeated": [[195, 200]],
                                     "outlier": []}
    assert p.qc["n_excluded_voxels"] == {"constant": 1, "nan": 1}
    assert p.qc["n_filled_samples"] == 2 and p.qc["n_filled_voxels"] == 1
    assert sorted(map(tuple, p.excluded_ijk.tolist())) == [CONSTANT_VOXEL, NAN_VOXEL]
    expected_valid = split.labels != GAP
    expected_valid[[NAN_TR, 195, 196, 197, 198, 199]] = False
    assert np.array_equal(p.valid_trs, expected_valid)
    assert np.isnan(p.values[~p.valid_trs]).all() and np.isfinite(p.values[p.valid_trs]).all()
    assert p.values.shape == (N_TRS, dataset["brain"].sum() - 2) and p.values.dtype == np.float32


def _variant(dataset, name, change):
    """Write sub-1's data, changed in place by ``change(data)``, as two runs ``<name>_run-N.nii.gz``."""
    data = dataset["subjects"]["sub-1_data"].copy()
    change(data)
    return [_save(dataset["root"] / f"{name}_run-{r + 1}.nii.gz", data[..., r * 100 : (r + 1) * 100]) for r in range(2)]


def _prepare_files(dataset, paths, name, **kwargs):
    return PreparedFmri.load(run_prepare_fmri("sub-1", paths, dataset["root"] / f"{name}.npz", TIMING,
                                              config=_config(dataset, **kwargs)))


def test_run_prepare_fmri_zero_volume_is_excluded(dataset, caplog):
    """Issue 19: a zero volume became a valid training TR with |z| ~ 17 in every voxel."""
    def zero_tr_30(data):
        data[..., 30] = 0.0

    with caplog.at_level(logging.WARNING):
        p = _prepare_files(dataset, _variant(dataset, "zero_volume", zero_tr_30), "zero_volume")
    clean = PreparedFmri.load(_prepare(dataset, "sub-1", out=dataset["root"] / "clean.npz"))
    assert p.qc["bad_tr_ranges"]["constant"] == [[30, 31]] and p.qc["n_bad_trs"]["constant"] == 1
    assert np.array_equal(p.valid_trs, clean.valid_trs & (np.arange(N_TRS) != 30))
    assert np.abs(p.values[p.valid_trs]).max() < 6  # no TR at |z| ~ 17
    np.testing.assert_allclose(p.scale, clean.scale, rtol=0.05)
    assert "zero_volume_run-1.nii.gz" in caplog.text and "constant volumes" in caplog.text and "[30, 31)" in caplog.text


def test_run_prepare_fmri_zero_run_is_excluded(dataset, caplog):
    """Issue 19: a zero run was flagged only as "repeated", its first TR kept."""
    def zero_run_2(data):
        data[..., 100:] = 0.0

    with caplog.at_level(logging.WARNING):
        p = _prepare_files(dataset, _variant(dataset, "zero_run", zero_run_2), "zero_run")
    assert p.qc["bad_tr_ranges"] == {"nan": [], "constant": [[100, 200]], "repeated": [], "outlier": []}
    assert p.qc["n_valid_trs"] == {"train": 100, "val": 0, "test": 0} and not p.valid_trs[100:].any()
    assert "zero_run_run-2.nii.gz: run 2 (TRs [100, 200)) has no usable TR {'constant': 100}" in caplog.text
    assert "the test block has no valid TR left" in caplog.text


def test_run_prepare_fmri_scattered_nan_are_filled(dataset):
    """Issue 19: 1 % of the samples NaN at random dropped 92 % of the voxels; now every voxel keeps."""
    rng = np.random.default_rng(5)
    holes = rng.random((*GRID, N_TRS)) < 0.01

    def scatter_nan(data):
        data[holes] = np.nan

    p = _prepare_files(dataset, _variant(dataset, "scattered", scatter_nan), "scattered")
    clean = PreparedFmri.load(_prepare(dataset, "sub-1", out=dataset["root"] / "clean.npz"))
    assert p.qc["n_excluded_voxels"] == clean.qc["n_excluded_voxels"] and p.qc["rois"] == clean.qc["rois"]
    assert np.array_equal(p.valid_trs, clean.valid_trs)
    assert p.qc["n_filled_samples"] == holes[dataset["brain"]][:, p.valid_trs].sum()
    assert np.isfinite(p.values[p.valid_trs]).all()
    r = [np.corrcoef(a, b)[0, 1] for a, b in zip(p.values[p.valid_trs].T, clean.values[clean.valid_trs].T)]
    assert np.median(r) > 0.99 and np.min(r) > 0.9


def test_run_prepare_fmri_roi_losing_most_voxels_warns(dataset, caplog):
    def nan_in_signal_roi(data):
        data[1:3, 1:4, 1:4, ::5] = np.nan  # 20 % of the TRs of 18 of the ROI's 27 voxels

    with caplog.at_level(logging.WARNING):
        p = _prepare_files(dataset, _variant(dataset, "thin_roi", nan_in_signal_roi), "thin_roi")
    assert p.qc["rois"]["signal"] == 9 and p.qc["n_excluded_voxels"] == {"nan": 18}
    assert "thin_roi_run-1.nii.gz" in caplog.text
    assert "ROI 'signal' keeps 9 of its 27 voxels in the data (excluded: {'nan': 18})" in caplog.text


def test_run_prepare_fmri_header_tr_ignore_trusts_config(dataset, tmp_path):
    img = nib.Nifti1Image(dataset["subjects"]["sub-1_data"], AFFINE)
    img.header.set_zooms((3.0, 3.0, 3.0, 1.0))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, tmp_path / "tr1.nii.gz")
    with pytest.raises(ValueError, match=r"tr1.nii.gz: the header gives a TR of 1 s \(pixdim\[4\]\) but fmri.tr_s is 2 s"):
        run_prepare_fmri("sub-1", tmp_path / "tr1.nii.gz", tmp_path / "p.npz", TIMING, config=_config(dataset))
    p = PreparedFmri.load(run_prepare_fmri("sub-1", tmp_path / "tr1.nii.gz", tmp_path / "p.npz", TIMING,
                                           config=_config(dataset, header_tr="ignore")))
    assert p.tr_s == TR_S


def test_run_prepare_fmri_roi_table_and_grid(dataset):
    p = PreparedFmri.load(_prepare(dataset, "sub-1"))
    assert p.roi_names == ("signal", "noise")
    assert np.array_equal(p.voxel_ijk, grid_ijk(dataset["brain"]))
    signal_ijk = p.voxel_ijk[p.rois["signal"]]
    assert np.array_equal(signal_ijk, grid_ijk(dataset["signal"] & dataset["brain"]))
    noise = np.zeros(GRID, bool)
    noise[1:5, 4:6, 1:3] = True  # one voxel up in z; brain z is 1..3, so z=1,2 remain
    assert np.array_equal(p.voxel_ijk[p.rois["noise"]], grid_ijk(noise & dataset["brain"]))
    img = p.to_nifti(np.arange(len(p.voxel_ijk), dtype=float))
    i, j, k = p.voxel_ijk[7]
    assert img.get_fdata()[i, j, k] == 7 and np.allclose(img.affine, AFFINE)
    assert p.qc["masks"]["noise"]["resampled"] and p.qc["masks"]["signal"]["kind"] == "labels"


def test_run_prepare_fmri_standardises_on_training_block_only(dataset):
    p = PreparedFmri.load(_prepare(dataset, "sub-1", out=dataset["root"] / "raw.npz", detrend=False, high_pass_hz=None))
    train = p.valid_trs & p.split.mask("train")
    assert np.allclose(p.values[train].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(p.values[train].std(axis=0), 1, atol=1e-4)
    raw = dataset["subjects"]["sub-1_data"][dataset["brain"]].T
    assert np.allclose(p.mean, raw[train].mean(axis=0), rtol=1e-5)
    assert np.allclose(p.scale, raw[train].std(axis=0), rtol=1e-4)
    # the data drift up by 0.02 per TR: held-out blocks keep their offset from the training mean
    for block in ("val", "test"):
        rows = p.valid_trs & p.split.mask(block)
        assert np.allclose(p.values[rows].mean(axis=0), (raw[rows].mean(axis=0) - p.mean) / p.scale, atol=1e-4)
        assert p.values[rows].mean() > 0.5 and p.qc["block_mean_sd"][block][0] == pytest.approx(p.values[rows].mean())


def test_run_prepare_fmri_matrix_equals_nifti(dataset):
    root = dataset["root"]
    data = dataset["subjects"]["sub-1_data"]
    np.savez(root / "sub-1_matrix.npz", data=data[dataset["brain"]])  # voxels x TRs, C order
    config = _config(dataset, matrix_mask={"path": str(dataset["masks"]["brain"]), "threshold": 0.5})
    from_matrix = PreparedFmri.load(run_prepare_fmri("sub-1", root / "sub-1_matrix.npz", root / "m.npz", TIMING,
                                                     config=config))
    from_nifti = PreparedFmri.load(_prepare(dataset, "sub-1", out=root / "n.npz"))
    assert np.array_equal(from_matrix.values, from_nifti.values, equal_nan=True)
    assert np.array_equal(from_matrix.roi_membership, from_nifti.roi_membership)


def test_run_prepare_fmri_by_blocks_equals_one_block(dataset, monkeypatch):
    root = dataset["root"]
    one = PreparedFmri.load(_prepare(dataset, "sub-0", out=root / "one_block.npz"))
    monkeypatch.setattr("giblet.blocks.BLOCK_COLUMNS", 3)  # sub-0 drops voxels: columns move between blocks
    blocks = PreparedFmri.load(_prepare(dataset, "sub-0", out=root / "blocks.npz"))
    np.testing.assert_allclose(blocks.values, one.values, atol=1e-6)
    np.testing.assert_allclose(blocks.mean, one.mean, rtol=1e-10)
    np.testing.assert_allclose(blocks.scale, one.scale, rtol=1e-10)
    np.testing.assert_array_equal(blocks.voxel_ijk, one.voxel_ijk)
    for block, mean_sd in one.qc["block_mean_sd"].items():
        assert blocks.qc["block_mean_sd"][block] == pytest.approx(mean_sd, abs=1e-6)
    assert blocks.qc["block_mean_sd"]["train"] == pytest.approx([0.0, 1.0], abs=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"run_n_trs": [100, 90]}, r"sub-2_run-2.nii.gz: holds 100 TRs but the config expects 90"),
    ({"rois": {"far": "far.nii.gz"}}, r"far.nii.gz: only 0% of mask 'far' lies inside"),
    ({"rois": {"outside": "outside.nii.gz"}}, r"ROIs \['outside'\] have no usable voxel in the data"),
    ({"brain_mask": None, "rois": {}}, r"NIfTI input needs fmri.brain_mask or fmri.rois"),
    ({"inputs": "sub-2.npy"}, r"sub-2.npy: a matrix input needs fmri.matrix_mask"),
    ({"inputs": "nan.nii.gz", "run_n_trs": [200]}, r"nan.nii.gz: every value is NaN"),
    ({"inputs": "cut.nii.gz", "run_n_trs": [200]},
     r"cut.nii.gz: truncated or corrupt gzip/NIfTI file \(EOFError: .*\); re-download or re-copy the file"),
    ({"rois": {"cut": "cut_mask.nii.gz"}}, r"cut_mask.nii.gz: truncated or corrupt gzip/NIfTI file"),
])
def test_run_prepare_fmri_bad_input_raises(dataset, change, message):
    root = dataset["root"]
    far = AFFINE.copy()
    far[:3, 3] += 300.0
    _save(root / "far.nii.gz", np.ones(GRID, np.uint8), far)
    outside = np.zeros(GRID, np.uint8)
    outside[0, 0, 0] = 1  # on the grid, but outside the brain mask
    _save(root / "outside.nii.gz", outside)
    _save(root / "nan.nii.gz", np.full((*GRID, 200), np.nan, np.float32))
    for name, data in (("cut.nii.gz", dataset["subjects"]["sub-2_data"]), ("cut_mask.nii.gz", dataset["signal"] * 1.5)):
        whole = _save(root / name, data).read_bytes()
        (root / name).write_bytes(whole[: len(whole) * 2 // 3])  # an interrupted copy
    np.save(root / "sub-2.npy", np.zeros((10, 200)))
    masks = dataset["masks"]
    fields = {"brain_mask": {"path": str(masks["brain"]), "threshold": 0.5}, "rois": {"signal": masks["signal"]}}
    fields.update({k: v for k, v in change.items() if k in fields})
    fields["rois"] = {k: (root / v if k in ("far", "outside", "cut") else v) for k, v in fields["rois"].items()}
    inputs = root / change["inputs"] if "inputs" in change else dataset["subjects"]["sub-2"]
    with pytest.raises(ValueError, match=message):
        run_prepare_fmri("sub-2", inputs, root / "bad.npz", ScanTiming(TR_S, change.get("run_n_trs", RUN_N_TRS)),
                         config=PrepareFmriConfig(**fields))
    assert not (root / "bad.npz").exists()


def test_run_group_isc_recovers_shared_signal(dataset):
    paths = [_prepare(dataset, s) for s in ("sub-0", "sub-1", "sub-2")]
    out = GroupIsc.load(run_group_isc(paths, dataset["root"] / "isc.npz"))
    assert out.blocks == ("all", "train", "val", "test")
    assert out.roi_names == ("signal", "noise")
    assert out.voxel_isc.shape == (4, 3, dataset["brain"].sum() - 2)  # sub-0's 2 bad voxels dropped for all
    roi_all = out.roi_isc[0]
    assert np.all(roi_all[:, 0] > 0.6) and np.all(np.abs(roi_all[:, 1]) < 0.25)
    assert np.all(np.abs(out.roi_isc_null[0]) < 0.25)  # the circularly shifted reference is at chance
    low, high = out.roi_isc_null_band[0]  # its 95 % band: around chance, below the signal ROI's ISC
    assert np.all(low < out.roi_isc_null[0]) and np.all(out.roi_isc_null[0] < high)
    assert np.all(high[:, 0] < roi_all[:, 0]) and np.all(high - low > 0.05)
    group_low, group_high = out.roi_isc_null_group_band[0]  # the mean over subjects varies less
    assert np.all(group_high - group_low < (high - low).mean(axis=0))
    ci_low, ci_high = out.roi_isc_ci[0]  # the ISC's own 95 % block-bootstrap interval holds it
    assert np.all(ci_low < roi_all) and np.all(roi_all < ci_high) and np.all(ci_high[:, 1] - ci_low[:, 1] > 0.05)
    assert np.all(ci_low[:, 0] > high[:, 0])  # the signal ROI's interval clears the null band
    mean_low, mean_high = out.roi_isc_group_ci[0]
    assert np.all(mean_low < roi_all.mean(axis=0)) and np.all(roi_all.mean(axis=0) < mean_high)
    signal = np.isin(out.voxel_ijk.tolist(), grid_ijk(dataset["signal"]).tolist()).all(axis=1)
    assert np.median(out.voxel_isc[0][:, signal]) > 0.4 > np.median(out.voxel_isc[0][:, ~signal]) + 0.3
    assert out.summary["blocks"]["all"]["n_trs"] == int(out.n_trs[0]) == N_TRS - 32 - 6
    assert out.summary["subjects"] == ["sub-0", "sub-1", "sub-2"]
    assert out.roi_timecourses.shape == (3, N_TRS, 2)
    assert out.index("sub-1", "test", ("signal", "noise")) == (3, 1)
    with pytest.raises(ValueError, match=r"isc\.npz: no 'sub-9'.*rerun group-isc"):
        out.index("sub-9", "test", ("signal", "noise"))


def test_group_isc_file_without_an_attribute_is_refused_by_name(dataset, tmp_path):
    paths = [_prepare(dataset, s) for s in ("sub-0", "sub-1")]
    with np.load(run_group_isc(paths, dataset["root"] / "isc.npz")) as z:
        arrays = {key: z[key] for key in z.files if key != "roi_timecourses"}
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match=r"old\.npz: no \['roi_timecourses'\].*rerun group-isc"):
        GroupIsc.load(tmp_path / "old.npz")


def test_run_group_isc_one_subject_raises(dataset):
    with pytest.raises(ValueError, match="group ISC needs >= 2 subjects, got 1"):
        run_group_isc([dataset["root"] / "sub-0.npz"], dataset["root"] / "isc.npz")


def test_prepare_config_from_dict_takes_stage_keys():
    section = {"tr_s": 1.5, "subjects": ["s1"], "brain_mask": "brain.nii.gz",
               "rois": {"pmc": {"path": "pmc.nii.gz", "threshold": 0.5}}, "high_pass_hz": None, "filter": "butterworth"}
    config = PrepareFmriConfig.from_dict(section)
    assert config.brain_mask.path == "brain.nii.gz" and config.rois["pmc"].threshold == 0.5
    assert config.high_pass_hz == 0.01 and config.filter == "butterworth"  # None keeps the default
    assert config.cleaning == CleanConfig(detrend=True, high_pass_hz=0.01, low_pass_hz=None, filter="butterworth")


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels)")
def test_run_prepare_fmri_sherlock_s5(tmp_path):
    sherlock = SHARED_DATA / "sherlock"
    config = PrepareFmriConfig(matrix_mask=str(sherlock / "masks" / "pmc_nn.nii.gz"), matrix_key="rdata",
                               kept_key="keptvox", rois={"pmc": str(sherlock / "masks" / "pmc_nn.nii.gz")})
    p = PreparedFmri.load(run_prepare_fmri(
        "s5", sherlock / "pmc_voxels" / "pmc_nn_sherlock_movie_s5.mat", tmp_path / "s5.npz",
        ScanTiming(tr_s=1.5, run_n_trs=(946, 1030)), split=SplitConfig(), config=config,
    ))
    assert p.qc["bad_tr_ranges"] == {"nan": [], "constant": [], "repeated": [[1926, 1976]], "outlier": []}
    assert p.qc["n_valid_trs"] == {"train": 1546, "val": 193, "test": 143}  # test loses the 50 copies
    assert p.values.shape == (1976, 481) and len(p.rois["pmc"]) == 481


def test_run_prepare_fmri_cleans_every_cross_validation_chunk_on_its_own(dataset):
    folds = SplitConfig(folds=4)
    p = PreparedFmri.load(run_prepare_fmri("sub-1", dataset["subjects"]["sub-1"], dataset["root"] / "cv.npz", TIMING,
                                           split=folds,
                                           config=_config(dataset, detrend=True, high_pass_hz=None)))
    chunks = fold_chunks(N_TRS, TR_S, folds)
    assert p.qc["split_folds"] == 4
    assert (p.valid_trs[(chunks >= 0) & (p.split.labels == GAP)]).any()  # the main split's gaps serve the folds
    numbers = pieces(p.runs, p.split.labels, chunks)
    for piece in np.unique(numbers[(numbers >= 0) & p.valid_trs]):  # each detrended on its own: no slope left
        rows = np.flatnonzero((numbers == piece) & p.valid_trs)
        if len(rows) > 2:
            slope = np.polyfit(rows, p.values[rows].astype(np.float64), 1)[0]
            assert np.abs(slope).max() < 1e-5


def test_run_prepare_fmri_keeps_the_mean_epi_before_cleaning(dataset):
    p = PreparedFmri.load(_prepare(dataset, "sub-1", out=dataset["root"] / "epi.npz"))  # detrended: mean 0 after
    train = p.valid_trs & p.split.mask("train")
    raw = dataset["subjects"]["sub-1_data"][tuple(p.voxel_ijk.T)].T
    np.testing.assert_allclose(p.mean_epi, raw[train].mean(axis=0), rtol=1e-5)
    assert np.abs(p.mean).max() < 1e-3 * np.abs(p.mean_epi).min()
