"""Train the autoencoder: fMRI match + reconstruction through the middle layer + decoding from BOLD."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from giblet.blocks import column_blocks
from giblet.compute import resolve_device
from giblet.io import atomic_path
from giblet.models import AutoencoderConfig, GibletAutoencoder
from giblet.models.losses import fmri_losses, reconstruction_losses
from giblet.outputs import TRAIN_CHECKPOINT
from giblet.provenance import run_key
from giblet.stats import block_bootstrap_pearson, pearson_columns
from giblet.training.data import make_batch, windows

__all__ = ["TrainConfig", "build_model", "train", "to_tensors"]

log = logging.getLogger(__name__)

#: Voxels per subject (evenly spaced) on which the trunk's validation gain over the routes is bootstrapped.
BOOTSTRAP_VOXELS = 4096


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (config section ``train``); defaults match the schema."""

    max_epochs: int = 60  # upper bound; early stopping on the validation block usually ends sooner
    patience: int = 8  # epochs without validation improvement before stopping
    lr: float = 2e-3  # AdamW peak learning rate, cosine-annealed to 0 over max_epochs
    weight_decay: float = 1e-2
    window_trs: int = 32  # TRs per training window (plus encoder/decoder context)
    stride_trs: int = 16  # step between training windows
    batch_windows: int = 8  # windows per optimisation step (every subject sees each)
    weight_fmri_mse: float = 1.0
    weight_fmri_pearson: float = 1.0
    weight_reconstruction: float = 1.0  # stimulus -> predicted voxels -> stimulus
    weight_decoding: float = 1.0  # measured BOLD -> stimulus
    group_target_weight: float = 0.0  # the other subjects' mean in the encoding target (MovieData.encoding_target)


def build_model(data, model_options, modalities, code_model=None):
    """An autoencoder sized for ``data`` (voxel counts, feature widths, codebooks) holding ``code_model``.

    With audio, ``code_model`` (a :class:`~giblet.audio.code_model.CodeModel` fitted by
    ``fit-code-model``) becomes the audio head; the audio routes are left empty (see
    :func:`giblet.training.routes.fit_routes`).
    """
    stim = data.stimulus
    sizes = {"n_voxels": {s: v.shape[1] for s, v in data.bold.items()}, "modalities": tuple(modalities)}
    if "audio" in modalities:
        if code_model is None:
            raise ValueError("the audio modality needs the code model: run `giblet fit-code-model` and pass its "
                             "code_model.npz")
        n_cb, size, dim = data.codebook_vectors.shape
        sizes.update(n_codebooks=n_cb, codebook_size=size, codebook_dim=dim, frames_per_tr=stim["audio_mask"].shape[1],
                     n_audio_descriptor=code_model.n_features)
    if "video" in modalities:
        sizes.update(n_video_features=stim["video"].shape[1], thumb_shape=tuple(stim["thumbs"].shape[1:]))
    if "text" in modalities:
        sizes["n_text_features"] = stim["text"].shape[1]
    if data.feature_bands:
        sizes["route_bands"] = tuple(data.feature_bands)
    config = AutoencoderConfig(**sizes, **model_options)
    vectors = None if data.codebook_vectors is None else torch.from_numpy(data.codebook_vectors)
    model = GibletAutoencoder(config, codebook_vectors=vectors)
    if "audio" in modalities:
        model.audio_head.set_model(code_model)
    return model


def to_tensors(arrays, device):
    if isinstance(arrays, dict):
        return {k: to_tensors(v, device) for k, v in arrays.items()}
    return torch.from_numpy(np.ascontiguousarray(arrays)).to(device)


