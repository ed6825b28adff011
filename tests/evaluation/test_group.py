"""Group summary across subjects."""

import json

import numpy as np
import pandas as pd
import pytest

from giblet.evaluation.group import flatten_summary, group_tests, run_group_summary
from tests.evaluation.conftest import read_json


def _summary(tmp_path, subject, r, significant):
    path = tmp_path / f"{subject}.json"
    path.write_text(json.dumps({"subject": subject, "codec_status": "untrained", "seed": 0, "seconds": 3.0,
                                "encoding": {"ridge": {"rois": {"visual": {"r": r, "ci": [r - 0.1, r + 0.1]}}}},
                                "lesions": {"visual": {"significant": significant}}}))
    return path


def test_flatten_summary_keeps_numbers_and_drops_settings():
    flat = flatten_summary({"seed": 1, "seconds": 2.0, "subject": "s", "a": {"b": [1, 2], "ok": True}})
    assert flat == {"a/b/0": 1.0, "a/b/1": 2.0, "a/ok": 1.0}


def test_run_group_summary_hand_computed(tmp_path):
    paths = [_summary(tmp_path, "s1", 0.2, True), _summary(tmp_path, "s2", 0.6, False)]
    out = run_group_summary(paths, tmp_path / "group")
    group = read_json(out)
    r = group["numbers"]["encoding/ridge/rois/visual/r"]
    assert r["mean"] == pytest.approx(0.4) and r["sd"] == pytest.approx(0.2828427, rel=1e-6)
    assert r["values"] == {"s1": 0.2, "s2": 0.6} and r["n"] == 2
    assert group["numbers"]["lesions/visual/significant"]["mean"] == 0.5
    assert group["codec_status"] == ["untrained"] and "seed" not in group["numbers"]
    assert out == tmp_path / "group" / "group_summary.json"
    table = pd.read_csv(tmp_path / "group" / "group_summary.tsv", sep="\t")
    assert list(table.columns[:6]) == ["number", "n", "mean", "sd", "min", "max"]


def test_run_group_summary_rejects_repeated_subjects(tmp_path):
    path = _summary(tmp_path, "s1", 0.2, True)
    with pytest.raises(ValueError, match="repeat subjects"):
        run_group_summary([path, path], tmp_path)


def _per_tr(folder, rng, visual_cost, rois=("visual", "noise")):
    folder.mkdir()
    intact = rng.uniform(0.5, 1.0, 20)
    costs = {"visual": visual_cost, "noise": 0.0}
    frames = [pd.DataFrame({"model": "ridge", "input": "measured_bold", "roi": roi, "part": "roi", "n_voxels": 3,
                            "modality": "video", "metric": metric, "tr": np.arange(20), "intact": intact,
                            "lesioned": intact - costs[roi] - costs[roi] * 0.1 * rng.standard_normal(20)})
              for roi in rois for metric in ("rank_accuracy", "ssim")]
    path = folder / "lesions_per_tr.tsv.gz"
    pd.concat(frames).to_csv(path, sep="\t", index=False)
    return path


def test_run_group_summary_pools_lesion_effects_over_subjects(tmp_path, rng):
    summaries = [_summary(tmp_path, "s1", 0.2, True), _summary(tmp_path, "s2", 0.6, False)]
    per_tr = [_per_tr(tmp_path / "s1", rng, 0.1), _per_tr(tmp_path / "s2", rng, 0.3)]
    group = read_json(run_group_summary(summaries, tmp_path, per_tr, n_bootstrap=500, block_trs=4))
    visual = group["pooled_lesions"]["ridge/measured_bold"]["video"]["visual"]
    assert visual["change"] == pytest.approx(-0.2, abs=0.01) and visual["significant"]
    noise = group["pooled_lesions"]["ridge/measured_bold"]["video"]["noise"]
    assert noise["change"] == 0 and not noise["significant"]
    effects = pd.read_csv(tmp_path / "group_summary_lesions.tsv", sep="\t")
    assert set(effects["metric"]) == {"rank_accuracy"} and (effects["n_trs"] == 40).all()
    assert (effects["n_subjects"] == 2).all()
    contrasts = pd.read_csv(tmp_path / "group_summary_lesion_contrasts.tsv", sep="\t")
    row = contrasts[(contrasts["roi"] == "visual") & (contrasts["other"] == "noise")].iloc[0]
    assert row["extra_cost"] == pytest.approx(0.2, abs=0.01) and row["significant"]


def test_run_group_summary_with_a_single_roi_writes_no_contrasts(tmp_path, rng):
    """Regression (Sherlock's PMC-only subset): pooled contrasts concatenated an empty list and crashed."""
    summaries = [_summary(tmp_path, "s1", 0.2, True), _summary(tmp_path, "s2", 0.6, False)]
    per_tr = [_per_tr(tmp_path / s, rng, 0.1, rois=("visual",)) for s in ("s1", "s2")]
    group = read_json(run_group_summary(summaries, tmp_path, per_tr, n_bootstrap=100, block_trs=4))
    assert group["pooled_lesions"]["ridge/measured_bold"]["video"]["visual"]["significant"]
    contrasts = pd.read_csv(tmp_path / "group_summary_lesion_contrasts.tsv", sep="\t")
    assert contrasts.empty and "extra_cost" in contrasts.columns


def test_group_tests_compare_subjects_scores_with_their_reference():
    table = pd.DataFrame({"s1": [0.70, 0.5, 0.20, 0.9], "s2": [0.72, 0.5, 0.25, 0.1], "s3": [0.68, 0.5, 0.15, 0.5]},
                         index=["decoding/ridge/measured_bold/video/rank_accuracy/score",
                                "decoding/ridge/measured_bold/video/rank_accuracy/chance",
                                "encoding/ridge/rois/visual/r", "encoding/ridge/rois/visual/p"])
    tests = group_tests(table).set_index("number")
    assert list(tests.index) == ["decoding/ridge/measured_bold/video/rank_accuracy/score",
                                 "encoding/ridge/rois/visual/r"]
    decoding = tests.loc["decoding/ridge/measured_bold/video/rank_accuracy/score"]
    assert decoding["reference"] == 0.5 and decoding["mean_minus_reference"] == pytest.approx(0.2)
    assert decoding["p"] < 0.01 and decoding["n_subjects"] == 3
    assert tests.loc["encoding/ridge/rois/visual/r", "p"] < 0.05
