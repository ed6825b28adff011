"""Decoding views and scores: bits per code, TR identification, retrieval, chance, baselines and nulls."""

import copy

import numpy as np
import pytest
import torch

from giblet.audio.views import pooled_from_usage
from giblet.evaluation.decoding import (
    audio_views,
    autoencoder_views,
    baseline_views,
    chance_levels,
    decoding_rows,
    ridge_views,
    score_views,
    shifted_scores,
    truth_views,
)
from giblet.evaluation.lesions import lesion_statistics, lesioned_inputs
from giblet.evaluation.targets import SoundClasses, decoding_targets, sound_classes
from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.training.baselines import decoding_design
from tests.models.conftest import DEVICES


@pytest.fixture(scope="module")
def targets(pipeline, movie_data, model):
    rows = np.flatnonzero(movie_data.labels == BLOCKS.index("test"))
    return decoding_targets(movie_data, pipeline["features_dir"], rows, model.audio_head)


def test_decoding_targets_count_every_frame_and_read_the_oracle_at_the_true_descriptor(movie_data, model, targets):
    counts = targets.views["code_counts"]
    assert counts.shape == (targets.n_trs, 3, 64)
    frames = movie_data.stimulus["audio_mask"][targets.rows].sum(-1)
    np.testing.assert_array_equal(counts.sum(-1), np.repeat(frames[:, None], 3, axis=1))
    with torch.no_grad():
        oracle = model.audio_head(torch.as_tensor(targets.views["descriptor"], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(targets.views["code_log_probs"], oracle, atol=1e-6)


def _one_code_trs(targets, n_trs=2):
    """Targets of ``n_trs`` TRs whose every frame uses code ``t`` in every codebook (TR t); only TR 0 sounds."""
    size = targets.log_prior.shape[1]
    counts = np.zeros((n_trs, 3, size))
    for t in range(n_trs):
        counts[t, :, t] = 112
    sounding = counts.copy()
    sounding[1:] = 0
    return type(targets)(**{**targets.__dict__, "rows": targets.rows[:n_trs],
                            "views": {"code_counts": counts, "sounding_counts": sounding}})


def test_bits_per_code_hand_computed(targets):
    sub = _one_code_trs(targets)
    prior = np.exp(targets.log_prior)
    log_probs = np.log(np.full((2, 3, 64), 0.5 / 63))
    log_probs[0, :, 0] = np.log(0.5)  # TR 0: half the mass on its code in every codebook
    log_probs[1, 0, 1] = np.log(0.5)  # TR 1: on its code in codebook 0 only
    scores = score_views({"code_log_probs": log_probs}, sub)
    expected_0 = np.mean(-np.log2(prior[:, 0]) - 1)  # -log2 prior - (-log2 0.5)
    expected_1 = np.mean(-np.log2(prior[:, 1]) + np.log2([0.5, 0.5 / 63, 0.5 / 63]))
    np.testing.assert_allclose(scores["bits_per_code"][1], [expected_0, expected_1])
    np.testing.assert_allclose(scores["bits_per_code_cb0"][1], -np.log2(prior[0, :2]) - 1)
    assert scores["bits_per_code"][0] == "code_log_probs"
    prior_scores = score_views(baseline_views({"code_log_probs": log_probs}, sub), sub)
    np.testing.assert_array_equal(prior_scores["bits_per_code"][1], [0.0, 0.0])  # the prior gains nothing
    per_second = 112 * 3 * np.array([expected_0, expected_1]) / targets.tr_s  # 3 codebooks x 112 frames per TR
    np.testing.assert_allclose(scores["bits_per_second"][1], per_second)


def test_top_k_code_accuracy_counts_only_the_frames_that_sound(targets):
    sub = _one_code_trs(targets)
    log_probs = np.log(np.full((2, 3, 64), 1 / 64))
    log_probs[0, :, 5] = np.log(0.2)  # TR 0 ranks code 5 first and its own code 0 second in every codebook
    log_probs[0, :, 0] = np.log(0.1)
    log_probs[1, :, 1] = np.log(0.9)  # TR 1 is right, but silent: not scored
    scores = score_views({"code_log_probs": log_probs}, sub)
    np.testing.assert_array_equal(scores["code_top1_sounding"][1], [0.0, np.nan])
    np.testing.assert_array_equal(scores["code_top5_sounding"][1], [1.0, np.nan])
    chance = chance_levels(["code_top1_sounding", "code_top5_sounding", "bits_per_second"], sub)
    assert chance == {"code_top1_sounding": 1 / 64, "code_top5_sounding": 5 / 64, "bits_per_second": 0.0}


def test_balanced_sound_class_accuracy_weights_every_class_alike(targets):
    classes = SoundClasses(("speech", "music"), np.array([0, 0, 0, 1, -1]), np.array([[1.0, 0.0], [-1.0, 0.0]]))
    true = np.array([[2.0, 1.0], [2.0, -1.0], [2.0, 1.0], [-2.0, -1.0], [0.0, 0.0]])
    sub = type(targets)(**{**targets.__dict__, "rows": targets.rows[:5], "views": {"descriptor": true},
                           "sound_classes": classes})
    decoded = true.copy()
    decoded[2, 0] = -2.0  # speech TR 2 decoded as music: 2 of 3 speech TRs and the music TR right
    scores = score_views({"descriptor": decoded}, sub)["sound_class_balanced_accuracy"][1]
    assert np.isnan(scores[4])  # no label covers TR 4
    assert np.nanmean(scores) == pytest.approx((2 / 3 + 1) / 2)
    assert chance_levels(["sound_class_balanced_accuracy"], sub)["sound_class_balanced_accuracy"] == 0.5


def test_sound_classes_take_each_trs_majority_label_and_training_centroids(tmp_path):
    names = ("scene=room", "sound=music", "sound=silence", "sound=speech")
    values = np.array([[1, 0.7, 0, 0.3], [1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [1, 0.2, 0, 0.8]], np.float32)
    path = FeatureTable(values, np.arange(5) * 1.5, names, "labels").save(tmp_path / "labels_tr.npz")
    descriptor = np.array([[1.0], [3.0], [5.0], [7.0], [9.0]])
    train = np.array([True, True, False, True, False])  # no silent training TR: silence is not a class
    classes = sound_classes(path, "sound", descriptor, train, np.arange(5))
    assert classes.names == ("music", "speech")
    np.testing.assert_array_equal(classes.labels, [0, 1, -1, -1, 1])
    z = (descriptor[:, 0] - descriptor[train, 0].mean()) / descriptor[train, 0].std()
    np.testing.assert_allclose(classes.centroids[:, 0], [z[0], z[1]])
    with pytest.raises(ValueError, match="no label column 'speaker'.*'scene', 'sound'"):
        sound_classes(path, "speaker", descriptor, train, np.arange(5))


def test_score_views_of_the_truth_is_the_oracle_and_perfect_identification(targets):
    views = {k: targets.views[k] for k in ("descriptor", "code_log_probs", "pooled")}
    scores = score_views(truth_views(views, targets), targets)
    for metric in ("rank_accuracy", "top1_identification", "descriptor_rank_accuracy", "descriptor_r"):
        assert np.nanmean(scores[metric][1]) == pytest.approx(1.0), metric
    assert scores["rank_accuracy"][0] == "pooled" and scores["descriptor_rank_accuracy"][0] == "descriptor"
    assert np.nanmean(scores["bits_per_code"][1]) > 0  # the code model from the true descriptor beats its prior


def test_a_descriptor_decoded_the_same_at_every_tr_scores_r_0(targets):
    views = truth_views({k: targets.views[k] for k in ("descriptor", "code_log_probs", "pooled")}, targets)
    views["descriptor"] = np.broadcast_to(views["descriptor"][:1], views["descriptor"].shape).copy()
    scores = score_views(views, targets)
    np.testing.assert_array_equal(scores["descriptor_r"][1], 0.0)


def test_pooled_view_of_true_codes_matches_the_audio_stage(pipeline, targets):
    # the decoded pooled view is computed like audio_pooled.npz: identical for the usage of the true codes
    counts = targets.views["code_counts"]
    pooled = pooled_from_usage(counts / counts.sum(-1, keepdims=True), targets.codebook_vectors)
    expected = FeatureTable.load(pipeline["features_dir"] / "audio_pooled.npz").values[targets.rows]
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)


def test_audio_views_are_the_code_model_at_the_descriptor_and_its_expected_pooled_vectors(model, targets, rng):
    descriptor = targets.views["descriptor"][:5] + rng.standard_normal((5, targets.views["descriptor"].shape[1]))
    views = audio_views(descriptor, targets)
    with torch.no_grad():
        log_probs = model.audio_head(torch.as_tensor(descriptor, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(views["code_log_probs"], log_probs, atol=1e-6)
    probs, vectors = np.exp(log_probs[2].astype(np.float64)), targets.codebook_vectors
    per_codebook = [probs[q] @ vectors[q] for q in range(3)]  # the expected code vector of TR 2, per codebook
    np.testing.assert_allclose(views["pooled"][2], np.concatenate([*per_codebook, sum(per_codebook)]), rtol=1e-5)


def test_baseline_views_are_constant_and_score_at_chance(targets):
    views = {"thumbs": targets.views["thumbs"], "embedding": targets.views["embedding"]}
    baseline = baseline_views(views, targets)
    assert np.ptp(baseline["thumbs"], axis=0).max() == 0
    scores = score_views(baseline, targets)
    assert np.nanmean(scores["rank_accuracy"][1]) == 0.5


def test_chance_levels(targets):
    chance = chance_levels(["bits_per_code", "bits_per_code_cb2", "rank_accuracy", "descriptor_rank_accuracy",
                            "top1_identification", "ssim", "retrieval_accuracy"], targets)
    assert chance["bits_per_code"] == chance["bits_per_code_cb2"] == 0.0  # the prior gains nothing
    assert chance["rank_accuracy"] == chance["descriptor_rank_accuracy"] == 0.5
    assert chance["top1_identification"] == 1 / targets.n_trs and np.isnan(chance["ssim"])
    # 5 distinct texts over 10 segments: a random segment has the right text 2 times in 10 (or more at joins)
    assert 0.2 <= chance["retrieval_accuracy"] < 0.5


def test_decoding_rows_null_centred_on_chance_with_shuffled_targets(targets, rng):
    shuffled = {"video": {"lowlevel": targets.views["lowlevel"][rng.permutation(targets.n_trs)]}}
    rows = {r["metric"]: r for r in decoding_rows("ridge", "measured_bold", shuffled, targets, n_permutations=100)}
    assert rows["rank_accuracy"]["null_mean"] == pytest.approx(0.5, abs=0.05)
    assert rows["rank_accuracy"]["chance"] == 0.5 and rows["rank_accuracy"]["baseline"] == 0.5
    assert rows["rank_accuracy"]["ceiling"] == 1.0
    assert rows["rank_accuracy"]["ci_low"] < 0.5 < rows["rank_accuracy"]["ci_high"]  # chance inside the interval


def test_decoding_rows_perfect_identification_has_minimal_p(targets):
    perfect = {"video": {"lowlevel": targets.views["lowlevel"]}}
    rows = {r["metric"]: r for r in decoding_rows("ridge", "measured_bold", perfect, targets, n_permutations=100)}
    assert rows["rank_accuracy"]["score"] == 1.0
    assert rows["rank_accuracy"]["p"] == pytest.approx(1 / targets.n_trs)  # all n - 1 shifts score lower
    assert rows["rank_accuracy"]["ci_low"] == rows["rank_accuracy"]["ci_high"] == 1.0


def test_shifted_scores_are_the_scores_of_the_rolled_decoding(model, movie_data, targets):
    views = autoencoder_views(model, movie_data, "sub-a", targets)
    shifts = [0, 3, targets.n_trs - 1]
    for modality, by_view in views.items():
        shifted = shifted_scores(by_view, targets, shifts)
        for i, shift in enumerate(shifts):
            rolled = score_views({v: np.roll(x, shift, axis=0) for v, x in by_view.items()}, targets)
            assert set(rolled) == set(shifted)
            for metric, (view, scores) in rolled.items():
                assert shifted[metric][0] == view
                np.testing.assert_allclose(shifted[metric][1][i], scores, atol=1e-12, err_msg=f"{modality} {metric}")
        if modality == "video":  # a shift pairs other TRs: the scores change
            assert not np.allclose(shifted["ssim"][1][1], shifted["ssim"][1][0])


def test_text_retrieval_of_true_segment_embeddings(targets):
    scores = score_views({"embedding": targets.views["embedding"]}, targets)
    assert np.nanmean(scores["retrieval_accuracy"][1]) == 1.0


def test_autoencoder_views_decode_sound_through_the_window_decoder_and_code_model(model, movie_data, targets):
    views = autoencoder_views(model, movie_data, "sub-a", targets)
    assert set(views) == {"audio", "video", "text"}
    assert views["audio"]["descriptor"].shape == targets.views["descriptor"].shape
    expected = audio_views(views["audio"]["descriptor"], targets)
    for view in ("code_log_probs", "pooled"):
        np.testing.assert_allclose(views["audio"][view], expected[view], rtol=1e-6)
    assert views["video"]["thumbs"].shape == (targets.n_trs, 3, 8, 12)
    assert views["text"]["embedding"].shape == (targets.n_trs, 6)


def test_autoencoder_views_from_measured_bold_use_only_test_bold(model, movie_data, targets):
    bold = movie_data.bold["sub-a"].copy()
    bold[movie_data.labels != BLOCKS.index("test")] = 100.0  # other blocks never reach the decoder
    a = autoencoder_views(model, movie_data, "sub-a", targets)
    b = autoencoder_views(model, movie_data, "sub-a", targets, bold=bold)
    for modality, view in (("video", "thumbs"), ("audio", "descriptor")):
        np.testing.assert_array_equal(a[modality][view], b[modality][view])


def test_autoencoder_views_reject_unknown_source(model, movie_data, targets):
    with pytest.raises(ValueError, match="source"):
        autoencoder_views(model, movie_data, "sub-a", targets, source="stimulus")


def test_ridge_views_predict_each_modality(pipeline, movie_data, targets):
    import joblib

    baselines = joblib.load(pipeline["baselines_path"])["sub-a"]
    design = decoding_design(movie_data.bold["sub-a"], movie_data.bold_valid["sub-a"], movie_data.labels,
                             movie_data.runs, "test", baselines["decoder_delays_trs"])[0]
    decoders = {m: d.materialise(movie_data.bold["sub-a"]) for m, d in baselines["decoders"].items()}
    views = ridge_views(decoders, design[targets.rows], targets)
    assert views["video"]["lowlevel"].shape == targets.views["lowlevel"].shape
    assert views["text"]["embedding"].shape == targets.views["embedding"].shape
    assert views["audio"]["descriptor"].shape == targets.views["descriptor"].shape
    assert views["audio"]["pooled"].shape == targets.views["pooled"].shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["mean", "noise"])
def test_autoencoder_views_and_lesions_run_on_each_device(model, movie_data, targets, device, mode):
    on_device = copy.deepcopy(model).to(device)
    views = autoencoder_views(on_device, movie_data, "sub-a", targets, device=device)
    on_cpu = autoencoder_views(model, movie_data, "sub-a", targets)
    np.testing.assert_allclose(views["text"]["embedding"], on_cpu["text"]["embedding"], atol=1e-4)
    mask = np.zeros(movie_data.bold["sub-a"].shape[1], bool)
    mask[:5] = True  # the visual ROI
    stats = lesion_statistics(on_device, movie_data, "sub-a", device)
    silenced, on_layer = lesioned_inputs(movie_data, "sub-a", mask, mode, stats, 0, device)
    lesioned = autoencoder_views(on_device, movie_data, "sub-a", targets, source="predicted_bold", lesion=on_layer,
                                 device=device)
    intact = autoencoder_views(on_device, movie_data, "sub-a", targets, source="predicted_bold", device=device)
    assert not np.allclose(lesioned["video"]["thumbs"], intact["video"]["thumbs"])
    assert np.isfinite(silenced).all() and not np.allclose(silenced[:, :5], movie_data.bold["sub-a"][:, :5])