def _fit_scores(predicted, routes, goal, valid):
    """The mean voxel r of ``predicted`` against ``goal`` on the ``valid`` rows (in float64, a block of voxels at a
    time: whole-brain rows are never copied whole), and the scored rows' ``(predicted, routes alone, goal)`` at up
    to ``BOOTSTRAP_VOXELS`` evenly spaced voxels."""
    r = [pearson_columns(*(x[..., block][valid].double().cpu().numpy() for x in (predicted, goal)))
         for block in column_blocks(predicted.shape[-1])]
    sample = torch.as_tensor(np.unique(np.linspace(0, predicted.shape[-1] - 1, BOOTSTRAP_VOXELS).astype(int)),
                             device=predicted.device)
    routes = torch.as_tensor(routes, device=predicted.device).expand_as(predicted)
    return float(np.nanmean(np.concatenate(r))), tuple(x[..., sample][valid].double().cpu().numpy()
                                                       for x in (predicted, routes, goal))


def _step_losses(model, batch, target, bold, valid, goal, cfg, fmri_out=None):
    """Weighted loss terms of one batch, averaged over subjects (tensors).

    The predicted BOLD is matched to ``goal`` (the encoding target, :meth:`MovieData.encoding_target`), the
    decoder reads ``bold``. ``fmri_out``, a dict, receives per subject what the encoder is selected by: the
    mean voxel r of its prediction, and the scored rows' ``(predicted, routes alone, target)`` BOLD at up to
    ``BOOTSTRAP_VOXELS`` evenly spaced voxels.
    """
    terms = {}

    def add(name, value, weight):
        if weight:
            terms[name] = terms.get(name, 0.0) + weight * value

    embedding = model.embed_stimulus(batch)
    for subject in bold:
        fmri_valid = valid[subject] & target
        routes = model.stimulus_routes(batch, subject)
        predicted = model.readout(embedding, subject) + routes
        fmri = fmri_losses(predicted, goal[subject], fmri_valid)
        if fmri_out is not None:
            fmri_out[subject] = _fit_scores(predicted, routes, goal[subject], fmri_valid)
        add("fmri_mse", fmri["mse"], cfg.weight_fmri_mse)
        add("fmri_pearson", fmri["neg_pearson"], cfg.weight_fmri_pearson)
        recon = reconstruction_losses(model.predict_stimulus(model.readin(predicted, subject)), batch, target)
        decoded = reconstruction_losses(model.predict_stimulus(model.readin(bold[subject], subject)), batch,
                                        fmri_valid)
        for modality, value in recon.items():
            add(f"reconstruction_{modality}", value, cfg.weight_reconstruction)
        for modality, value in decoded.items():
            add(f"decoding_{modality}", value, cfg.weight_decoding)
    return {k: v / len(bold) for k, v in terms.items()}


def _spans(model, data, block, cfg):
    config = model.config
    before, after = config.encoder_past_trs, max(config.decoder_delays_trs)
    if block == "train":
        return windows(data, block, cfg.window_trs, cfg.stride_trs, before, after)
    return windows(data, block, None, None, before, after)  # whole pieces


def evaluate_loss(model, data, block, cfg, device):
    """Mean weighted loss terms over ``block`` (whole pieces, eval mode), and the block's fMRI fit.

    Returns ``(terms, fmri)``: the terms as floats, and per subject the ``(predicted, routes alone, measured)``
    BOLD of the block's scored TRs (:func:`encoder_score`).
    """
    model.eval()
    spans = _spans(model, data, block, cfg)
    if not spans:
        raise ValueError(f"the split has no {block!r} TRs; give split.fractions a share for it")
    fmri = {}
    with torch.no_grad():
        batch, target, bold, valid, goal = (to_tensors(x, device) for x in make_batch(data, spans, block))
        terms = _step_losses(model, batch, target, bold, valid, goal, cfg, fmri)
    return {k: float(v) for k, v in terms.items()}, fmri


