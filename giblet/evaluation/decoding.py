"""Decoding: stimulus features recovered from BOLD on a held-out block, next to chance, baselines and nulls.

Predictions travel as *views*, per modality a dict of arrays with the scored TRs on axis 0:

================== ================================= ===========================================
view               shape                             meaning
================== ================================= ===========================================
``descriptor``     (n_trs, n_descriptor)             the sound's per-TR descriptor (32-band log-mel, dB)
``code_log_probs`` (n_trs, n_codebooks, size)        per-TR EnCodec code log-probabilities, shared by the
                                                     TR's frames: the code model read at the descriptor
``pooled``         (n_trs, n_pooled)                 per-TR mean code vectors (``audio_pooled.npz`` layout);
                                                     decoded: their expectation under the code probabilities
``thumbs``         (n_trs, 3, height, width)         thumbnails in [0, 1]
``lowlevel``       (n_trs, n_video)                  low-level video features (``video_lowlevel_tr.npz``)
``embedding``      (n_trs, n_text)                   sentence embedding (``text_tr.npz``)
================== ================================= ===========================================

Codes are categories: decoded sound is scored by the **bits per code** its code probabilities gain
over the training unigram on the true codes (cross-entropy, per codebook and over all), and turned
into continuous features only through the codec's codebook vectors (``pooled``), never averaged as
numbers. The truth's score of ``code_log_probs`` is the code model's from the true descriptor (the
oracle); top-1/top-5 code accuracy counts only the frames that sound (silence takes each codebook's
commonest code, so counting it rewards the prior). Every metric is a per-TR score (higher is better), so that it can be averaged,
bootstrapped over TRs and circularly shifted for a null. TR identification ranks the true TR among
all scored TRs by the correlation of decoded and true features, each set z-scored per feature over
the scored TRs on its own (this removes a prediction's constant offset, e.g. a ridge decoder's
shrinkage to the training mean, and uses nothing about which decoded TR belongs to which true TR).
"""

from __future__ import annotations

import numpy as np
import torch

from giblet.audio.code_scores import tr_bits_gained
from giblet.audio.views import pooled_from_usage
from giblet.evaluation._batches import block_batch, one_subject, scatter
from giblet.evaluation.metrics import (at_shifts, bootstrap_ci, identification_rank_pairs, pearson_pairs,
                                      rank_accuracy, shifted_rank_accuracy, shifted_ssim)
from giblet.evaluation.nulls import PermutationResult, circular_shifts
from giblet.evaluation.targets import IDENTIFIED_VIEWS, RIDGE_VIEWS, code_log_probs

__all__ = [
    "audio_views",
    "decoder_outputs",
    "autoencoder_views",
    "ridge_views",
    "baseline_views",
    "truth_views",
    "shifted_scores",
    "score_views",
    "shifted_identification",
    "chance_levels",
    "decoding_rows",
]


def audio_views(descriptor, targets, confidence=1.0):
    """The views of a decoded audio descriptor: itself, its code log-probabilities and their expected pooled vectors.

    Parameters
    ----------
    descriptor : ndarray, shape (n_trs, n_descriptor), float
    targets : DecodingTargets
        Supplies the code model and the codec's codebooks (the true pooled view's).
    confidence : float or Tensor, default=1.0
        The code model's confidence in the descriptor (``GibletAutoencoder.audio_confidence``; see
        :meth:`~giblet.audio.code_model.CodeModelHead.forward`).

    Returns
    -------
    dict of str to ndarray
        ``descriptor``, ``code_log_probs`` and ``pooled`` (see the module docstring).
    """
    log_probs = code_log_probs(targets.audio_head, descriptor, confidence)
    pooled = pooled_from_usage(np.exp(log_probs.astype(np.float64)), targets.codebook_vectors)
    # bits per code first: the sound's headline (the report's lesion map shows each modality's first metric)
    return {"code_log_probs": log_probs, "descriptor": np.asarray(descriptor, dtype=np.float64), "pooled": pooled}


