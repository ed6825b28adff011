"""The code model: p(codes of a TR | its audio descriptor), trained on audio alone."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from scipy.special import softmax

from giblet.audio.code_model import CodeModel, FitSettings, fit_code_model, select_code_model
from giblet.audio.code_model_stage import (
    CodeModelConfig,
    CodeScoreConfig,
    code_model_rows,
    run_fit_code_model,
    run_score_code_model,
)
from giblet.audio.code_sampling import sample_codes, sample_stream
from giblet.audio.code_scores import bits_per_code, code_counts, score_code_model, tr_cross_entropy
from giblet.audio.codes import PAD_CODE, CodeStream, codes_by_tr, tr_frame_spans
from giblet.config import SCHEMA_PATH
from giblet.features import FeatureTable
from giblet.fmri.prepared import PreparedFmri
from giblet.outputs import CODE_MODEL_OUTPUTS
from giblet.splits import BLOCKS, GAP, SplitConfig, make_split

TR_S, RATE_HZ = 1.5, 75.0
SPLIT = SplitConfig(fractions=(0.7, 0.15, 0.15), gap_s=6.0, min_gap_s=6.0)  # 4-TR gaps


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sound_classes(rng, n_trs, n_classes=2):
    """Class of every TR, in shots of 2-8 TRs."""
    classes = []
    while len(classes) < n_trs:
        classes += [int(rng.integers(n_classes))] * int(rng.integers(2, 9))
    return np.asarray(classes[:n_trs])


def _class_codes(rng, classes, n_codebooks=2, codebook_size=32, sharpness=1.5):
    """A code stream whose code distribution depends on the TR's class; and those distributions."""
    dists = softmax(sharpness * rng.standard_normal((classes.max() + 1, n_codebooks, codebook_size)), axis=-1)
    spans = tr_frame_spans(len(classes), TR_S, RATE_HZ)
    codes = np.zeros((n_codebooks, spans[-1, 1]), dtype=np.int16)
    for t, (start, stop) in enumerate(spans):
        for k in range(n_codebooks):
            codes[k, start:stop] = rng.choice(codebook_size, stop - start, p=dists[classes[t], k])
    return CodeStream(codes, RATE_HZ), dists


def _counts(stream, n_trs, codebook_size):
    codes, mask = codes_by_tr(stream, TR_S, n_trs)
    return code_counts(codes, mask, codebook_size)


def _descriptor(rng, classes, noise=0.5, n_extra=2):
    """Class one-hot (scaled by 2) plus noise, with ``n_extra`` pure-noise columns."""
    n_classes = classes.max() + 1
    signal = np.c_[2.0 * np.eye(n_classes)[classes], np.zeros((len(classes), n_extra))]
    return signal + noise * rng.standard_normal(signal.shape)


def test_code_model_beats_the_unigram_on_held_out_trs(rng):
    n_trs, size = 300, 32
    classes = _sound_classes(rng, n_trs)
    stream, dists = _class_codes(rng, classes, codebook_size=size, sharpness=2.5)
    counts, descriptor = _counts(stream, n_trs, size), _descriptor(rng, classes)
    rows = code_model_rows(make_split(n_trs, TR_S, SPLIT).labels)
    model, _ = select_code_model(counts, descriptor, rows, l2_grid=CodeModelConfig().l2_grid)
    test = rows["test"]
    scores = score_code_model(model, counts[test], descriptor[test], n_bootstrap=200, n_permutations=50)
    # The most any model can gain is the information a code carries about the class,
    # I = sum_j pi_j KL(p_j || sum_i pi_i p_i) bits (pi: the test block's class shares);
    # the true class distributions reach it on the test codes (up to sampling).
    share = np.bincount(classes[test], minlength=2) / test.sum()
    mixture = np.einsum("j,jkc->kc", share, dists)
    information = np.einsum("j,jkc->k", share, dists * np.log2(dists / mixture)).mean()
    n_frames = counts[test][:, 0].sum(axis=1)
    ce_unigram = tr_cross_entropy(model.unigram_log_probs(test.sum()), counts[test])
    oracle = bits_per_code(ce_unigram, tr_cross_entropy(np.log(dists[classes[test]]), counts[test]), n_frames)
    assert information > 0.6 and oracle == pytest.approx(information, abs=0.1)
    # the descriptor is the class (one-hot) plus noise, so a softmax linear in it can represent the true
    # distributions: fitted on ~200 TRs it recovers most of the information
    bits = scores["bits_per_code"]
    assert bits["mean"] > 0.8 * information
    assert bits["ci_low"] > 0.5 * information
    assert bits["p"] < 0.1 and bits["null_mean"] < bits["ci_low"]  # circular shifts of the descriptor lose it
    assert scores["cross_entropy_nats"]["code_model"] < scores["cross_entropy_nats"]["unigram"]
    per_codebook = [c["bits_per_code"]["mean"] for c in scores["per_codebook"]]
    assert np.mean(per_codebook) == pytest.approx(bits["mean"])
    assert min(per_codebook) > 0.3


