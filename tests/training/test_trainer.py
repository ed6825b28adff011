"""Training lowers the validation loss, is deterministic and resumes exactly."""

import dataclasses

import numpy as np
import pytest
import torch

from giblet.audio.code_model import CodeModel
from giblet.splits import BLOCKS
from giblet.training.data import MovieData
from giblet.training.routes import fit_routes, picture_descriptor
from giblet.training.trainer import TrainConfig, build_model, encoder_score, evaluate_loss, train
from tests.models.conftest import DEVICES
from tests.training.conftest import tiny_movie

OPTIONS = {"hidden": 16, "n_layers": 1, "encoder_delays_trs": (1, 2, 3), "decoder_delays_trs": (1, 2, 3)}
CFG = TrainConfig(max_epochs=6, patience=10, window_trs=16, stride_trs=8, batch_windows=4, lr=1e-2)


def _model(movie, seed=0):
    torch.manual_seed(seed)
    return build_model(movie, OPTIONS, ("video", "text"))


def test_train_lowers_validation_loss_and_raises_validation_fmri_r(movie, tmp_path):
    model = _model(movie)
    terms, fmri = evaluate_loss(model, movie, "val", CFG, torch.device("cpu"))
    fmri_r = encoder_score(fmri)[0]
    history = train(model, movie, CFG, tmp_path, seed=0, device="cpu")
    assert len(history) == CFG.max_epochs + 1 and history[0]["epoch"] == 0  # epoch 0: the model as built
    assert history[0]["val_fmri_r"] == pytest.approx(fmri_r) and history[0]["val_loss"] == pytest.approx(
        sum(terms.values()))
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"] - 0.1
    assert max(h["val_fmri_r"] for h in history) > fmri_r + 0.1
    assert history[-1]["train_fmri_mse"] < history[1]["train_fmri_mse"]


def test_train_keeps_each_half_at_its_best_validation_epoch(movie, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "max_epochs": 16, "lr": 5e-2})
    model = _model(movie)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    history = train(model, movie, cfg, tmp_path, seed=0, device="cpu")
    # the kept weights are parameters only: training never changes a buffer (the fitted routes)
    assert buffers and all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    terms, fmri = evaluate_loss(model, movie, "val", cfg, torch.device("cpu"))
    r_by_epoch, decoding_by_epoch = [h["val_fmri_r"] for h in history], [h["val_decoder_loss"] for h in history]
    beyond_noise = [h["val_fmri_r"] for h in history if h["epoch"] == 0 or h["val_gain_over_routes_lower"] > 0]
    assert encoder_score(fmri)[0] == pytest.approx(max(beyond_noise), abs=1e-6) and len(beyond_noise) > 1
    assert sum(v for k, v in terms.items() if k.startswith("decoding_")) == pytest.approx(min(decoding_by_epoch),
                                                                                          abs=1e-6)
    assert np.argmax(r_by_epoch) != len(history) - 1 or np.argmin(decoding_by_epoch) != len(history) - 1


def test_train_without_decoding_terms_selects_the_decoder_by_reconstruction(movie, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "weight_decoding": 0.0})
    model = _model(movie)
    built = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("decoder_trunk")}
    history = train(model, movie, cfg, tmp_path, seed=0, device="cpu")
    assert not any(k.startswith("val_decoding_") for k in history[-1])
    assert min(h["val_decoder_loss"] for h in history) < history[0]["val_decoder_loss"]
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in built.items())  # a trained epoch is kept


def test_readouts_start_at_zero_so_epoch_0_is_the_routes_alone(movie):
    movie = _with_audio(movie)
    torch.manual_seed(0)
    model = build_model(movie, OPTIONS, movie.modalities, _code_model())
    fit_routes(model, movie)
    stim = {k: torch.from_numpy(np.ascontiguousarray(v[None, :40])) for k, v in movie.stimulus.items()}
    with torch.no_grad():
        routes = model.stimulus_routes(stim, "sub-a")
        assert routes.abs().max() > 0  # some voxels follow their routes
        assert torch.equal(model.encode(stim, "sub-a"), routes)


def test_train_is_deterministic_for_a_seed(movie, tmp_path):
    runs = [train(_model(movie), movie, CFG, tmp_path / str(i), seed=3, device="cpu") for i in range(2)]
    assert [h["val_loss"] for h in runs[0]] == [h["val_loss"] for h in runs[1]]