def decoder_outputs(model, data, subject, rows, *, source="measured_bold", bold=None, lesion=None, device="cpu"):
    """The autoencoder's decoder outputs at ``rows`` of the test block.

    Parameters
    ----------
    model : GibletAutoencoder
    data : MovieData
    subject : str
    rows : ndarray, shape (n_trs,), int
        TRs of the test block on the model clock.
    source : {"measured_bold", "predicted_bold"}, default="measured_bold"
        Decode the subject's measured BOLD (test block only; zero elsewhere), or the encoder's
        prediction from the stimulus (the autoencoder's reconstruction).
    bold : ndarray, shape (n_trs_total, n_voxels), optional
        Replaces the subject's measured BOLD (e.g. lesioned); ``"measured_bold"`` only.
    lesion : callable, optional
        ``lesion(voxels) -> voxels`` on the middle layer; ``"predicted_bold"`` only.
    device : str or torch.device

    Returns
    -------
    dict of str to Tensor
        Modality -> (n_trs, ...) on ``device``: audio descriptor, picture descriptor, text
        embedding (see :meth:`GibletAutoencoder.decode`).
    """
    if source not in ("measured_bold", "predicted_bold"):
        raise ValueError(f"source must be 'measured_bold' or 'predicted_bold', got {source!r}")
    spans, stimulus, measured = block_batch(model, one_subject(data, subject, bold), subject, "test", device)
    with torch.no_grad():
        if source == "measured_bold":
            outputs = model.decode(measured, subject)
        else:
            outputs = model.autoencode(stimulus, subject, lesion=lesion)[1]
    return {m: torch.from_numpy(scatter(spans, v.float(), data.n_trs, np.nan)[rows]).to(device)
            for m, v in outputs.items()}


def autoencoder_views(model, data, subject, targets, *, source="measured_bold", bold=None, lesion=None,
                      device="cpu"):
    """The autoencoder's decoded views on the scored TRs.

    Parameters
    ----------
    model, data, subject, source, bold, lesion, device
        See :func:`decoder_outputs`.
    targets : DecodingTargets

    Returns
    -------
    dict of str to dict of str to ndarray
        Modality -> views (see the module docstring).
    """
    outputs = decoder_outputs(model, data, subject, targets.rows, source=source, bold=bold, lesion=lesion,
                              device=device)
    return {modality: _OUTPUT_VIEWS[modality](model, value, targets) for modality, value in outputs.items()}


#: Modality -> ``(model, decoder output (n_trs, ...), targets) -> views``.
_OUTPUT_VIEWS = {
    "audio": lambda model, descriptor, targets: audio_views(descriptor.cpu().numpy(), targets,
                                                            model.audio_confidence),
    "video": lambda model, picture, targets: {
        "lowlevel": picture[:, : model.config.n_video_features].cpu().numpy().astype(np.float64),
        "thumbs": model.thumbnails(picture).cpu().numpy()},
    "text": lambda model, text, targets: {"embedding": text.cpu().numpy()[:, : targets.views["embedding"].shape[1]]},
}


def ridge_views(decoders, design, targets):
    """The ridge decoders' predictions on the scored TRs.

    Parameters
    ----------
    decoders : dict of str to RidgeMap
        ``baselines.joblib[subject]["decoders"]`` (modality -> decoder of its ``DECODING_TARGETS`` table).
    design : ndarray, shape (n_trs, n_voxels * n_delays)
        ``decoding_design`` rows of the scored TRs (``targets.rows``), from the (possibly lesioned) BOLD.
    targets : DecodingTargets

    Returns
    -------
    dict of str to dict of str to ndarray
    """
    if len(design) != targets.n_trs:
        raise ValueError(f"design has {len(design)} rows but {targets.n_trs} TRs are scored; pass the rows of "
                         "targets.rows")
    out = {}
    for modality, decoder in decoders.items():
        predicted = decoder.predict(design).astype(np.float64)
        out[modality] = audio_views(predicted, targets) if modality == "audio" else {RIDGE_VIEWS[modality]: predicted}
    return out