def test_code_model_with_a_noise_descriptor_gains_nothing(rng):
    n_trs, size = 300, 32
    classes = _sound_classes(rng, n_trs)
    stream, _ = _class_codes(rng, classes, codebook_size=size)
    counts, noise = _counts(stream, n_trs, size), rng.standard_normal((n_trs, 4))
    rows = code_model_rows(make_split(n_trs, TR_S, SPLIT).labels)
    model, _ = select_code_model(counts, noise, rows, l2_grid=CodeModelConfig().l2_grid)
    test = rows["test"]
    bits = score_code_model(model, counts[test], noise[test], n_bootstrap=200, n_permutations=50)["bits_per_code"]
    assert bits["ci_low"] <= 0.0 <= bits["ci_high"] or abs(bits["mean"]) < 0.005


def _hand_model():
    """Descriptor 0 -> q0, descriptor 1 -> q1 (codebook 0); codebook 1 uniform; unigram uniform."""
    q0 = np.array([[1 / 2, 1 / 4, 1 / 8, 1 / 8], [1 / 4] * 4])
    q1 = np.array([[1 / 8, 1 / 8, 1 / 4, 1 / 2], [1 / 4] * 4])
    weight = (np.log(q1) - np.log(q0))[..., None]  # (2 codebooks, 4 codes, 1 feature)
    return CodeModel(weight, np.log(q0), np.zeros(1), np.ones(1), np.full((2, 4), 1 / 4), np.ones(2))


def test_cross_entropy_and_bits_match_hand_computed_values():
    model = _hand_model()
    descriptor = np.array([[0.0], [1.0], [0.0]])
    codes = np.zeros((3, 2, 4), dtype=np.int16)
    codes[0, 0, :2], codes[1, 0, :2], codes[2, 0] = [0, 0], [3, 2], [0, 1, 2, 3]
    codes[:, 1] = [[1, 2, 0, 0], [3, 3, 0, 0], [0, 1, 2, 3]]
    mask = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    counts = code_counts(codes, mask, 4)
    assert counts.sum(axis=2).tolist() == [[2, 2], [2, 2], [4, 4]]
    ln2 = math.log(2)
    # codebook 0 in bits per code: TR 0 codes 0, 0 under q0: 1, 1; TR 1 codes 3, 2 under q1: 1, 2;
    # TR 2 codes 0..3 under q0: 1, 2, 3, 3. Codebook 1 and the unigram: 2 bits for every code.
    ce = tr_cross_entropy(model.log_probs(descriptor), counts)
    np.testing.assert_allclose(ce, ln2 * np.array([[1.0, 2.0], [1.5, 2.0], [2.25, 2.0]]))
    ce_unigram = tr_cross_entropy(model.unigram_log_probs(3), counts)
    np.testing.assert_allclose(ce_unigram, 2 * ln2)
    # frames 2, 2, 4: codebook 0 averages (2 * 1 + 2 * 1.5 + 4 * 2.25) / 8 = 1.75 bits, a gain of 0.25 bits
    assert bits_per_code(ce_unigram, ce, [2, 2, 4]) == pytest.approx(0.125)
    scores = score_code_model(model, counts, descriptor, n_bootstrap=50, block_trs=1, frame_rate_hz=75.0)
    assert scores["n_frames"] == 8
    assert scores["cross_entropy_nats"]["unigram"] == pytest.approx(2 * ln2)
    assert scores["cross_entropy_nats"]["code_model"] == pytest.approx((1.75 + 2) / 2 * ln2)
    assert scores["bits_per_code"]["mean"] == pytest.approx(0.125)
    assert scores["bits_per_s"] == pytest.approx(0.125 * 2 * 75.0)
    assert [c["bits_per_code"]["mean"] for c in scores["per_codebook"]] == pytest.approx([0.25, 0.0])
    assert scores["per_codebook"][0]["cross_entropy_nats"]["code_model"] == pytest.approx(1.75 * ln2)


