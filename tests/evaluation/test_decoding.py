"""Decoding views and scores: top-k codes, TR identification, retrieval, chance, baselines and nulls."""

import copy

import numpy as np
import pytest
import torch

from giblet.evaluation.decoding import (
    autoencoder_views,
    baseline_views,
    chance_levels,
    code_topk,
    decoding_rows,
    decoding_targets,
    expected_pooled,
    pooled_from_usage,
    ridge_views,
    sample_codes,
    score_views,
    truth_views,
)
from giblet.evaluation.stage import _lesion_statistics, _lesioned_inputs
from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.training.baselines import decoding_design
from tests.models.conftest import DEVICES


@pytest.fixture(scope="module")
def targets(pipeline, movie_data):
    rows = np.flatnonzero(movie_data.labels == BLOCKS.index("test"))
    return decoding_targets(movie_data, pipeline["features_dir"], rows)


def test_decoding_targets_unigram_is_most_frequent_training_code(movie_data, targets):
    train = movie_data.labels == BLOCKS.index("train")
    codes, mask = movie_data.stimulus["audio_codes"][train], movie_data.stimulus["audio_mask"][train]
    for q in range(codes.shape[1]):
        counts = np.bincount(codes[:, q][mask], minlength=64)
        assert targets.unigram[q, 0] == counts.argmax()
        assert counts[targets.unigram[q, 1]] == np.sort(counts)[-2]


def test_code_scores_hand_computed(targets):
    truth = targets.views["codes"][:2].transpose(0, 2, 1)  # (2, width, n_codebooks)
    mask = targets.views["code_mask"][:2]
    top = (truth[..., None] + np.arange(1, 6)) % 64  # never the true code
    top[0, :, :, 0] = truth[0]  # TR 0: every code right at rank 1
    top[1, :, 0, 3] = truth[1, :, 0]  # TR 1: codebook 0 right at rank 4, the others never
    sub = type(targets)(**{**targets.__dict__, "rows": targets.rows[:2],
                           "views": {"codes": targets.views["codes"][:2], "code_mask": mask}})
    scores = score_views({"codes": top, "code_mask": mask}, sub)
    n_cb = truth.shape[2]
    assert scores["top1"][1].tolist() == [1.0, 0.0]
    assert scores["top5"][1].tolist() == [1.0, pytest.approx(1 / n_cb)]
    assert scores["top5_cb0"][1].tolist() == [1.0, 1.0] and scores["top1_cb0"][0] == "codes"


def test_score_views_of_the_truth_is_perfect(targets):
    views = {"codes": np.zeros((targets.n_trs, 2, 3, 5), np.int64), "code_mask": targets.views["code_mask"],
             "pooled": targets.views["pooled"]}
    scores = score_views(truth_views(views, targets), targets)
    for metric in ("top1", "top5", "rank_accuracy", "top1_identification"):
        assert np.nanmean(scores[metric][1]) == 1.0


def _usage(codes, mask, size):
    """Per-TR fraction of valid frames using each code: codes (n_trs, width, n_codebooks)."""
    onehot = np.eye(size)[codes] * mask[..., None, None]
    return onehot.sum(axis=1) / mask.sum(axis=1)[:, None, None]


def test_pooled_view_of_true_codes_matches_the_audio_stage(pipeline, targets):
    # the decoded pooled view is computed like audio_pooled.npz: identical for the usage of the true codes
    codes, mask = targets.views["codes"].transpose(0, 2, 1), targets.views["code_mask"]
    pooled = pooled_from_usage(_usage(codes, mask, 64), targets.codebook_vectors)
    expected = FeatureTable.load(pipeline["features_dir"] / "audio_pooled.npz").values[targets.rows]
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)


def test_expected_pooled_of_a_certain_head_is_the_pooled_view_of_its_top1_codes(model, targets):
    latent = torch.randn(10, 113, model.config.codebook_dim)
    mask = targets.views["code_mask"][:10]
    vectors = targets.codebook_vectors
    with torch.no_grad():
        soft = expected_pooled(model, latent, mask, vectors)
        model.audio_head.log_scale += 15.0  # logits x 3e6: every softmax is one-hot
        top1 = code_topk(model, latent, k=1)[..., 0]
        certain = expected_pooled(model, latent, mask, vectors)
        model.audio_head.log_scale -= 15.0
    np.testing.assert_allclose(certain, pooled_from_usage(_usage(top1, mask, 64), vectors), rtol=1e-4, atol=1e-5)
    assert np.abs(soft - certain).max() > 1e-3  # an uncertain head's expectation is no top-1 pooling


def test_baseline_views_are_constant_and_score_at_chance(targets):
    views = {"thumbs": targets.views["thumbs"], "embedding": targets.views["embedding"]}
    baseline = baseline_views(views, targets)
    assert np.ptp(baseline["thumbs"], axis=0).max() == 0
    scores = score_views(baseline, targets)
    assert np.nanmean(scores["rank_accuracy"][1]) == 0.5


def test_chance_levels(targets):
    chance = chance_levels(["top1", "top5_cb2", "rank_accuracy", "top1_identification", "ssim", "retrieval_accuracy"],
                           targets, codebook_size=64)
    assert chance["top1"] == 1 / 64 and chance["top5_cb2"] == 5 / 64 and chance["rank_accuracy"] == 0.5
    assert chance["top1_identification"] == 1 / targets.n_trs and np.isnan(chance["ssim"])
    # 5 distinct texts over 10 segments: a random segment has the right text 2 times in 10 (or more at joins)
    assert 0.2 <= chance["retrieval_accuracy"] < 0.5