def baseline_views(views, targets):
    """Constant predictions from training TRs, in the views of ``views``: the unigram prior, mean features."""
    out = {}
    for view, value in views.items():
        constant = targets.log_prior if view == "code_log_probs" else targets.train_mean[view]
        out[view] = np.broadcast_to(constant, value.shape)
    return out


def truth_views(views, targets):
    """The true features in the views of ``views`` (their scores are the ceilings of the metrics; codes: the oracle)."""
    return {view: targets.views[view] for view in views}


#: Top-k code accuracies scored on the frames that sound.
TOP_K = (1, 5)


def _code_scores(views, targets, shifts):
    """Per TR: bits per code gained over the training unigram on the true codes (over all codebooks and per
    codebook), the same in bits per second of sound, and top-k code accuracy on the frames that sound."""
    counts, sounding = targets.views["code_counts"], targets.views["sounding_counts"]
    log_probs = np.asarray(views["code_log_probs"])
    gain = np.stack([tr_bits_gained(np.roll(log_probs, s, axis=0), targets.log_prior[None], counts) for s in shifts])
    frames = counts[:, 0].sum(axis=-1)
    out = {"bits_per_code": gain.mean(axis=2), "bits_per_second": gain.sum(axis=2) * frames / targets.tr_s,
           **{f"bits_per_code_cb{q}": gain[..., q] for q in range(gain.shape[2])}}
    total = sounding.sum(axis=(1, 2))
    for k in TOP_K:
        top = np.argpartition(-log_probs, k - 1, axis=-1)[..., :k]  # the k most probable codes, in any order
        hits = np.stack([np.take_along_axis(sounding, np.roll(top, s, axis=0), axis=-1).sum(axis=(1, 2))
                         for s in shifts])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"code_top{k}_sounding"] = np.where(total > 0, hits / total, np.nan)
    return out


def _descriptor_scores(views, targets, shifts):
    """Per TR, the correlation over features of the decoded and true descriptor (each z-scored over the scored
    TRs; 0 where the decoded descriptor does not vary over the scored TRs) and, with sound classes, the TR's share
    of the balanced sound-class accuracy."""
    z = _zscore(views["descriptor"])
    # a decoder that outputs the same descriptor at every TR (e.g. fed silenced BOLD) carries no information: r = 0
    out = {"descriptor_r": at_shifts(pearson_pairs(z, _zscore(targets.views["descriptor"])), shifts)}
    if targets.sound_classes is not None:
        out["sound_class_balanced_accuracy"] = at_shifts(_balanced_hits(z, targets.sound_classes), shifts)
    return out


