"""Training lowers the validation loss, is deterministic and resumes exactly."""

import numpy as np
import pytest
import torch

from giblet.training.data import MovieData
from giblet.training.trainer import TrainConfig, build_model, evaluate_loss, train
from tests.models.conftest import DEVICES
from tests.training.conftest import tiny_movie

OPTIONS = {"hidden": 16, "n_layers": 1, "encoder_delays_trs": (1, 2, 3), "decoder_delays_trs": (1, 2, 3)}
CFG = TrainConfig(max_epochs=6, patience=10, window_trs=16, stride_trs=8, batch_windows=4, lr=1e-2, threads=1)


def _model(movie, seed=0):
    torch.manual_seed(seed)
    return build_model(movie, OPTIONS, ("video", "text"))


def test_train_lowers_validation_loss(movie, tmp_path):
    model = _model(movie)
    before = sum(evaluate_loss(model, movie, "val", CFG, torch.device("cpu")).values())
    history = train(model, movie, CFG, tmp_path, seed=0, device="cpu")
    assert len(history) == CFG.max_epochs
    assert min(h["val_loss"] for h in history) < before - 0.1
    assert history[-1]["train_fmri_mse"] < history[0]["train_fmri_mse"]


def test_train_is_deterministic_for_a_seed(movie, tmp_path):
    runs = [train(_model(movie), movie, CFG, tmp_path / str(i), seed=3, device="cpu") for i in range(2)]
    assert [h["val_loss"] for h in runs[0]] == [h["val_loss"] for h in runs[1]]


def test_train_resumed_from_checkpoint_matches_uninterrupted_run(movie, tmp_path):
    full_model = _model(movie)
    full = train(full_model, movie, CFG, tmp_path / "full", seed=1, device="cpu")
    short = TrainConfig(**{**CFG.__dict__, "max_epochs": CFG.max_epochs})
    first = _model(movie)
    interrupted = train(first, movie, short, tmp_path / "resume", seed=1, device="cpu", stop_after_epochs=3)
    assert len(interrupted) == 3
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
    best = int(np.argmin([h["val_loss"] for h in history]))
    assert len(history) < 40 and len(history) - 1 - best == 2


def _with_audio(movie, size=8, width=4, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, size, (movie.n_trs, 2, width))
    stimulus = {**movie.stimulus, "audio_codes": codes, "audio_mask": np.ones((movie.n_trs, width), bool)}
    return MovieData(**{**movie.__dict__, "stimulus": stimulus, "modalities": ("audio", "video", "text"),
                        "codebook_vectors": rng.standard_normal((2, size, 3)).astype(np.float32)})


@pytest.mark.parametrize("device", DEVICES)
def test_train_with_audio_subsample_and_resume_on_each_device(movie, tmp_path, device):
    """Regression: on CUDA the audio frame subsample drew a CPU randperm with a CUDA generator."""
    movie = _with_audio(movie)
    cfg = TrainConfig(**{**CFG.__dict__, "max_audio_frames": 16})

    def model():
        torch.manual_seed(0)
        return build_model(movie, OPTIONS, movie.modalities)

    interrupted = train(model(), movie, cfg, tmp_path, seed=1, device=device, stop_after_epochs=2)
    resumed = train(model(), movie, cfg, tmp_path, seed=1, device=device)
    assert len(resumed) == cfg.max_epochs and resumed[:2] == interrupted
    assert all(np.isfinite(h["train_decoding_audio"]) for h in resumed)


def test_build_model_starts_the_audio_head_at_the_training_code_frequencies(movie):
    rng = np.random.default_rng(0)
    n, size = movie.n_trs, 8
    codes = rng.choice(size, size=(n, 2, 4), p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0])
    train = movie.labels == 0
    codes[~train] = 7  # codes outside the training block never reach the prior
    mask = np.ones((n, 4), bool)
    mask[::5, 3] = False  # padded slots (code 0 there) are not counted
    codes[:, :, 3][~mask[:, 3]] = 0
    audio = MovieData(**{**movie.__dict__, "stimulus": {**movie.stimulus, "audio_codes": codes, "audio_mask": mask},
                         "codebook_vectors": rng.standard_normal((2, size, 3)).astype(np.float32),
                         "modalities": ("audio", "video")})
    model = build_model(audio, OPTIONS, ("audio", "video"))
    valid = codes[train].transpose(1, 0, 2)[:, mask[train]]
    expected = np.stack([np.bincount(c, minlength=size) for c in valid]) / mask[train].sum()
    np.testing.assert_allclose(model.audio_head.code_bias.exp().detach().numpy(), expected, atol=1e-5)
    assert expected[:, 7].max() == 0 and expected[:, 0].min() > 0.35