def test_decoding_rows_null_centred_on_chance_with_shuffled_targets(targets, rng):
    shuffled = {"video": {"lowlevel": targets.views["lowlevel"][rng.permutation(targets.n_trs)]}}
    rows = {r["metric"]: r for r in decoding_rows("ridge", "measured_bold", shuffled, targets, n_permutations=100)}
    assert rows["rank_accuracy"]["null_mean"] == pytest.approx(0.5, abs=0.05)
    assert rows["rank_accuracy"]["chance"] == 0.5 and rows["rank_accuracy"]["baseline"] == 0.5
    assert rows["rank_accuracy"]["ceiling"] == 1.0


def test_decoding_rows_perfect_identification_has_minimal_p(targets):
    perfect = {"video": {"lowlevel": targets.views["lowlevel"]}}
    rows = {r["metric"]: r for r in decoding_rows("ridge", "measured_bold", perfect, targets, n_permutations=100)}
    assert rows["rank_accuracy"]["score"] == 1.0
    assert rows["rank_accuracy"]["p"] == pytest.approx(1 / targets.n_trs)  # all n - 1 shifts score lower


def test_text_retrieval_of_true_segment_embeddings(targets):
    scores = score_views({"embedding": targets.views["embedding"]}, targets)
    assert np.nanmean(scores["retrieval_accuracy"][1]) == 1.0


def test_autoencoder_views_codes_are_the_logits_argmax(model, movie_data, targets):
    views = autoencoder_views(model, movie_data, "sub-a", targets)
    assert set(views) == {"audio", "video", "text"}
    codes = views["audio"]["codes"]
    assert codes.shape == (targets.n_trs, 113, 3, 5) and codes.dtype == np.int64
    latent = torch.randn(4, 113, model.config.codebook_dim)
    with torch.no_grad():
        expected = model.audio_head.logits(latent).argmax(-1).numpy()
    np.testing.assert_array_equal(code_topk(model, latent)[..., 0], expected)
    assert views["video"]["thumbs"].shape == (targets.n_trs, 3, 8, 12)
    assert views["text"]["embedding"].shape == (targets.n_trs, 6)


def test_autoencoder_views_from_measured_bold_use_only_test_bold(model, movie_data, targets):
    bold = movie_data.bold["sub-a"].copy()
    bold[movie_data.labels != BLOCKS.index("test")] = 100.0  # other blocks never reach the decoder
    a = autoencoder_views(model, movie_data, "sub-a", targets)
    b = autoencoder_views(model, movie_data, "sub-a", targets, bold=bold)
    np.testing.assert_array_equal(a["video"]["thumbs"], b["video"]["thumbs"])


def test_autoencoder_views_reject_unknown_source(model, movie_data, targets):
    with pytest.raises(ValueError, match="source"):
        autoencoder_views(model, movie_data, "sub-a", targets, source="stimulus")


def test_ridge_views_predict_each_modality(pipeline, movie_data, targets):
    import joblib

    baselines = joblib.load(pipeline["baselines_path"])["sub-a"]
    design = decoding_design(movie_data.bold["sub-a"], movie_data.bold_valid["sub-a"], movie_data.labels,
                             movie_data.runs, "test", baselines["decoder_delays_trs"])[0]
    views = ridge_views(baselines["decoders"], design[targets.rows], targets)
    assert views["video"]["lowlevel"].shape == targets.views["lowlevel"].shape
    assert views["text"]["embedding"].shape == targets.views["embedding"].shape
    assert views["audio"]["pooled"].shape == targets.views["pooled"].shape


def test_sample_codes_follow_the_head_probabilities_and_repeat_for_a_seed(model):
    latent = torch.randn(1, 113, model.config.codebook_dim).expand(40, -1, -1)  # 40 TRs alike: 4520 draws per slot
    draws = sample_codes(model, latent, seed=3)
    np.testing.assert_array_equal(draws, sample_codes(model, latent, seed=3))
    assert not np.array_equal(draws, sample_codes(model, latent, seed=4))
    with torch.no_grad():
        probs = model.audio_head.logits(latent[:1]).softmax(-1)[0].mean(0).numpy()  # (n_codebooks, codebook_size)
    for q in range(probs.shape[0]):
        observed = np.bincount(draws[..., q].ravel(), minlength=probs.shape[1]) / draws[..., q].size
        assert np.abs(observed - probs[q]).max() < 0.03, q


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["mean", "noise"])
def test_autoencoder_views_and_lesions_run_on_each_device(model, movie_data, targets, device, mode):
    on_device = copy.deepcopy(model).to(device)
    views = autoencoder_views(on_device, movie_data, "sub-a", targets, device=device)
    on_cpu = autoencoder_views(model, movie_data, "sub-a", targets)
    np.testing.assert_allclose(views["text"]["embedding"], on_cpu["text"]["embedding"], atol=1e-4)
    mask = np.zeros(movie_data.bold["sub-a"].shape[1], bool)
    mask[:5] = True  # the visual ROI
    stats = _lesion_statistics(on_device, movie_data, "sub-a", device)
    silenced, on_layer = _lesioned_inputs(movie_data, "sub-a", mask, mode, stats, 0, device)
    lesioned = autoencoder_views(on_device, movie_data, "sub-a", targets, source="predicted_bold", lesion=on_layer,
                                 device=device)
    intact = autoencoder_views(on_device, movie_data, "sub-a", targets, source="predicted_bold", device=device)
    assert not np.allclose(lesioned["video"]["thumbs"], intact["video"]["thumbs"])
    assert np.isfinite(silenced).all() and not np.allclose(silenced[:, :5], movie_data.bold["sub-a"][:, :5])