def test_train_resumed_from_checkpoint_matches_uninterrupted_run(movie, tmp_path):
    full_model = _model(movie)
    full = train(full_model, movie, CFG, tmp_path / "full", seed=1, device="cpu")
    short = TrainConfig(**{**CFG.__dict__, "max_epochs": CFG.max_epochs})
    first = _model(movie)
    interrupted = train(first, movie, short, tmp_path / "resume", seed=1, device="cpu", stop_after_epochs=3)
    assert len(interrupted) == 4  # epoch 0 and 3 epochs
    resumed_model = _model(movie, seed=99)  # fresh weights: everything must come from the checkpoint
    resumed = train(resumed_model, movie, short, tmp_path / "resume", seed=1, device="cpu")
    assert [h["val_loss"] for h in resumed] == pytest.approx([h["val_loss"] for h in full], rel=1e-6)
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("change", ["data", "seed"])
def test_train_never_resumes_a_checkpoint_of_another_run(movie, tmp_path, change):
    """Regression: a finished checkpoint was "resumed" after the data changed and returned the old weights."""
    finished = train(_model(movie), movie, CFG, tmp_path / "run", seed=1, device="cpu", inputs_key="data")
    settings = {"seed": 1, "device": "cpu", "inputs_key": "data"}
    if change == "data":
        movie, settings["inputs_key"] = tiny_movie(seed=1), "new data"
    else:
        settings["seed"] = 2
    rerun = train(_model(movie), movie, CFG, tmp_path / "run", **settings)
    fresh = train(_model(movie), movie, CFG, tmp_path / "fresh", **settings)
    assert [h["val_loss"] for h in rerun] == [h["val_loss"] for h in fresh]
    assert [h["val_loss"] for h in rerun] != [h["val_loss"] for h in finished]
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["state"]["history"] == rerun  # the other run's checkpoint was replaced


def test_train_reuses_its_own_finished_checkpoint(movie, tmp_path):
    first_model, again_model = _model(movie), _model(movie, seed=99)
    first = train(first_model, movie, CFG, tmp_path, seed=1, device="cpu", inputs_key="data")
    again = train(again_model, movie, CFG, tmp_path, seed=1, device="cpu", inputs_key="data")
    assert again == first
    for a, b in zip(first_model.state_dict().values(), again_model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_train_stops_early_when_validation_stops_improving(movie, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "max_epochs": 40, "patience": 2, "lr": 5e-2})
    history = train(_model(movie), movie, cfg, tmp_path, seed=0, device="cpu")
    last_gain = max(int(np.argmax([h["val_fmri_r"] for h in history])),
                    int(np.argmin([h["val_decoder_loss"] for h in history])))
    assert len(history) < 41 and len(history) - 1 - last_gain == 2


