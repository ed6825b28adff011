"""Cross-validated encoding: both encoders retrained per fold, scored with the ceiling on the same TRs."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from giblet.evaluation.cross_validation import loo_ceiling, run_cross_validate, summarise_folds
from giblet.evaluation.metrics import pearson_columns
from giblet.fmri.prepared import PreparedFmri
from giblet.outputs import CV_OUTPUTS
from giblet.splits import SplitConfig, fold_chunks
from giblet.training.data import MovieData
from giblet.training.stage import TrainingInputs, TrainingSetup
from giblet.training.trainer import TrainConfig
from tests.evaluation.conftest import SUBJECTS, TR_S

FOLDS = SplitConfig(gap_s=6.0, min_gap_s=6.0, folds=3)
TINY = TrainingSetup(("video", "text"), TrainConfig(max_epochs=2, window_trs=12, stride_trs=6, batch_windows=4),
                     {"hidden": 8, "n_layers": 1, "encoder_delays_trs": (1, 2), "decoder_delays_trs": (1, 2)})


def _inputs(pipeline, prepared):
    return TrainingInputs(pipeline["features_dir"], tuple(pipeline["aligned_paths"]), tuple(prepared))


class _Grid:
    def __init__(self, voxel_ijk):
        self.voxel_ijk, self.grid_shape = voxel_ijk, (3, 1, 1)


def test_loo_ceiling_is_r_with_the_other_subjects_mean_voxel_by_position(rng):
    n, ijk = 50, np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    shared = rng.standard_normal((n, 3))
    bold = {s: (shared + rng.standard_normal((n, 3))).astype(np.float32) for s in ("a", "b", "c")}
    order = [2, 0, 1]  # subject c stores its voxels in another order
    bold["c"] = bold["c"][:, order]
    valid = {s: np.ones(n, bool) for s in bold}
    valid["b"][:10] = False  # b's first TRs are bad: the mean there is c's alone
    prepared = {"a": _Grid(ijk), "b": _Grid(ijk), "c": _Grid(ijk[order])}
    data = MovieData(TR_S, np.zeros(n, int), np.zeros(n, np.int8), {}, bold, valid, prepared, None, {})
    rows = np.arange(n) >= 5
    c_in_a_order = bold["c"][:, np.argsort(order)]
    others = np.where(valid["b"][:, None], (bold["b"] + c_in_a_order) / 2, c_in_a_order)
    np.testing.assert_allclose(loo_ceiling(data, "a", rows), pearson_columns(others[rows], bold["a"][rows]),
                               rtol=1e-5)


def test_summarise_folds_averages_folds_then_subjects_and_reports_seed_spread():
    rows = []
    for subject, base in (("s1", 0.1), ("s2", 0.3)):
        for fold in range(2):
            for seed, shift in ((0, 0.0), (1, 0.02)):
                rows.append({"subject": subject, "fold": fold, "roi": "pmc", "n_trs": 100, "seed": seed,
                             "autoencoder_r": base + shift + 0.01 * fold, "ridge_r": base / 2, "ceiling": 0.4})
    summary = summarise_folds(pd.DataFrame(rows))
    group = summary["group"]["pmc"]
    assert summary["seeds"] == [0, 1]
    assert group["autoencoder_r"] == pytest.approx(0.2 + 0.01 + 0.005)
    assert group["ridge_r"] == pytest.approx(0.1)
    assert group["autoencoder_over_ridge"] == pytest.approx(2.15)
    assert group["autoencoder_r_by_seed"] == pytest.approx([0.205, 0.225])
    assert group["seed_spread"] == pytest.approx(0.02)
    assert group["n_subjects_above_ceiling"] == 0
    s1 = next(row for row in summary["subjects"] if row["subject"] == "s1")
    assert s1["autoencoder_r_over_ceiling"] == pytest.approx(0.115 / 0.4)
    assert s1["n_trs"] == 200


def _with_folds(paths, folder, folds):
    out = []
    for path in paths:
        prepared = PreparedFmri.load(path)
        chunks = fold_chunks(len(prepared.runs), TR_S, FOLDS)
        valid = prepared.valid_trs | (chunks >= 0)
        values = np.nan_to_num(prepared.values)  # the fixture's data are noise + drive at every TR
        qc = {**prepared.qc, "split_folds": folds}
        out.append(dataclasses.replace(prepared, values=values, valid_trs=valid, qc=qc).save(folder / path.name))
    return out


def test_run_cross_validate_scores_every_chunk_once_with_both_models(pipeline, tmp_path):
    prepared = _with_folds(pipeline["prepared_paths"], tmp_path, folds=3)
    out = run_cross_validate(_inputs(pipeline, prepared), tmp_path / "cv", TINY, FOLDS, [0, 1])
    table = pd.read_csv(out / CV_OUTPUTS["scores"], sep="\t")
    assert len(table) == 3 * 2 * len(SUBJECTS) * 3  # folds x seeds x subjects x ROIs
    chunks = fold_chunks(len(PreparedFmri.load(prepared[0]).runs), TR_S, FOLDS)
    per_fold = table[(table["seed"] == 0) & (table["roi"] == "visual")].set_index(["subject", "fold"])["n_trs"]
    for (subject, fold), n_trs in per_fold.items():  # the ridge's first lag and the model's delays cost a few TRs
        assert 0.7 * (chunks == fold).sum() <= n_trs <= (chunks == fold).sum()
    summary = json.loads((out / CV_OUTPUTS["summary"]).read_text())
    visual, noise = summary["group"]["visual"], summary["group"]["noise"]
    assert visual["ridge_r"] > 0.3 > abs(noise["ridge_r"])  # the fixture's visual voxels follow the video
    assert visual["ceiling"] > 0.3
    assert len(visual["autoencoder_r_by_seed"]) == 2 and summary["folds"] == 3
    folds = pd.read_csv(out / CV_OUTPUTS["identification"], sep="\t")
    ridge = folds[folds["model"] == "ridge"]  # fitted once per fold: no seed
    assert ridge["seed"].isna().all() and len(ridge) == 3 * len(SUBJECTS) * 2  # folds x subjects x (text, video)
    assert len(folds) - len(ridge) == 3 * len(SUBJECTS) * 2 * 3  # folds x subjects x seeds x (text, 2 video views)
    pooled = pd.DataFrame(summary["identification"]["subjects"]).set_index(["subject", "model", "view"])
    for (subject, view), rows in ridge.groupby(["subject", "view"]):  # every fold's TRs count once
        row = pooled.loc[(subject, "ridge", view)]
        assert row["rank_accuracy"] == pytest.approx(np.average(rows["rank_accuracy"], weights=rows["n_trs"]))
        assert row["n_trs"] == rows["n_trs"].sum() and row["n_folds"] == 3 and 0 < row["p"] <= 1
    group = summary["identification"]["group"]
    assert len(group["autoencoder/video/lowlevel"]["n_subjects_p05_by_seed"]) == 2
    assert len(group["ridge/text/embedding"]["n_subjects_p05_by_seed"]) == 1


def test_run_cross_validate_refuses_data_prepared_without_the_folds(pipeline, tmp_path):
    prepared = _with_folds(pipeline["prepared_paths"], tmp_path, folds=1)
    with pytest.raises(ValueError, match="prepared with split.folds 1, the config says 3: rerun prepare-fmri"):
        run_cross_validate(_inputs(pipeline, prepared), tmp_path / "cv", TINY, FOLDS, [0])


def test_load_movie_data_with_a_fold_split_restandardises_on_its_training_trs(pipeline, tmp_path):
    from giblet.splits import fold_splits
    from giblet.training.data import load_movie_data

    prepared = _with_folds(pipeline["prepared_paths"], tmp_path, folds=3)
    split = fold_splits(len(pipeline["runs"]), TR_S, FOLDS)[1]
    data = load_movie_data(pipeline["features_dir"], prepared, ("video",), split=split)
    np.testing.assert_array_equal(data.labels, split.labels)
    for subject in SUBJECTS:
        train = data.bold_valid[subject] & split.mask("train")
        np.testing.assert_allclose(data.bold[subject][train].mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.bold[subject][train].std(axis=0), 1.0, atol=1e-4)
        assert (data.bold[subject][~data.bold_valid[subject]] == 0).all()