def test_code_counts_are_one_hot_counts_of_real_frames():
    codes = np.array([[[0, 2, 2]], [[1, 1, 0]]])  # (2 TRs, 1 codebook, 3 slots)
    mask = np.array([[True, True, True], [True, True, False]])
    counts = code_counts(codes, mask, 3)
    np.testing.assert_array_equal(counts[:, 0], [[1, 0, 2], [0, 2, 0]])
    with pytest.raises(ValueError, match="codebook_size is 2"):
        code_counts(codes, mask, 2)


def test_unigram_prior_is_the_smoothed_training_code_frequencies(rng):
    n_trs, size = 60, 8
    classes = _sound_classes(rng, n_trs)
    stream, _ = _class_codes(rng, classes, codebook_size=size)
    counts, descriptor = _counts(stream, n_trs, size), _descriptor(rng, classes)
    model = fit_code_model(counts, descriptor, l2=1e6, settings=FitSettings(smoothing_counts=0.5))
    expected = (counts.sum(axis=0) + 0.5) / (counts[:, 0].sum() + 0.5 * size)
    np.testing.assert_allclose(model.unigram, expected)
    # an infinitely penalised model is the prior whatever the descriptor
    np.testing.assert_allclose(model.log_probs(rng.standard_normal((5, 4)) * 10),
                               np.log(np.broadcast_to(expected, (5, 2, size))), atol=1e-4)
    # the standardisation comes from the training TRs
    np.testing.assert_allclose(model.mean, descriptor.mean(axis=0))
    np.testing.assert_allclose(model.scale, descriptor.std(axis=0))


def test_code_model_rows_leave_out_the_test_block_and_its_gap():
    labels = make_split(120, TR_S, SPLIT).labels
    rows = code_model_rows(labels)
    test, val = labels == BLOCKS.index("test"), labels == BLOCKS.index("val")
    gap_before_test = np.flatnonzero(test)[0] - np.arange(1, 5)
    assert (labels[gap_before_test] == GAP).all() and rows["left_out"][gap_before_test].all()
    assert not (rows["fit"] & (test | rows["left_out"])).any()
    assert rows["fit"].sum() == len(labels) - test.sum() - 4  # train, its gap to val, and val
    assert not (rows["select"] & val).any()
    assert rows["select"].sum() == (labels == BLOCKS.index("train")).sum()


def _write_inputs(folder, stream, descriptor, split, runs, codebook_size):
    """codes.npz, codebooks.npz and the descriptor table in ``folder/features``; a prepared file."""
    features = folder / "features"
    features.mkdir(parents=True, exist_ok=True)
    stream.save(features / "codes.npz")
    np.savez(features / "codebooks.npz", vectors=np.zeros((stream.n_codebooks, codebook_size, 4), np.float32))
    n_trs = len(runs)
    FeatureTable(descriptor.astype(np.float32), np.arange(n_trs) * TR_S,
                 tuple(f"logmel_{i:02d}" for i in range(descriptor.shape[1])), runs=runs).save(
        features / "audio_logmel_tr.npz")
    values = np.zeros((n_trs, 2), np.float32)
    prepared = PreparedFmri("sub-01", values, runs, TR_S, split.labels >= 0, split, np.zeros((2, 3), np.int32),
                            np.eye(4), (2, 1, 1), ("auditory",), np.ones((2, 1), bool), np.zeros((0, 3), np.int32),
                            (), np.zeros(2), np.ones(2))
    return features, prepared.save(folder / "sub-01.npz")


