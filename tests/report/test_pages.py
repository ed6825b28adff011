"""Pieces of the subject and group pages: neighbour links, per-subject numbers, the lesion heatmap's metric."""

import json

import numpy as np
import pandas as pd

from giblet.report.figures import _pool
from giblet.report.audio import lesion_label
from giblet.report.group_page import _cross_validation_tables, _group_encoding, _per_subject
from giblet.report.html import _ground_truth_checks, _lesion_figures, _neighbours


def test_neighbours_link_the_previous_and_next_subject():
    assert _neighbours("s2", ["s1", "s2", "s3"]) == ("s1", "s3")
    assert _neighbours("s1", ["s1", "s2", "s3"]) == (None, "s2")
    assert _neighbours("s3", ["s1", "s2", "s3"]) == ("s2", None)
    assert _neighbours("s1", None) == (None, None)


def test_per_subject_table_keeps_encoding_and_decoding_headlines_of_every_subject():
    values = {"s1": 0.1, "s2": 0.3}
    group = {"numbers": {key: {"mean": 0.2, "values": values} for key in (
        "encoding/autoencoder/rois/pmc/r", "encoding/ridge/rois/pmc/ceiling", "encoding/ridge/rois/pmc/p",
        "decoding/ridge/measured_bold/text/rank_accuracy/score", "decoding/ridge/measured_bold/text/rank_accuracy/p",
        "decoding/ridge/predicted_bold/text/rank_accuracy/score")}}
    table = _per_subject(group, ["s1", "s2"])
    assert table["number"].tolist() == ["encoding/autoencoder/rois/pmc/r", "encoding/ridge/rois/pmc/ceiling",
                                        "decoding/ridge/measured_bold/text/rank_accuracy/score"]
    assert table[["s1", "s2", "mean"]].iloc[0].tolist() == [0.1, 0.3, 0.2]


def test_lesion_heatmap_shows_identification_for_every_modality(monkeypatch):
    shown = {}
    monkeypatch.setattr("giblet.report.figures.lesion_heatmap", lambda pivot, title: shown.update(pivot=pivot,
                                                                                                  title=title))
    rows = [{"model": "autoencoder", "input": "measured_bold", "roi": roi, "part": "roi", "modality": modality,
             "metric": metric, "change": change}
            for roi in ("auditory", "visual")
            for modality, metric, change in (("audio", "code_top1", 0.0), ("audio", "rank_accuracy", -0.2),
                                             ("video", "rank_accuracy", -0.1))]
    _lesion_figures(pd.DataFrame(rows))
    assert "audio: rank_accuracy" in shown["title"] and "video: rank_accuracy" in shown["title"]
    assert shown["pivot"].loc["auditory (roi)", "audio"] == -0.2


def test_lesion_players_say_which_signal_and_region_were_silenced():
    assert lesion_label("lesion-auditory-roi_measured_bold") == "(d) measured BOLD, auditory silenced"
    assert lesion_label("lesion-visual-complement_predicted_bold") == "(d) predicted BOLD, all but visual silenced"


def test_spectrogram_bins_are_pooled_to_what_a_page_shows():
    values = np.arange(2 * 1000, dtype=float).reshape(2, 1000)
    pooled = _pool(values, 400, axis=1)
    assert pooled.shape == (2, 333)  # runs of 3 columns
    np.testing.assert_allclose(pooled[0, :2], [1.0, 4.0])
    assert _pool(values, 5, axis=0) is values


