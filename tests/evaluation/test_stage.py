"""The evaluate, audio-references and decode-audio stages on a tiny trained pipeline."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from giblet.audio import codes_by_tr
from giblet.audio.stage import load_stage_codec
from giblet.audio.codes import CodeStream
from giblet.evaluation.evaluate import EvaluateConfig, EvaluateInputs, run_evaluate
from giblet.evaluation.sound import run_audio_references, run_decode_audio_eval
from giblet.evaluation.waveforms import trs_waveform
from giblet.fmri.prepared import subject_prepared_path
from giblet.models import AutoencoderConfig, GibletAutoencoder
from giblet.outputs import EVALUATE_OUTPUTS, evaluate_outputs
from giblet.training.stage import save_model
from giblet.voxel_scores import VoxelScores
from tests.evaluation.conftest import MODALITIES, ROIS, TR_S, read_json


def _evaluate(pipeline, out_dir, aligned_paths=None, **overrides):
    inputs = EvaluateInputs(**{key: pipeline[key] for key in ("features_dir", "aligned_paths", "prepared_paths",
                                                              "model_path", "baselines_path", "group_isc_path")})
    if aligned_paths is not None:
        inputs = dataclasses.replace(inputs, aligned_paths=aligned_paths)
    config = EvaluateConfig(**{"modalities": MODALITIES, "n_permutations": 20, "n_bootstrap": 100, "device": "cpu",
                               **overrides})
    return run_evaluate("sub-b", inputs, out_dir, config)


@pytest.fixture(scope="module")
def evaluated(pipeline, tmp_path_factory):
    return _evaluate(pipeline, tmp_path_factory.mktemp("evaluate"))


def test_run_evaluate_writes_every_output(evaluated):
    assert set(evaluated) == set(EVALUATE_OUTPUTS) and all(path.exists() for path in evaluated.values())
    assert set(EVALUATE_OUTPUTS) - set(evaluate_outputs(["video", "text"])) == {"codebook_encoding"}  # needs audio


def test_run_evaluate_summary_carries_codec_status_and_references(evaluated):
    summary = read_json(evaluated["summary"])
    assert summary["subject"] == "sub-b" and summary["codec_status"] == "pretrained"
    assert set(summary["encoding"]) == {"autoencoder", "ridge"}
    assert set(summary["encoding"]["ridge"]["rois"]) == set(ROIS)
    video = summary["decoding"]["autoencoder/measured_bold"]["video"]["rank_accuracy"]
    assert video["chance"] == 0.5 and video["baseline"] == 0.5 and video["ceiling"] == 1.0
    assert 0 < video["p"] <= 1
    assert set(summary["lesions"]["ridge/measured_bold"]["audio"]) == {
        name for roi in ROIS for name in (roi, f"{roi} (complement)")}


def test_run_evaluate_tables_are_complete(evaluated):
    decoding = pd.read_csv(evaluated["decoding"], sep="\t")
    bits = decoding[(decoding["metric"] == "bits_per_code") & (decoding["model"] == "autoencoder")]
    assert (bits["chance"] == 0).all() and (bits["baseline"] == 0).all() and len(bits) == 2  # measured, predicted BOLD
    assert (bits["ceiling"] > 0).all()  # the code model from the true descriptor
    assert set(decoding["model"] + "/" + decoding["input"]) == {
        "autoencoder/measured_bold", "ridge/measured_bold", "autoencoder/predicted_bold"}
    lesions = pd.read_csv(evaluated["lesions"], sep="\t")
    per_lesion = lesions.groupby(["model", "input", "modality", "metric"]).size()
    assert (per_lesion == 2 * len(ROIS)).all()  # every ROI and its complement
    assert ((lesions["ci_low"] <= lesions["change"]) & (lesions["change"] <= lesions["ci_high"])).all()
    per_tr = pd.read_csv(evaluated["lesions_per_tr"], sep="\t")
    assert len(per_tr) == len(lesions) * read_json(evaluated["summary"])["n_decoding_trs"]
    encoding = pd.read_csv(evaluated["encoding_rois"], sep="\t")
    assert len(encoding) == 2 * len(ROIS) and encoding["ceiling"].notna().all()


def test_run_evaluate_voxel_maps_and_examples(evaluated):
    voxels = VoxelScores.load(evaluated["encoding_voxels"])
    assert set(voxels.r) == set(voxels.p) == set(voxels.q) == {"autoencoder", "ridge"}
    assert voxels.r["autoencoder"].shape == voxels.q["ridge"].shape == voxels.ceiling.shape == (16,)
    assert voxels.voxel_ijk.shape == (16, 3) and voxels.grid_shape == (4, 4, 1) and voxels.n_trs > 0
    assert ((voxels.q["ridge"] >= voxels.p["ridge"]) & (voxels.q["ridge"] <= 1)).all()  # FDR q of the p-values
    with np.load(evaluated["examples"]) as z:
        assert z["true_thumbs"].shape[1:] == (3, 8, 12) and z["decoded_thumbs"].shape == z["true_thumbs"].shape
        np.testing.assert_allclose(z["times_s"], z["trs"] * TR_S)
    text = pd.read_csv(evaluated["text_examples"], sep="\t")
    assert {"true_texts", "autoencoder_measured_bold", "ridge_measured_bold"} <= set(text.columns)


def test_run_evaluate_is_deterministic(pipeline, evaluated, tmp_path):
    again = _evaluate(pipeline, tmp_path)
    for name in ("decoding", "lesions", "encoding_rois"):
        assert again[name].read_bytes() == evaluated[name].read_bytes()


def test_run_evaluate_rejects_bad_settings(pipeline, tmp_path):
    with pytest.raises(ValueError, match="lesion_mode must be one of"):
        _evaluate(pipeline, tmp_path, lesion_mode="cut")
    with pytest.raises(ValueError, match="preshift_trs"):
        _evaluate(pipeline, tmp_path, preshift_trs=3)


def test_subject_prepared_path_names_the_subjects_it_found(pipeline):
    assert subject_prepared_path(pipeline["prepared_paths"], "sub-b") == pipeline["prepared_paths"][1]
    with pytest.raises(ValueError, match=r"sub-a', 'sub-b"):
        subject_prepared_path(pipeline["prepared_paths"], "sub-z")


@pytest.fixture(scope="module")
def references(pipeline, tmp_path_factory):
    return run_audio_references(features_dir=pipeline["features_dir"], prepared_path=pipeline["prepared_paths"][0],
                                out_dir=tmp_path_factory.mktemp("references"), stimulus_path=pipeline["movie"],
                                excerpt_s=4.0, device="cpu")


def _decode(pipeline, subject, references, out_dir, **overrides):
    return run_decode_audio_eval(subject, features_dir=pipeline["features_dir"],
                                 prepared_paths=pipeline["prepared_paths"], model_path=pipeline["model_path"],
                                 references_dir=references["summary"].parent, out_dir=out_dir,
                                 config=EvaluateConfig(**{"modalities": MODALITIES, "device": "cpu", **overrides}))


@pytest.fixture(scope="module")
def decoded_audio(pipeline, references, tmp_path_factory):
    return _decode(pipeline, "sub-a", references, tmp_path_factory.mktemp("audio"))


def test_run_audio_references_ceiling_is_the_codec_on_the_true_codes(pipeline, references):
    summary = read_json(references["summary"])
    codec = load_stage_codec(pipeline["features_dir"] / "codec.json", device="cpu")
    codes, mask = codes_by_tr(CodeStream.load(pipeline["features_dir"] / "codes.npz"), TR_S, len(pipeline["runs"]))
    for key, segment in (("codec_resynthesis", "test"), ("excerpt/codec_resynthesis", "excerpt")):
        first, stop = summary[f"{segment}_trs"]
        ceiling = trs_waveform(codec, codes[first:stop], mask[first:stop], first_tr=first, tr_s=TR_S)
        rate, wave = wavfile.read(references[key])
        assert rate == 24_000 and len(wave) == (stop - first) * TR_S * 24_000
        np.testing.assert_array_equal(wave, ceiling)


def test_run_decode_audio_eval_copies_the_shared_references_for_every_subject(pipeline, references, decoded_audio,
                                                                              tmp_path):
    other = _decode(pipeline, "sub-b", references, tmp_path, lesion_inputs=("measured_bold",))
    for key in ("codec_resynthesis", "original", "excerpt/codec_resynthesis", "excerpt/original"):
        shared = wavfile.read(references[key])[1]
        for paths, subject in ((decoded_audio, "sub-a"), (other, "sub-b")):
            np.testing.assert_array_equal(wavfile.read(paths[key])[1], shared)
            assert read_json(paths[key].with_suffix(".json"))["subject"] == subject
    assert not np.array_equal(wavfile.read(other["decoded_measured_bold"])[1],
                              wavfile.read(decoded_audio["decoded_measured_bold"])[1])


def test_run_decode_audio_eval_rejects_references_of_another_split(pipeline, references, tmp_path):
    moved = read_json(references["summary"])
    moved["test_trs"] = [moved["test_trs"][0] + 1, moved["test_trs"][1]]
    (tmp_path / "references.json").write_text(json.dumps(moved))
    with pytest.raises(ValueError, match="rerun audio-references"):
        run_decode_audio_eval("sub-a", features_dir=pipeline["features_dir"], prepared_paths=pipeline["prepared_paths"],
                              model_path=pipeline["model_path"], references_dir=tmp_path, out_dir=tmp_path / "out",
                              config=EvaluateConfig(MODALITIES))


def test_run_decode_audio_eval_wavs_last_exactly_their_trs(decoded_audio):
    summary = read_json(decoded_audio["summary"])
    first, stop = summary["test_trs"]
    assert summary["excerpt_trs"] == [first, first + 3]  # 4 s rounded up to whole 1.5 s TRs
    for name, path in decoded_audio.items():
        if path.suffix == ".wav":
            n_trs = 3 if name.startswith("excerpt/") else stop - first
            rate, wave = wavfile.read(path)
            assert len(wave) == round(n_trs * TR_S * rate), name
            assert read_json(path.with_suffix(".json"))["codec_status"] == "pretrained"


def test_run_decode_audio_eval_writes_every_lesion_and_scores(decoded_audio):
    lesions = [n for n in decoded_audio if n.startswith("excerpt/lesion-")]
    assert len(lesions) == 2 * 2 * len(ROIS)  # ROI and complement, in measured and predicted BOLD
    scores = pd.read_csv(decoded_audio["scores"], sep="\t")
    assert set(scores["reference"]) == {"codec_resynthesis", "original"}
    # 2 references x (the test block's decoding; the excerpt's decoding, reconstruction and lesions)
    assert len(scores) == 2 * (1 + 2 + len(lesions))
    assert set(scores.loc[scores["segment"] == "test", "estimate"]) == {"decoded_measured_bold"}
    assert {"si_sdr_db", "log_mel_distance", "mrstft_distance", "stoi"} <= set(scores.columns)


def test_run_decode_audio_eval_lesions_only_the_chosen_inputs(pipeline, references, tmp_path):
    paths = _decode(pipeline, "sub-a", references, tmp_path, lesion_inputs=("measured_bold",))
    lesions = [n for n in paths if n.startswith("excerpt/lesion-")]
    assert len(lesions) == 2 * len(ROIS) and all(n.endswith("_measured_bold") for n in lesions)
    with pytest.raises(ValueError, match="lesion_inputs"):
        _decode(pipeline, "sub-a", references, tmp_path, lesion_inputs=("stimulus",))


def test_run_decode_audio_eval_needs_an_audio_head(pipeline, tmp_path):
    model = GibletAutoencoder(AutoencoderConfig(n_voxels={"sub-a": 16}, modalities=("text",), n_text_features=6,
                                                hidden=8))
    save_model(model, tmp_path / "text_only.pt", preshift_trs=0)
    with pytest.raises(ValueError, match="no audio head"):
        run_decode_audio_eval("sub-a", features_dir=pipeline["features_dir"], prepared_paths=pipeline["prepared_paths"],
                              model_path=tmp_path / "text_only.pt", references_dir=tmp_path, out_dir=tmp_path,
                              config=EvaluateConfig(MODALITIES))


def test_run_evaluate_rejects_aligned_tables_in_another_order(pipeline, tmp_path):
    from giblet.features import FeatureTable

    table = FeatureTable.load(pipeline["aligned_paths"][0])
    swapped = FeatureTable(table.values[:, ::-1].copy(), table.times_s, table.names[::-1], runs=table.runs)
    with pytest.raises(ValueError, match="same order"):
        _evaluate(pipeline, tmp_path, aligned_paths=[swapped.save(tmp_path / "swapped_fir.npz")])