def _film(rng, n_trs=120, size=16):
    classes = _sound_classes(rng, n_trs)
    stream, _ = _class_codes(rng, classes, codebook_size=size)
    runs = np.repeat([0, 1], n_trs // 2)
    return stream, _descriptor(rng, classes), make_split(n_trs, TR_S, SPLIT), runs


def test_fit_code_model_never_trains_on_the_test_block(tmp_path, rng):
    stream, descriptor, split, runs = _film(rng)
    config = CodeModelConfig(l2_grid=(1e-2, 1.0))

    def fit_and_score(folder, codes, descriptor):
        features, prepared = _write_inputs(folder, codes, descriptor, split, runs, 16)
        model = run_fit_code_model(features_dir=features, prepared_path=prepared, out_dir=folder / "out", config=config)
        scores = run_score_code_model(features_dir=features, prepared_path=prepared, model_path=model,
                                      out_dir=folder / "out", config=CodeScoreConfig(n_bootstrap=50, n_permutations=20))
        return {"model": model, "scores": scores}

    paths = fit_and_score(tmp_path / "a", stream, descriptor)
    # new codes and descriptor on the test block and the gap before it
    hidden = code_model_rows(split.labels)
    hidden = hidden["test"] | hidden["left_out"]
    spans = tr_frame_spans(len(runs), TR_S, RATE_HZ)
    codes = stream.codes.copy()
    for start, stop in spans[hidden]:
        codes[:, start:stop] = rng.integers(0, 16, (codes.shape[0], stop - start))
    changed = descriptor.copy()
    changed[hidden] = rng.standard_normal((hidden.sum(), descriptor.shape[1])) * 5
    paths_b = fit_and_score(tmp_path / "b", CodeStream(codes, RATE_HZ), changed)
    a, b = CodeModel.load(paths["model"]), CodeModel.load(paths_b["model"])
    for name in ("weight", "bias", "mean", "scale", "unigram", "l2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    scores_a, scores_b = (json.loads(p.read_text()) for p in (paths["scores"], paths_b["scores"]))
    assert scores_a["test"]["bits_per_code"]["mean"] != scores_b["test"]["bits_per_code"]["mean"]
    assert scores_a["n_trs"]["test"] == split.mask("test").sum()
    assert scores_a["n_trs"]["fit"] == len(runs) - split.mask("test").sum() - 4
    assert a.meta["fit_trs"] == np.flatnonzero(code_model_rows(split.labels)["fit"]).tolist()


def test_fit_code_model_rejects_a_descriptor_of_another_length(tmp_path, rng):
    stream, descriptor, split, runs = _film(rng)
    features, prepared = _write_inputs(tmp_path, stream, descriptor, split, runs, 16)
    table = FeatureTable.load(features / "audio_logmel_tr.npz")
    FeatureTable(table.values[:-3], table.times_s[:-3], table.names).save(features / "audio_logmel_tr.npz")
    with pytest.raises(ValueError, match="117 TRs but .* has 120"):
        run_fit_code_model(features_dir=features, prepared_path=prepared, out_dir=tmp_path / "out")


def test_cli_fit_and_score_code_model_write_the_model_and_its_scores(tmp_path, rng):
    from giblet.cli import main
    from tests.conftest import REPO_ROOT

    stream, descriptor, split, runs = _film(rng)
    features, prepared = _write_inputs(tmp_path, stream, descriptor, split, runs, 16)
    cfg = yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text())
    cfg.update(device="cpu", code_model={"l2_grid": [0.01, 1.0], "max_iter": 50},
               evaluate={**cfg.get("evaluate", {}), "n_bootstrap": 20, "n_permutations": 10})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "model"
    inputs = ["--config", str(config), "--features", str(features), "--fmri", str(prepared), "--out", str(out)]
    assert main(["fit-code-model", *inputs]) == 0
    assert not (out / CODE_MODEL_OUTPUTS["scores"]).exists()  # scoring settings never refit the model
    assert main(["score-code-model", *inputs, "--model", str(out / CODE_MODEL_OUTPUTS["model"])]) == 0
    scores = json.loads((out / CODE_MODEL_OUTPUTS["scores"]).read_text())
    assert scores["validation"]["l2_grid"] == [1.0, 0.01]
    assert scores["test"]["bits_per_code"]["mean"] > 0.1
    assert CodeModel.load(out / CODE_MODEL_OUTPUTS["model"]).l2.tolist() == scores["validation"]["chosen_l2"]


def test_save_load_round_trip(tmp_path, rng):
    n_trs, size = 40, 8
    classes = _sound_classes(rng, n_trs)
    stream, _ = _class_codes(rng, classes, codebook_size=size)
    descriptor = _descriptor(rng, classes)
    model = fit_code_model(_counts(stream, n_trs, size), descriptor, l2=[1e-2, 1e-1], settings=FitSettings(max_iter=20),
                           feature_names=("a", "b", "c", "d"), meta={"codec_status": "untrained"})
    loaded = CodeModel.load(model.save(tmp_path / "code_model.npz"))
    for name in ("weight", "bias", "mean", "scale", "unigram", "l2"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.feature_names == ("a", "b", "c", "d") and loaded.meta == model.meta
    assert loaded.l2.tolist() == [1e-2, 1e-1]
    np.testing.assert_array_equal(loaded.log_probs(descriptor), model.log_probs(descriptor))


def _small_model(rng, n_trs=40, size=8):
    """A code model of 2 codebooks x ``size`` codes fitted on ``n_trs`` TRs of two sound classes; its descriptor."""
    classes = _sound_classes(rng, n_trs)
    stream, _ = _class_codes(rng, classes, codebook_size=size)
    descriptor = _descriptor(rng, classes)
    model = fit_code_model(_counts(stream, n_trs, size), descriptor, l2=1e-2, settings=FitSettings(max_iter=30))
    return model, descriptor


def test_head_matches_the_model_and_is_differentiable_in_the_descriptor(rng):
    size = 8
    model, descriptor = _small_model(rng, size=size)
    head = model.head()
    x = torch.tensor(descriptor[:5], dtype=torch.float32, requires_grad=True)
    log_probs = head(x)
    assert log_probs.shape == (5, 2, size)
    np.testing.assert_allclose(log_probs.detach().numpy(), model.log_probs(descriptor[:5]), atol=1e-5)
    log_probs[:, 0, 3].sum().backward()
    assert x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in head.parameters())
    assert all(p.requires_grad for p in model.head(trainable=True).parameters())
    batch = head(x.detach()[None].expand(3, 5, 4))  # any leading dimensions
    assert batch.shape == (3, 5, 2, size)


def test_sample_codes_are_seeded_and_follow_the_probabilities(rng):
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    log_probs = np.log(np.broadcast_to(probs, (40, 2, 4)))
    mask = np.ones((40, 113), dtype=bool)
    mask[::2, 112] = False
    draws = sample_codes(log_probs, mask, seed=3)
    assert draws.shape == (40, 2, 113) and draws.dtype == np.int64
    np.testing.assert_array_equal(draws, sample_codes(log_probs, mask, seed=3))
    assert not np.array_equal(draws, sample_codes(log_probs, mask, seed=4))
    assert (draws[::2, :, 112] == PAD_CODE).all()
    for k in range(2):
        frequencies = np.bincount(draws[:, k][mask], minlength=4) / mask.sum()
        np.testing.assert_allclose(frequencies, probs[k], atol=0.03)  # 4500 draws: standard error <= 0.008


def test_sample_stream_has_the_exact_frames_of_every_tr():
    log_probs = np.log(np.full((5, 3, 16), 1 / 16))
    stream = sample_stream(log_probs, tr_s=TR_S, frame_rate_hz=RATE_HZ, first_tr=7, seed=1, codec_status="untrained")
    spans = tr_frame_spans(5, TR_S, RATE_HZ, first_tr=7)
    assert stream.codes.shape == (3, spans[-1, 1] - spans[0, 0]) and stream.first_frame == spans[0, 0]
    assert stream.codec_status == "untrained"
    codes, mask = codes_by_tr(stream, TR_S, 5, first_tr=7)
    np.testing.assert_array_equal(np.where(mask[:, None], codes, PAD_CODE), sample_codes(log_probs, mask, seed=1))


def test_config_defaults_match_the_schema():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["code_model"]["properties"]
    defaults = CodeModelConfig()
    for name, spec in schema.items():
        value = getattr(defaults, name)
        assert (list(value) if isinstance(value, tuple) else value) == spec["default"], name
    with pytest.raises(ValueError, match="unknown keys"):
        CodeModelConfig.from_dict({"l2": 1.0})
    with pytest.raises(ValueError, match="positive penalties"):
        CodeModelConfig(l2_grid=(0.0,))


def test_head_confidence_tempers_the_model_toward_its_prior(rng):
    model, descriptor = _small_model(rng)
    head, x = model.head(), torch.tensor(descriptor[:6], dtype=torch.float32)
    torch.testing.assert_close(head(x, 1.0), head(x))
    prior = torch.as_tensor(np.log(model.unigram), dtype=torch.float32)
    torch.testing.assert_close(head(x, 0.0), prior.expand(6, -1, -1))
    half = head(x, 0.5)
    expected = torch.log_softmax(0.5 * head(x) + 0.5 * prior, dim=-1)  # a geometric mixture, renormalised
    torch.testing.assert_close(half, expected)
    assert torch.allclose(half.exp().sum(-1), torch.ones(6, 2))
