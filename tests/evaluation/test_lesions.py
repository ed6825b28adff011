"""Lesion masks, silencing, paired bootstrap effects and lesion contrasts."""

import functools

import numpy as np
import pandas as pd
import pytest
import torch

from giblet.evaluation.decoding import autoencoder_views, score_views
from giblet.evaluation.lesions import compare_lesions, correct_lesion_tests, lesion_effects, lesion_masks, silence
from giblet.evaluation.targets import decoding_targets
from giblet.models import lesion
from giblet.splits import BLOCKS


def test_lesion_masks_roi_and_complement():
    membership = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], bool)
    masks = lesion_masks(("a", "b"), membership)
    assert list(masks) == [("a", "roi"), ("a", "complement"), ("b", "roi"), ("b", "complement")]
    assert masks["a", "roi"].tolist() == [True, True, False, False]
    assert masks["a", "complement"].tolist() == [False, False, True, True]
    whole = lesion_masks(("pmc",), np.ones((4, 1), bool))  # a ROI of every voxel: its complement silences nothing
    assert list(whole) == [("pmc", "roi")]


def test_silence_replaces_only_the_roi_with_its_training_mean(rng):
    bold = rng.standard_normal((6, 4)).astype(np.float32)
    mask = np.array([False, True, True, False])
    out = silence(bold, mask, "mean", mean=np.array([9, 8, 7, 6], np.float32), std=np.ones(4, np.float32))
    np.testing.assert_array_equal(out[:, [0, 3]], bold[:, [0, 3]])
    assert (out[:, 1] == 8).all() and (out[:, 2] == 7).all()


def test_silence_noise_is_seeded(rng):
    bold = np.zeros((5, 3), np.float32)
    args = (np.ones(3, bool), "noise", np.zeros(3, np.float32), np.ones(3, np.float32))
    np.testing.assert_array_equal(silence(bold, *args, seed=1), silence(bold, *args, seed=1))
    assert not np.array_equal(silence(bold, *args, seed=1), silence(bold, *args, seed=2))


def test_lesion_effect_is_zero_for_an_empty_roi(pipeline, movie_data, model):
    rows = np.flatnonzero(movie_data.labels == BLOCKS.index("test"))
    targets = decoding_targets(movie_data, pipeline["features_dir"], rows, model.audio_head)
    empty = np.zeros(movie_data.bold["sub-a"].shape[1], bool)
    n_voxels = len(empty)
    silenced = silence(movie_data.bold["sub-a"], empty, "noise", np.zeros(n_voxels), np.ones(n_voxels))
    on_layer = functools.partial(lesion, roi=torch.from_numpy(empty), mode="mean", mean=torch.zeros(n_voxels))
    for source, kwargs in (("measured_bold", {"bold": silenced}), ("predicted_bold", {"lesion": on_layer})):
        intact = autoencoder_views(model, movie_data, "sub-a", targets, source=source)
        lesioned = autoencoder_views(model, movie_data, "sub-a", targets, source=source, **kwargs)
        for modality in intact:
            effects = lesion_effects(score_views(intact[modality], targets), score_views(lesioned[modality], targets),
                                     n_bootstrap=100)
            for row in effects:
                assert (row["change"], row["ci_low"], row["ci_high"], row["significant"]) == (0.0, 0.0, 0.0, False)


def test_lesion_effect_of_a_damaging_lesion_is_significant(rng):
    intact = {"rank_accuracy": ("thumbs", rng.uniform(0.6, 1.0, 40))}
    lesioned = {"rank_accuracy": ("thumbs", intact["rank_accuracy"][1] - 0.2 + 0.05 * rng.standard_normal(40))}
    (row,) = lesion_effects(intact, lesioned, n_bootstrap=500, block_trs=4)
    assert row["change"] == pytest.approx(-0.2, abs=0.03) and row["ci_high"] < 0 and row["significant"]
    assert row["intact"] - row["lesioned"] == pytest.approx(-row["change"])


def test_compare_lesions_finds_the_costlier_lesion(rng):
    intact = rng.uniform(0.5, 1.0, 30)
    frames = [pd.DataFrame({"model": "autoencoder", "input": "measured_bold", "roi": roi, "part": "roi",
                            "modality": "video", "metric": "rank_accuracy", "tr": np.arange(30), "intact": intact,
                            "lesioned": intact - cost + 0.02 * rng.standard_normal(30)})
              for roi, cost in (("visual", 0.3), ("auditory", 0.0))]
    table = compare_lesions(pd.concat(frames), {"roi": "visual", "part": "roi"}, {"roi": "auditory", "part": "roi"},
                            n_bootstrap=500)
    (row,) = table.to_dict("records")
    assert row["extra_cost"] == pytest.approx(0.3, abs=0.03) and row["ci_low"] > 0 and row["significant"]
    assert (row["model"], row["modality"], row["metric"]) == ("autoencoder", "video", "rank_accuracy")


def test_lesion_tests_are_corrected_over_the_table(rng):
    """Many null lesions: uncorrected intervals flag about 5 % of them; the corrected table flags none, and keeps
    a real cost."""
    rows = []
    for i in range(200):
        intact = {"rank_accuracy": ("x", rng.uniform(0, 1, 120))}
        shift = 0.2 if i == 0 else 0.0
        lesioned = {"rank_accuracy": ("x", intact["rank_accuracy"][1] - shift + 0.05 * rng.standard_normal(120))}
        rows += lesion_effects(intact, lesioned, n_bootstrap=500, seed=i)
    table = pd.DataFrame(rows)
    assert table["significant"].iloc[1:].sum() >= 2  # uncorrected: chance finds some
    corrected = correct_lesion_tests(table)
    assert corrected["significant"].iloc[0] and not corrected["significant"].iloc[1:].any()
    assert (corrected["q"] >= corrected["p"]).all()
