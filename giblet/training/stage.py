"""The ``train`` stage: the autoencoder and its ridge baselines, saved side by side."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib
import pandas as pd
import torch

from giblet.audio.code_model import CodeModel
from giblet.io import atomic_path, write_json
from giblet.models import count_parameters
from giblet.outputs import TRAIN_CHECKPOINT, TRAIN_OUTPUTS
from giblet.provenance import run_key
from giblet.training.baselines import EncodingDesign, decoder_targets, fit_decoders
from giblet.training.data import load_movie_data
from giblet.training.routes import fit_routes
from giblet.training.trainer import TrainConfig, build_model, train

__all__ = ["TrainingInputs", "TrainingSetup", "run_train", "save_model", "load_model"]

log = logging.getLogger(__name__)


def save_model(model, path, **extra):
    """Write the model's config and weights (plus ``extra`` JSON-able/array items) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), **extra}, tmp)
    return Path(path)


def load_model(path, device="cpu"):
    """Rebuild a saved autoencoder in eval mode; returns (model, the saved dict)."""
    from giblet.models import AutoencoderConfig, GibletAutoencoder

    saved = torch.load(path, map_location=device, weights_only=False)
    older = any(key.startswith("audio_encoders.") for key in saved["state_dict"])  # before the per-band routes
    if older or ("audio" in saved["config"]["modalities"] and "audio_descriptor" not in saved):
        raise ValueError(f"{path} was trained by an older giblet (no code model, no audio window decoders); rerun "
                         "the train stage")
    model = GibletAutoencoder(AutoencoderConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved


def _fit_baselines(data, features_dir, aligned_paths, decoder_delays, preshift_trs):
    """Per subject: ridge encoder (FIR features -> voxels) and ridge decoders (BOLD window -> targets).

    Both are fitted on the model clock (``data.bold``); the encoder reads the FIR design through its
    clock (:class:`~giblet.training.baselines.EncodingDesign`).
    """
    design = EncodingDesign.load(aligned_paths, data.runs, preshift_trs)
    targets = decoder_targets(data, features_dir)
    out = {}
    for subject in data.subjects:
        encoder = design.fit(data, subject)
        decoders = fit_decoders(data, subject, targets, decoder_delays)
        out[subject] = {"encoder": encoder, "decoders": decoders, "decoder_delays_trs": tuple(decoder_delays)}
        log.info("%s: ridge encoder on %d TRs x %d features, decoders for %s", subject,
                 design.training_rows(data, subject).sum(), design.values.shape[1], sorted(decoders))
    return out


def _inputs_key(inputs, setup):
    """Key of the training data: every feature, aligned, prepared fMRI and code model file's content, the
    modalities and clock."""
    features = [p for p in Path(inputs.features_dir).iterdir() if p.is_file() and not p.name.startswith(".")]
    code_model = [inputs.code_model_path] if inputs.code_model_path else []
    return run_key([*features, *inputs.aligned_paths, *inputs.prepared_paths, *code_model],
                   {"modalities": list(setup.modalities), "preshift_trs": setup.preshift_trs})


@dataclass(frozen=True)
class TrainingInputs:
    """What ``train`` and ``cross-validate`` read.

    Attributes
    ----------
    features_dir : path
        Feature stages' folder.
    aligned_paths : tuple of path
        The ``align`` stage's FIR tables (the ridge encoder's design, stored clock).
    prepared_paths : tuple of path
        ``prepare-fmri`` files, one per subject.
    code_model_path : path, optional
        ``fit-code-model``'s ``code_model.npz`` (needed with audio).
    """

    features_dir: Path
    aligned_paths: tuple
    prepared_paths: tuple
    code_model_path: Path | None = None


@dataclass(frozen=True)
class TrainingSetup:
    """How the autoencoder is built and trained: the config's ``modalities``, ``train``, ``model``,
    ``fmri.preshift_trs``, ``seed`` and ``device``."""

    modalities: tuple
    train: TrainConfig = TrainConfig()
    model_options: dict = field(default_factory=dict)
    preshift_trs: int = 0
    seed: int = 0
    device: str | None = None

    @classmethod
    def from_config(cls, cfg):
        return cls(tuple(cfg["modalities"]), TrainConfig(**cfg["train"]), dict(cfg["model"]),
                   cfg["fmri"]["preshift_trs"], cfg["seed"], cfg["device"])

    def load_data(self, inputs, split=None):
        """The :class:`~giblet.training.data.MovieData` these settings train on, and the code model (or None)."""
        code_model = CodeModel.load(inputs.code_model_path) if inputs.code_model_path else None
        data = load_movie_data(inputs.features_dir, inputs.prepared_paths, self.modalities, self.preshift_trs,
                               audio_descriptor=_descriptor(code_model), split=split,
                               group_target_weight=self.train.group_target_weight)
        return data, code_model


def _descriptor(code_model):
    """The per-TR audio descriptor table the code model reads (the 32-band log-mel without one)."""
    return code_model.meta.get("descriptor", "audio_logmel_tr.npz") if code_model else "audio_logmel_tr.npz"


def run_train(inputs, out_dir, setup, restart=False):
    """Fit the ridge baselines and the autoencoder's routes for sound and pictures, then train the autoencoder.

    With audio, ``inputs.code_model_path`` (``fit-code-model``'s ``code_model.npz``) is the audio head
    and names the descriptor of the audio routes (:mod:`giblet.training.routes`). Gradient
    training stops early on the validation block; ``restart`` ignores an existing checkpoint.

    Writes ``autoencoder.pt`` (config + best weights), ``checkpoint.pt`` (state that only a rerun
    on the same inputs, settings and code resumes),
    ``history.tsv`` (losses per epoch), ``baselines.joblib`` (per-subject ridge models) and
    ``summary.json`` (parameter counts, epochs, best validation loss, the routes' voxels and the
    code model's confidence, wall time).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if restart:
        (out_dir / TRAIN_CHECKPOINT).unlink(missing_ok=True)
    cfg = setup.train
    data, code_model = setup.load_data(inputs)
    torch.manual_seed(setup.seed)
    model = build_model(data, setup.model_options, setup.modalities, code_model)
    routes = fit_routes(model, data)
    log.info("autoencoder: %d trainable parameters, %d subjects, modalities %s",
             count_parameters(model, trainable_only=True), len(data.subjects), list(setup.modalities))
    with atomic_path(out_dir / TRAIN_OUTPUTS["baselines"]) as tmp:  # first: their coefficients are not held while training
        joblib.dump(_fit_baselines(data, inputs.features_dir, inputs.aligned_paths, model.config.decoder_delays_trs,
                                   setup.preshift_trs), tmp)
    started = time.perf_counter()
    history = train(model, data, cfg, out_dir, seed=setup.seed, device=setup.device,
                    inputs_key=_inputs_key(inputs, setup))
    train_s = time.perf_counter() - started
    model.cpu()
    save_model(model, out_dir / TRAIN_OUTPUTS["model"], video_stats=data.video_stats, preshift_trs=setup.preshift_trs,
               audio_descriptor=_descriptor(code_model))
    with atomic_path(out_dir / TRAIN_OUTPUTS["history"]) as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_json(out_dir / TRAIN_OUTPUTS["summary"], {
        "trainable_parameters": count_parameters(model, trainable_only=True),
        "all_parameters": count_parameters(model),
        "epochs": len(history),
        "best_val_loss": min((h["val_loss"] for h in history), default=None),
        "train_seconds": round(train_s, 1),
        "train_config": asdict(cfg),
        "model_config": model.config.to_dict(),
        "routes": routes,
        "subjects": list(data.subjects),
    })
    return out_dir
