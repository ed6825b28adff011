"""The ``train`` stage: the autoencoder and its ridge baselines, saved side by side."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import joblib
import pandas as pd
import torch

from giblet.audio.code_model import CodeModel
from giblet.features import FeatureTable
from giblet.io import atomic_path, write_json
from giblet.models import count_parameters
from giblet.provenance import run_key
from giblet.training.baselines import (DECODING_TARGETS, decoding_rows, encoder_rows, encoding_design, fit_encoder,
                                      fit_ridge)
from giblet.training.data import load_movie_data
from giblet.training.routes import fit_routes
from giblet.training.trainer import TrainConfig, build_model, train

__all__ = ["run_train", "save_model", "load_model"]

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

    Both are fitted on the model clock (``data.bold``); the encoder's features are the stored-clock
    FIR design ``preshift_trs`` rows earlier.
    """
    X_enc = encoding_design(aligned_paths)
    if len(X_enc) != data.n_trs:
        raise ValueError(f"aligned features have {len(X_enc)} volumes but the fMRI has {data.n_trs}")
    targets = {modality: FeatureTable.load(Path(features_dir) / file).values
               for modality, file in DECODING_TARGETS.items()
               if (Path(features_dir) / file).exists() and modality in data.modalities}
    targets.update(data.descriptors)
    out = {}
    for subject in data.subjects:
        encoder = fit_encoder(data, X_enc, subject, preshift_trs)
        dec_rows = decoding_rows(data.bold_valid[subject], data.labels, data.runs, "train", decoder_delays)
        decoders = {modality: fit_ridge(data.bold[subject], target, dec_rows, lags=decoder_delays)
                    for modality, target in targets.items()}
        out[subject] = {"encoder": encoder, "decoders": decoders, "decoder_delays_trs": tuple(decoder_delays)}
        log.info("%s: ridge encoder on %d TRs x %d features, decoders for %s", subject, encoder_rows(data, subject).sum(),
                 X_enc.shape[1], sorted(decoders))
    return out


def _inputs_key(features_dir, aligned_paths, prepared_paths, code_model_path, modalities, preshift_trs):
    """Key of the training data: every feature, aligned, prepared fMRI and code model file's content, the
    modalities and clock."""
    features = [p for p in Path(features_dir).iterdir() if p.is_file() and not p.name.startswith(".")]
    code_model = [code_model_path] if code_model_path else []
    return run_key([*features, *aligned_paths, *prepared_paths, *code_model],
                   {"modalities": list(modalities), "preshift_trs": preshift_trs})


def run_train(features_dir, aligned_paths, prepared_paths, out_dir, *, modalities, code_model_path=None,
              train_options=None, model_options=None, preshift_trs=0, seed=0, device=None, resume=True):
    """Fit the ridge baselines and the autoencoder's routes for sound and pictures, then train the autoencoder.

    With audio, ``code_model_path`` (``fit-code-model``'s ``code_model.npz``) is the audio head
    and names the descriptor of the audio routes (:mod:`giblet.training.routes`). Gradient
    training stops early on the validation block.

    Writes ``autoencoder.pt`` (config + best weights), ``checkpoint.pt`` (state that only a rerun
    on the same inputs, settings and code resumes),
    ``history.tsv`` (losses per epoch), ``baselines.joblib`` (per-subject ridge models) and
    ``summary.json`` (parameter counts, epochs, best validation loss, the routes' voxels and the
    code model's confidence, wall time).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(**(train_options or {}))
    code_model = CodeModel.load(code_model_path) if code_model_path else None
    descriptor = code_model.meta.get("descriptor", "audio_logmel_tr.npz") if code_model else "audio_logmel_tr.npz"
    data = load_movie_data(features_dir, prepared_paths, modalities, preshift_trs, audio_descriptor=descriptor,
                           group_target_weight=cfg.group_target_weight)
    torch.manual_seed(seed)
    model = build_model(data, model_options or {}, modalities, code_model)
    routes = fit_routes(model, data)
    log.info("autoencoder: %d trainable parameters, %d subjects, modalities %s",
             count_parameters(model, trainable_only=True), len(data.subjects), list(modalities))
    with atomic_path(out_dir / "baselines.joblib") as tmp:  # first: their coefficients are not held while training
        joblib.dump(_fit_baselines(data, features_dir, aligned_paths, model.config.decoder_delays_trs, preshift_trs),
                    tmp)
    started = time.perf_counter()
    history = train(model, data, cfg, out_dir, seed=seed, device=device, resume=resume,
                    inputs_key=_inputs_key(features_dir, aligned_paths, prepared_paths, code_model_path, modalities,
                                           preshift_trs))
    train_s = time.perf_counter() - started
    model.cpu()
    save_model(model, out_dir / "autoencoder.pt", video_stats=data.video_stats, preshift_trs=preshift_trs,
               audio_descriptor=descriptor)
    with atomic_path(out_dir / "history.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_json(out_dir / "summary.json", {
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