def encoder_score(fmri, n_tests=1, n_bootstrap=200, block_trs=10, seed=0):
    """The encoder's validation fMRI fit and how surely it beats its routes alone.

    Returns ``(r, lower)``: the mean over subjects of the mean voxel r, and the lower bound of its gain over
    the routes alone (the encoder before training): the gain minus ``z`` standard errors, the standard error
    from a moving-block bootstrap of the validation TRs (blocks of ``block_trs``, the same draws for both)
    and ``z`` the one-sided normal quantile of 5 % over ``n_tests`` (every epoch is one test). A trained trunk
    is kept only where ``lower > 0``: on a few hundred autocorrelated validation TRs, a gain within the noise
    did not hold on test blocks.
    """
    gain, resampled = [], []  # per subject: the model's mean voxel r minus its routes', on all TRs and per resample
    for model, routes, measured in (arrays for _, arrays in fmri.values()):
        gain.append(np.nanmean(pearson_columns(model, measured)) - np.nanmean(pearson_columns(routes, measured)))
        r = block_bootstrap_pearson(np.stack([model, routes]), measured, n_bootstrap=n_bootstrap,
                                    block_trs=min(block_trs, len(measured)), seed=seed)
        resampled.append(np.nanmean(r[:, 0], axis=1) - np.nanmean(r[:, 1], axis=1))
    gain, spread = np.mean(gain), np.std(np.mean(resampled, axis=0))
    z = stats.norm.isf(0.05 / n_tests)
    return float(np.mean([r for r, _ in fmri.values()])), float(gain - z * spread)


def _resumable(checkpoint, key, device):
    """The checkpoint's saved state when it was written by this very run (the same key), else None."""
    if not checkpoint.exists():
        return None
    saved = torch.load(checkpoint, map_location=device, weights_only=False)
    if saved.get("run_key") != key:
        log.warning("%s belongs to another run (other inputs, settings or giblet code); training afresh", checkpoint)
        return None
    return saved