def _balanced_hits(z, classes):
    """Nearest-centroid hits of every (decoded TR, true TR) pair, weighted so that their mean over labelled true TRs
    is the balanced accuracy (NaN: unlabelled)."""
    predicted = ((z[:, None, :] - classes.centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    labelled = classes.labels >= 0
    counts = np.bincount(classes.labels[labelled], minlength=len(classes.names))
    weight = labelled.sum() / (np.count_nonzero(counts) * np.maximum(counts[np.maximum(classes.labels, 0)], 1))
    return np.where(labelled, (predicted[:, None] == classes.labels[None]) * weight, np.nan)


def _thumb_scores(views, targets, shifts):
    return {"thumb_corr": at_shifts(pearson_pairs(views["thumbs"], targets.views["thumbs"]), shifts),
            "ssim": shifted_ssim(views["thumbs"], targets.views["thumbs"], shifts)}


def _text_scores(views, targets, shifts):
    decoded, true = views["embedding"], targets.views["embedding"]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (decoded @ true.T) / np.outer(np.linalg.norm(decoded, axis=1), np.linalg.norm(true, axis=1))
    retrieved = targets.text_index.nearest_texts(decoded, reference=true)
    hits = np.array([[np.nan if not ok else float(text in ok) for ok in targets.correct_texts] for text in retrieved])
    return {"cosine": at_shifts(cosine, shifts), "retrieval_accuracy": at_shifts(hits, shifts)}


def _zscore(x):
    """Columns z-scored over the scored TRs (each set on its own: no pairing of decoded and true TRs is used)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    varies = np.ptp(x, axis=0) > 0  # constant columns become 0 exactly (a mean can differ from them by rounding)
    centred = np.where(varies, x - x.mean(axis=0), 0.0)
    scale = centred.std(axis=0)
    return centred / np.where(varies, scale, 1.0)


#: View -> scorer ``(views, targets, shifts) -> {metric: per-TR scores under each shift}`` (besides TR
#: identification).
VIEW_SCORERS = {"code_log_probs": _code_scores, "descriptor": _descriptor_scores, "thumbs": _thumb_scores,
                "embedding": _text_scores}


def shifted_scores(views, targets, shifts):
    """Per-TR scores of one modality's views with the decoded sequence circularly shifted against the truth.

    Every view is scored once (z-scores, top-k codes, retrieval, blurred images) and every (decoded TR, true
    TR) pair at most once, so a whole circular-shift null costs about one scoring.

    Parameters
    ----------
    views : dict of str to ndarray
    targets : DecodingTargets
    shifts : sequence of int
        Shift ``s`` scores ``np.roll(view, s, axis=0)`` against the truth (0: as decoded).

    Returns
    -------
    dict of str to (str, ndarray)
        Metric -> (the view it scores, per-TR scores (n_shifts, n_trs) float64, higher is better).
        Every continuous view is also scored by TR identification: ``rank_accuracy``
        (1 - normalised rank; chance 0.5) and ``top1_identification`` (chance 1 / n_trs), prefixed
        ``descriptor_`` for the audio descriptor and ``thumbs_`` for thumbnails (pictures' headline:
        the low-level features, as the ridge decoder's).
    """
    out = {}
    for view in views:
        if view in VIEW_SCORERS:
            out.update({m: (view, s) for m, s in VIEW_SCORERS[view](views, targets, shifts).items()})
    for view, prefix in ((v, p) for v, p in IDENTIFIED_VIEWS.items() if v in views):
        ranks = at_shifts(identification_rank_pairs(_zscore(views[view]), _zscore(targets.views[view])), shifts)
        out[f"{prefix}rank_accuracy"] = (view, rank_accuracy(ranks, targets.n_trs))
        out[f"{prefix}top1_identification"] = (view, (ranks == 0).astype(np.float64))
    return out


def score_views(views, targets):
    """Per-TR scores of one modality's views as decoded: :func:`shifted_scores` at shift 0.

    Returns
    -------
    dict of str to (str, ndarray)
        Metric -> (the view it scores, per-TR scores (n_trs,) float64, higher is better).
    """
    return {metric: (view, scores[0]) for metric, (view, scores) in shifted_scores(views, targets, [0]).items()}


def shifted_identification(views, targets):
    """TR identification of every identified view under every circular shift (the headline's null, exhaustively).

    Returns
    -------
    dict of str to ndarray, shape (n_trs,), float64
        View -> mean rank accuracy with the decoded sequence shifted by 0, 1, ..., n_trs - 1 TRs
        (index 0: as decoded, the ``rank_accuracy`` of :func:`score_views`; the rest: its circular-shift null).
    """
    shifts = np.arange(targets.n_trs)
    return {view: shifted_rank_accuracy(_zscore(views[view]), _zscore(targets.views[view]), shifts)
            for view in IDENTIFIED_VIEWS if view in views}


def chance_levels(metrics, targets):
    """Analytic chance of each metric (NaN where there is none: correlations, SSIM, cosine)."""
    retrieval = np.nan
    if targets.text_index is not None:
        texts = np.asarray(targets.text_index.texts)
        retrieval = np.nanmean([np.isin(texts, list(ok)).mean() if ok else np.nan for ok in targets.correct_texts])
    chance = {"rank_accuracy": 0.5, "top1_identification": 1.0 / targets.n_trs, "retrieval_accuracy": retrieval}
    if targets.audio_head is not None:
        chance.update({f"code_top{k}_sounding": k / targets.log_prior.shape[1] for k in TOP_K})
    if targets.sound_classes is not None:
        labels = targets.sound_classes.labels
        chance["sound_class_balanced_accuracy"] = 1.0 / max(len(np.unique(labels[labels >= 0])), 1)
    chance.update({f"{prefix}{m}": chance[m] for prefix in ("descriptor_", "thumbs_")
                   for m in ("rank_accuracy", "top1_identification")})
    return {m: 0.0 if m.startswith("bits_per_") else chance.get(m, np.nan) for m in metrics}


def decoding_rows(model_name, input_name, views_by_modality, targets, *, n_permutations=1000, seed=0,
                  n_bootstrap=1000, block_trs=5):
    """Tidy rows: every metric of every modality with chance, the training baseline, the truth's score and a null.

    Parameters
    ----------
    model_name : str
        ``"autoencoder"`` or ``"ridge"``.
    input_name : str
        ``"measured_bold"`` or ``"predicted_bold"``.
    views_by_modality : dict of str to dict of str to ndarray
        From :func:`autoencoder_views` or :func:`ridge_views`.
    targets : DecodingTargets
    n_permutations : int, default=1000
        Circular shifts of the decoded sequence against the truth (at most n_trs - 1).
    seed : int, default=0
    n_bootstrap, block_trs : int, default=1000, 5
        The score's moving-block bootstrap 95 % interval over TRs (``ci_low``, ``ci_high``).

    Returns
    -------
    list of dict
        Keys ``model, input, modality, metric, features, score, ci_low, ci_high, chance, baseline, ceiling,
        null_mean, p, n_trs``: ``baseline`` scores the constant training prediction (unigram codes, mean features),
        ``ceiling`` the true features themselves (sound: the code model from the true descriptor), ``null_mean`` and the one-sided ``p`` the decoded
        sequence circularly shifted against the truth.
    """
    rows = []
    for modality, views in views_by_modality.items():
        scores = score_views(views, targets)
        names = list(scores)
        baseline = score_views(baseline_views(views, targets), targets)
        ceiling = score_views(truth_views(views, targets), targets)
        chance = chance_levels(names, targets)

        shifts = circular_shifts(targets.n_trs, n_permutations, np.random.default_rng(seed))
        shifted = shifted_scores(views, targets, shifts)
        null = PermutationResult.from_null([np.nanmean(scores[m][1]) for m in names],
                                           np.stack([np.nanmean(shifted[m][1], axis=1) for m in names], axis=1))
        per_tr = np.stack([np.asarray(scores[m][1], dtype=np.float64) for m in names], axis=1)
        _, low, high = bootstrap_ci(per_tr, n_bootstrap=n_bootstrap, seed=seed, block_trs=min(block_trs, len(per_tr)))
        for i, metric in enumerate(names):
            rows.append({"model": model_name, "input": input_name, "modality": modality, "metric": metric,
                         "features": scores[metric][0], "score": null.observed[i], "ci_low": low[i],
                         "ci_high": high[i], "chance": chance[metric],
                         "baseline": np.nanmean(baseline[metric][1]), "ceiling": np.nanmean(ceiling[metric][1]),
                         "null_mean": null.null_mean[i],
                         "p": null.p[i], "n_trs": targets.n_trs})
    return rows