def _with_audio(movie, size=8, width=4, seed=0):
    """The tiny movie with codes, a 3-feature sound descriptor that drives voxel 0 of each subject 2 TRs later."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, size, (movie.n_trs, 2, width))
    descriptor = rng.standard_normal((movie.n_trs, 3))
    bold = {s: v.copy() for s, v in movie.bold.items()}
    for v in bold.values():
        v[2:, 0] = descriptor[:-2].sum(1) + 0.3 * rng.standard_normal(movie.n_trs - 2)
    stimulus = {**movie.stimulus, "audio_codes": codes, "audio_mask": np.ones((movie.n_trs, width), bool),
                "audio_descriptor": ((descriptor - descriptor.mean(0)) / descriptor.std(0)).astype(np.float32)}
    return MovieData(**{**movie.__dict__, "stimulus": stimulus, "bold": bold, "modalities": ("audio", "video", "text"),
                        "codebook_vectors": rng.standard_normal((2, size, 3)).astype(np.float32),
                        "descriptors": {"audio": descriptor}})


def _code_model(size=8, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    return CodeModel(weight=rng.standard_normal((2, size, n_features)), bias=np.zeros((2, size)),
                     mean=np.zeros(n_features), scale=np.ones(n_features), unigram=np.full((2, size), 1 / size),
                     l2=np.ones(2))


@pytest.mark.parametrize("device", DEVICES)
def test_train_with_audio_and_resume_on_each_device(movie, tmp_path, device):
    """Regression: on CUDA the audio frame subsample drew a CPU randperm with a CUDA generator."""
    movie = _with_audio(movie)

    def model():
        torch.manual_seed(0)
        built = build_model(movie, OPTIONS, movie.modalities, _code_model())
        fit_routes(built, movie)
        return built

    fitted = model()
    routes = ("audio_decoders", "text_decoders", "encoder_routes", "code_model", "audio_confidence")
    decoders = {k: v.clone() for k, v in fitted.state_dict().items() if k.startswith(routes)}
    assert len(fitted.encoder_routes["audio"]["sub-a"].outputs) >= 1  # voxel 0 follows the descriptor
    interrupted = train(fitted, movie, CFG, tmp_path, seed=1, device=device, stop_after_epochs=2)
    resumed_model = model()
    resumed = train(resumed_model, movie, CFG, tmp_path, seed=1, device=device)
    assert len(resumed) == CFG.max_epochs + 1 and resumed[:3] == interrupted  # epoch 0 and the 2 before resuming
    after = resumed_model.cpu().state_dict()
    for key, value in decoders.items():  # the closed-form audio route is never changed by gradient training
        torch.testing.assert_close(after[key], value)


def test_build_model_holds_the_code_model_and_needs_one_for_audio(movie):
    audio = _with_audio(movie)
    with pytest.raises(ValueError, match="fit-code-model"):
        build_model(audio, OPTIONS, audio.modalities)
    code_model = _code_model()
    model = build_model(audio, OPTIONS, audio.modalities, code_model)
    descriptor = audio.descriptors["audio"][:5]
    with torch.no_grad():
        got = model.audio_head(torch.as_tensor(descriptor, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, code_model.log_probs(descriptor), atol=1e-5)
    np.testing.assert_allclose(model.audio_head.log_prior.numpy(), np.log(code_model.unigram), atol=1e-6)


def test_fit_audio_routes_read_and_drive_the_voxel_that_encodes_the_descriptor(movie):
    audio = _with_audio(movie)
    model = build_model(audio, OPTIONS, audio.modalities, _code_model())
    summary = fit_routes(model, audio)
    report = summary["audio"]
    for subject in audio.subjects:
        assert 0 in model.audio_decoders[subject].inputs.tolist()
        outputs = model.encoder_routes["audio"][subject].outputs.tolist()
        assert outputs[0] == 0 and len(outputs) == summary["encoder_route_voxels"]["audio"][subject] <= 2
        assert 0 not in model.encoder_routes["video"][subject].outputs.tolist()  # voxel 0 is sound's alone
    assert report["n_voxels"] == 16  # 16 and up take all 6 or 7 voxels: a tie, the smallest kept
    # the codes are random, unrelated to the descriptor: a confident code model only loses bits, the prior none
    assert report["confidence"] == 0.0 == float(model.audio_confidence)
    assert report["validation_bits_per_code"]["0.0"] == 0.0 > report["validation_bits_per_code"]["1.0"]


def test_fit_routes_decode_text_from_the_voxels_that_encode_it_and_the_head_adds_to_it(movie):
    text = movie.stimulus["text"]
    bold = {s: v.copy() for s, v in movie.bold.items()}
    for v in bold.values():  # voxel 1 follows the first text feature 2 TRs later; the rest ignore text
        v[2:, 1] = text[:-2, 0] + 0.3 * np.random.default_rng(1).standard_normal(movie.n_trs - 2)
    movie = MovieData(**{**movie.__dict__, "bold": bold})
    model = build_model(movie, OPTIONS, movie.modalities)
    report = fit_routes(model, movie)
    test = np.flatnonzero(movie.labels == 2)[:-3]
    voxels = torch.from_numpy(movie.bold["sub-b"])[None]
    with torch.no_grad():
        decoded = model.decode(voxels, "sub-b")["text"][0].numpy()
        routed = model.text_decoders["sub-b"](voxels)[0].numpy()
    np.testing.assert_array_equal(decoded, routed)  # the trunk's head starts at zero
    assert 1 in model.text_decoders["sub-b"].inputs.tolist() and report["text"]["n_voxels"] == 16
    assert np.corrcoef(decoded[test, 0], text[test, 0])[0, 1] > 0.8


def test_fit_routes_decode_pictures_from_the_voxels_that_encode_them(movie):
    model = build_model(movie, OPTIONS, movie.modalities)
    report = fit_routes(model, movie)
    assert set(report) == {"video", "text", "encoder_route_voxels"}
    assert report["video"]["n_voxels"] == 16  # every voxel of these small subjects
    descriptor, mean, basis = picture_descriptor(movie, model.config.n_thumb_components)
    test = np.flatnonzero(movie.labels == 2)[:-3]  # the window after each TR stays in the block
    with torch.no_grad():
        decoded = model.decode(torch.from_numpy(movie.bold["sub-a"])[None], "sub-a")["video"][0].numpy()
        rebuilt = model.thumbnails(torch.as_tensor(descriptor, dtype=torch.float32)).numpy()
    r = [np.corrcoef(decoded[test, f], descriptor[test, f])[0, 1] for f in range(4)]  # the 4 video features
    assert min(r) > 0.8, r  # the voxels follow them 2 TRs later
    thumbs = movie.stimulus["thumbs"]
    assert np.abs(rebuilt - np.clip(thumbs, 0, 1)).mean() < np.abs(thumbs - thumbs.mean(0)).mean()


def test_encoder_score_bounds_the_gain_over_the_routes_by_a_block_bootstrap(rng):
    measured = rng.standard_normal((200, 30))
    routes = 0.3 * measured + rng.standard_normal((200, 30))
    same = {"a": (0.0, (routes, routes, measured))}
    assert encoder_score(same)[1] == 0.0  # no gain: the bound never clears 0
    better = {"a": (0.0, (measured + 0.5 * rng.standard_normal((200, 30)), routes, measured))}
    assert encoder_score(better)[1] > 0.3
    noise = {"a": (0.0, (routes + 0.2 * rng.standard_normal((200, 30)), routes, measured))}
    assert encoder_score(noise)[1] < 0  # a change within the noise is not a gain
    assert encoder_score(better, n_tests=60)[1] < encoder_score(better)[1]  # each epoch is a test


def test_train_keeps_the_routes_alone_when_the_trunk_learns_only_noise(tmp_path):
    movie = tiny_movie(n_per_run=300)
    rng = np.random.default_rng(0)
    noise = dataclasses.replace(movie, bold={s: rng.standard_normal(v.shape).astype(np.float32)
                                             for s, v in movie.bold.items()})
    model = _model(noise)
    history = train(model, noise, CFG, tmp_path, seed=0, device="cpu")
    assert max(h["val_fmri_r"] for h in history[1:]) > history[0]["val_fmri_r"]  # by chance a later epoch is higher (0.028)
    assert all(float(p.abs().max()) == 0.0 for p in model.readouts.parameters() if p.dim() == 2)  # yet epoch 0 kept


def test_routes_with_context_predict_each_block_from_the_stimulus_before_it(movie):
    """Evaluation chunks carry enough past for the trailing means: the model's test-block prediction is the
    joint ridge on the whole runs' features beside their trailing means."""
    from giblet.evaluation.encoding import predict_bold
    from giblet.training.ridge import fit_ridge
    from giblet.training.encoder_routes import encoding_rows, trailing_means

    torch.manual_seed(0)
    options = {**OPTIONS, "route_mode": "joint", "route_context_trs": (6, 12), "route_bands": ("text",)}
    model = build_model(movie, options, ("video", "text"))
    assert model.config.encoder_past_trs == 3 + 12 - 1
    fit_routes(model, movie)
    predicted = predict_bold(model, movie, "sub-a", "test", "cpu")
    test = np.flatnonzero(movie.labels == BLOCKS.index("test"))
    features = trailing_means(movie.stimulus["text"], movie.runs, (6, 12))
    rows = encoding_rows(movie.bold_valid["sub-a"], movie.labels, movie.runs, "train", (1, 2, 3))
    ridge = fit_ridge(features, movie.bold["sub-a"], rows, lags=(-1, -2, -3))
    expected = ridge.predict(np.concatenate([features[test - d] for d in (1, 2, 3)], axis=1))
    np.testing.assert_allclose(predicted[test], expected, rtol=1e-4, atol=1e-4)


def test_routes_are_buffers_that_another_seeds_model_takes_over(movie):
    """Cross-validation fits the closed-form routes once per fold and copies them into every seed's model."""
    movie = _with_audio(movie)
    fitted = build_model(movie, OPTIONS, movie.modalities, _code_model())
    fit_routes(fitted, movie)
    torch.manual_seed(1)
    other = build_model(movie, OPTIONS, movie.modalities, _code_model())
    other.load_state_dict(dict(fitted.named_buffers()), strict=False)
    stim = {k: torch.from_numpy(np.ascontiguousarray(v[None, :40])) for k, v in movie.stimulus.items()}
    with torch.no_grad():
        for subject in movie.subjects:
            assert fitted.stimulus_routes(stim, subject).abs().max() > 0
            torch.testing.assert_close(other.encode(stim, subject), fitted.encode(stim, subject))
        assert other.audio_confidence == fitted.audio_confidence