def _rng_states():
    """torch's global RNG states: the CPU's and, when present, every CUDA device's."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(states):
    torch.set_rng_state(states["cpu"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def _is_encoder(name):
    return name.split(".", 1)[0] in GibletAutoencoder.ENCODER_PARTS


def _validate(model, data, cfg, device, state):
    """Score the model on the validation block and keep each half's weights where its score is best.

    The encoder half is selected by the validation fMRI fit (mean voxel r), the decoder half by its
    validation decoding loss (stimulus decoded from measured BOLD), each by terms that depend on its
    own weights only; trained without decoding terms (``weight_decoding: 0``), the decoder is selected by
    its reconstruction terms instead. Returns the record and whether either half improved.
    """
    val, fmri = evaluate_loss(model, data, "val", cfg, device)
    fmri_r, gain_lower = encoder_score(fmri, n_tests=cfg.max_epochs)
    encoder_better = fmri_r > state["best"]["encoder"][0] and (state["epoch"] == 0 or gain_lower > 0)
    prefix = "decoding_" if any(k.startswith("decoding_") for k in val) else "reconstruction_"
    decoder_loss = sum(v for k, v in val.items() if k.startswith(prefix))
    improved = False
    weights = dict(model.named_parameters())  # buffers (the closed-form routes: whole-brain GiBs) never train
    for half, score, better in (("encoder", fmri_r, encoder_better),
                                ("decoder", decoder_loss, decoder_loss < state["best"]["decoder"][0])):
        if better:
            improved = True
            kept = {k: v.detach().cpu().clone() for k, v in weights.items() if _is_encoder(k) == (half == "encoder")}
            state["best"][half] = (score, state["epoch"], kept)
    record = {"epoch": state["epoch"], "val_loss": sum(val.values()), "val_fmri_r": fmri_r,
              "val_gain_over_routes_lower": gain_lower, "val_decoder_loss": decoder_loss, **{f"val_{k}": v for k, v in val.items()}}
    return record, improved


def train(model, data, cfg, out_dir, *, seed=0, device=None, stop_after_epochs=None, inputs_key=""):
    """Train ``model`` on the training block, selecting each half on the validation block.

    Before the first epoch and after every epoch, the encoder keeps its weights if the validation
    fMRI fit (mean voxel r) is the best so far, the decoder if its validation decoding loss is; training
    stops when neither has improved for ``cfg.patience`` epochs. Epoch 0 is the model as built (its
    readouts start at zero: the encoder's closed-form routes alone), so training never leaves the
    encoder worse on the validation block than its routes; a trained epoch replaces them only when its
    gain over them is beyond the validation block's noise (:func:`encoder_score`).

    A checkpoint (model, optimizer, scheduler, RNG states, history) is written after every
    epoch to ``out_dir/checkpoint.pt`` under a key of everything the run depends on
    (``inputs_key``: the content of its input files, see :func:`giblet.provenance.run_key`;
    the train and model configs; the seed; giblet's code). A run with the same key continues from
    it and ends exactly as an uninterrupted one would (``stop_after_epochs`` interrupts a run on
    purpose; delete the checkpoint to start afresh); a checkpoint of any other run is ignored and
    overwritten.
    Returns the history (list of dicts) and leaves each half's best validation weights in ``model``.
    """
    device = resolve_device(device)
    torch.manual_seed(seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.max_epochs)
    state = {"epoch": 0, "best": {"encoder": (-math.inf, 0, None), "decoder": (math.inf, 0, None)}, "bad_epochs": 0,
             "history": []}
    checkpoint = Path(out_dir) / TRAIN_CHECKPOINT
    key = run_key([], {"train": asdict(cfg), "model": model.config.to_dict(), "seed": seed, "inputs": inputs_key})
    saved = _resumable(checkpoint, key, device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_states(saved["rng"])
        state = saved["state"]
        log.info("resuming from %s at epoch %d", checkpoint, state["epoch"])
    else:
        record, _ = _validate(model, data, cfg, device, state)
        state["history"].append(record)
        log.info("epoch 0 (routes alone): validation fMRI r %.4f", record["val_fmri_r"])
    spans = _spans(model, data, "train", cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    progress = tqdm(range(state["epoch"], cfg.max_epochs), desc="train", unit="epoch", initial=state["epoch"],
                    total=cfg.max_epochs)
    last_epoch = cfg.max_epochs if stop_after_epochs is None else state["epoch"] + stop_after_epochs
    for epoch in progress:
        if state["bad_epochs"] >= cfg.patience or epoch >= last_epoch:
            break
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(spans))
        sums = {}
        for start in range(0, len(order), cfg.batch_windows):
            chosen = [spans[i] for i in order[start : start + cfg.batch_windows]]
            batch, target, bold, valid, goal = (to_tensors(x, device) for x in make_batch(data, chosen, "train"))
            with autocast:
                terms = _step_losses(model, batch, target, bold, valid, goal, cfg)
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(chosen)
        scheduler.step()
        state["epoch"] = epoch + 1
        record, improved = _validate(model, data, cfg, device, state)
        record = {**record, "lr": scheduler.get_last_lr()[0], "train_loss": sum(sums.values()) / len(spans),
                  **{f"train_{k}": v / len(spans) for k, v in sums.items()}}
        state["history"].append(record)
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        progress.set_postfix(train=f"{record['train_loss']:.3f}", val_r=f"{record['val_fmri_r']:.3f}")
        log.info("epoch %d: train %.4f, validation fMRI r %.4f, decoder loss %.4f", epoch + 1, record["train_loss"],
                 record["val_fmri_r"], record["val_decoder_loss"])
        with atomic_path(checkpoint) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": _rng_states(), "state": state, "run_key": key},
                       tmp)
    if stop_after_epochs is None:
        for half in ("encoder", "decoder"):
            _, best_epoch, kept = state["best"][half]
            if kept is not None:
                model.load_state_dict(kept, strict=False)
            log.info("%s: weights of epoch %d", half, best_epoch)
    return state["history"]