def test_ground_truth_checks_compare_the_declared_answers():
    truth = {"expected_loso_isc": {"visual": [0.3, 0.7], "noise": [-0.15, 0.15]},
             "roi_drivers": {"visual": "video", "noise": None}}
    encoding = pd.DataFrame([
        {"roi": "visual", "model": "autoencoder", "r": 0.5, "r_ci_low": 0.3, "r_ci_high": 0.6},
        {"roi": "noise", "model": "autoencoder", "r": 0.2, "r_ci_low": 0.05, "r_ci_high": 0.3},
        {"roi": "visual", "model": "ridge", "r": -0.1, "r_ci_low": -0.2, "r_ci_high": 0.0}])
    checks = _ground_truth_checks(truth, encoding, {"visual": 0.5, "noise": 0.2}).set_index("check")["pass"]
    assert checks.to_dict() == {"visual: whole-scan ISC in the declared range": True,
                                "noise: whole-scan ISC in the declared range": False,
                                "visual: encoded (driven by video)": True, "noise: not encoded (no driver)": False}


def test_group_encoding_gathers_every_subjects_roi_r_with_its_ceiling():
    group = {"numbers": {
        "encoding/ridge/rois/visual/r": {"values": {"s1": 0.4, "s2": None}},
        "encoding/ridge/rois/visual/ceiling": {"values": {"s1": 0.6, "s2": 0.5}},
        "encoding/ridge/rois/visual/p": {"values": {"s1": 0.01, "s2": 0.2}}}}
    table = _group_encoding(group)
    assert table.to_dict("records") == [{"roi": "visual", "model": "ridge", "subject": "s1", "r": 0.4, "ceiling": 0.6}]


def test_group_charts_show_uncertainty_and_every_subject():
    import pandas as pd

    from giblet.report.figures import group_encoding_bars, isc_bars

    rows = [{"roi": roi, "model": model, "subject": s, "r": r, "ceiling": 0.5}
            for roi in ("a", "b") for model in ("autoencoder", "ridge") for s, r in enumerate((0.1, 0.2, 0.3))]
    ax = group_encoding_bars(pd.DataFrame(rows)).axes[0]
    caps = [c for c in ax.containers if getattr(c, "errorbar", None) is not None]
    segments = caps[0].errorbar.lines[2][0].get_segments()  # the mean 0.2 +- t(0.975, 2) * SE 0.0577
    assert len(caps) == 2 and np.allclose([s[:, 1] for s in segments], [[0.2 - 0.2484, 0.2 + 0.2484]] * 2, atol=1e-3)
    assert sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o") == 12  # every subject's dot
    fig = isc_bars(["a", "b"], np.array([0.4, 0.1]), ci=np.array([[0.3, 0.0], [0.5, 0.2]]))
    assert any(c.__class__.__name__ == "ErrorbarContainer" for c in fig.axes[0].containers)


def test_cross_validation_tables_show_encoding_and_pooled_identification(tmp_path):
    encoding = {"autoencoder_r": 0.11, "ridge_r": 0.09, "ceiling": 0.3, "autoencoder_r_by_seed": [0.1, 0.12]}
    pooled = {"subject": "s1", "model": "ridge", "seed": None, "modality": "text", "view": "embedding",
              "rank_accuracy": 0.561, "chance": 0.5, "null_mean": 0.501, "p": 0.0004, "n_trs": 1900, "n_folds": 10}
    summary = {"group": {"pmc": encoding}, "subjects": [{"subject": "s1", "roi": "pmc", "autoencoder_r_seeds": [0.1]}],
               "identification": {"subjects": [pooled], "group": {"ridge/text/embedding": {
                   "rank_accuracy": 0.561, "chance": 0.5, "null_mean": 0.501, "n_subjects_p05_by_seed": [1],
                   "n_subjects": 1}}}}
    (tmp_path / "cv.json").write_text(json.dumps(summary))
    tables = _cross_validation_tables(tmp_path / "cv.json")
    assert "0.1, 0.12" not in tables["cv_group_table"] and "0.100, 0.120" in tables["cv_group_table"]
    assert "ridge/text/embedding" in tables["cv_identification_group"]
    assert "0.561" in tables["cv_identification_subjects"] and "1900" in tables["cv_identification_subjects"]
    assert set(_cross_validation_tables(None).values()) == {None}
