"""The autoencoder's closed-form routes (encoding by feature band; decoding sound, pictures and text), fitted on the
training and validation blocks only.

What BOLD can tell about a TR's sound is low-dimensional (its spectral envelope), and a decoder
that reads every voxel drowns it in noise: on the demo, ridge from all voxels to the log-mel
gained nothing over the code prior, the same ridge from the voxels that encode the log-mel gained
+0.37 bits per code. Likewise, in a shared trunk text and video take the place of sound in
auditory voxels (they fit the training block and fail on the test block). So, per subject:

1. every voxel is scored by how well the descriptor (the 32-band log-mel) predicts it: ridge from
   the descriptor at TRs ``u - d`` (``d`` in the delays) to the voxel at ``u``, cross-validated over
   contiguous folds of the training block (each fold a held-out block);
2. **encoder routes**: every feature band the encoder reads (the log-mel, the low-level video
   features, the text embedding, the annotation labels) is scored the same way; a voxel takes the
   route of the band that predicts it best out of sample (cross-validated r > 0), kept if that
   band's ridge, fitted on the whole training block with one penalty per voxel, also predicts the
   validation block (r > 0). The route is fitted to the subject's encoding target
   (:meth:`~giblet.training.data.MovieData.encoding_target`: its own BOLD, blended with the other
   subjects' mean on the same training TRs when ``train.group_target_weight`` > 0) and checked on its
   own validation BOLD. The routes add to the trunk, which then only complements them. (A
   threshold of 3 spreads of the chance scores, used before, suits the demo's mix of driven and
   noise voxels but left all but 0-19 of the 481 PMC voxels of Sherlock without a route, where
   every voxel is weakly driven and the ridge baseline predicts them all.)
3. **window decoder**: for each size ``n`` in a grid, a ridge decoder maps the window of the ``n``
   best-scored voxels at ``t + d`` to the descriptor at ``t``; the size with the best validation r,
   averaged over subjects, is kept and refitted on the training and validation blocks;
4. **confidence**: the code model read at the decoded descriptor is tempered toward its prior by
   the factor that gains most bits per code on the validation block (decoders fitted on the
   training block alone).

Pictures get the same window decoder (step 3) of their own descriptor: the low-level video
features and the leading principal components of the thumbnails (PCA on the training TRs), from
which the decoded thumbnails are rebuilt (on the demo: TR identification 0.81 where the trunk's
thumbnail head reached 0.58 and ridge from all voxels 0.69). Text gets one too, from the voxels that
encode the text embedding (the text band's encoder-route scores when routes are chosen per band; up
to 128 voxels) to the embedding and label fractions; the trunk's text head, which starts at zero,
adds to it (on Sherlock, fold 1: TR identification 0.584 where the trunk alone reached
0.52-0.55 over three seeds and the ridge decoder from all voxels 0.579).

The test block is never read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from himalaya.scoring import correlation_score
from sklearn.decomposition import PCA

from giblet.audio.code_scores import code_counts, tr_bits_gained
from giblet.models.config import ROUTE_BANDS
from giblet.splits import BLOCKS
from giblet.training.baselines import decoding_design, decoding_rows
from giblet.training.ridge import RidgeMap, cross_validated_r, fit_ridge
from giblet.training.encoder_routes import (encoding_rows, fit_encoder_routes, fit_joint_routes, lagged_weights,
                                            trailing_means)

__all__ = ["N_VOXELS_GRID", "TEXT_VOXELS_GRID", "CONFIDENCE_GRID", "WindowFit", "encoding_rows", "voxel_encoding_scores",
           "fit_window_decoders", "fit_joint_routes", "fit_encoder_routes", "picture_descriptor", "fit_routes"]

log = logging.getLogger(__name__)

#: Confidences tried for the code model read at a decoded descriptor (0: its prior; 1: as if the descriptor were true).
CONFIDENCE_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))
#: Numbers of best-encoded voxels tried per subject (sizes above a subject's voxel count take all its voxels).
N_VOXELS_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
#: The text decoder's sizes: its validation r peaks at 16-64 voxels on Sherlock and on the demo at 64-128 (the
#: larger windows only cost time: the text decoders are fitted on every cross-validation fold)
TEXT_VOXELS_GRID = tuple(n for n in N_VOXELS_GRID if n <= 128)


@dataclass(frozen=True)
class WindowFit:
    """One subject's fitted window decoder.

    Attributes
    ----------
    selected : ndarray, shape (n_selected,), int
        Voxel indices, ascending.
    ridge : RidgeMap
        On the window ``[bold[t + d, selected] for d in delays]``, refitted on the training and
        validation blocks.
    encoding_r : ndarray, shape (n_voxels,), float64
        Cross-validated encoding r of every voxel on the training block (the ranking).
    validation_r : dict of int to float
        Size tried -> mean r over the descriptor's features on the validation block.
    validation : tuple of ndarray
        ``(decoded (n_rows, n_features), rows (n_trs,) bool)``: the validation block decoded by the
        kept size fitted on the training block alone.
    """

    selected: np.ndarray
    ridge: RidgeMap
    encoding_r: np.ndarray
    validation_r: dict
    validation: tuple

    def weights(self):
        """Keyword arguments of :meth:`giblet.models.LaggedLinear.set_weights` (voxels -> every feature)."""
        return lagged_weights(self.selected, np.arange(self.ridge.coef_.shape[1]), self.ridge)


def voxel_encoding_scores(bold, descriptor, rows, delays, n_folds=5):
    """Cross-validated encoding r of every voxel from the descriptor at the preceding TRs.

    Parameters
    ----------
    bold : ndarray, shape (n_trs, n_voxels), float
        Read a block of voxels at a time (whole-brain data are never copied whole).
    descriptor : ndarray, shape (n_trs, n_features), float
    rows : ndarray, shape (n_trs,), bool
        TRs ``u`` scored (:func:`encoding_rows` of the training block).
    delays : sequence of int
        The design of TR ``u`` is ``[descriptor[u - d] for d in delays]``.
    n_folds : int, default=5
        Contiguous folds (fMRI is autocorrelated: no shuffling).

    Returns
    -------
    ndarray, shape (n_voxels,), float64
        Mean r over the held-out folds at each voxel's best penalty (0 for constant voxels).
    """
    index = np.flatnonzero(rows)
    design = np.concatenate([descriptor[index - d] for d in delays], axis=1).astype(np.float64)
    scale = design.std(axis=0)
    design = (design - design.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(cross_validated_r(design, bold, n_folds, rows=index))


def _validation_predictions(bold, ridge, selected, valid, labels, runs, delays):
    """(decoded descriptor of the validation TRs, their row mask) of one decoder."""
    design, rows = decoding_design(bold[:, selected], valid, labels, runs, "val", delays)
    if not rows.any():
        raise ValueError("the split has no validation TRs to choose the decoder's voxels on; give split.fractions "
                         "a validation share")
    return ridge.predict(design[rows]).astype(np.float64), rows


def encoding_scores(data, descriptor, delays, n_folds=5):
    """Every subject's :func:`voxel_encoding_scores` on its training block: dict of str to (n_voxels,) float64."""
    return {s: voxel_encoding_scores(data.bold[s], descriptor,
                                     encoding_rows(data.bold_valid[s], data.labels, data.runs, "train", delays),
                                     delays, n_folds) for s in data.subjects}


def fit_window_decoders(data, descriptor, delays, scores, grid=N_VOXELS_GRID, n_folds=5):
    """One window decoder per subject, the number of voxels chosen on the validation block.

    Parameters
    ----------
    data : MovieData
        Its BOLD, valid TRs, block labels and runs (model clock).
    descriptor : ndarray, shape (n_trs, n_features), float
        Per-TR descriptor on the same clock (e.g. ``audio_logmel_tr.npz``).
    delays : sequence of int
        Decoder delays: the descriptor at TR ``t`` is decoded from BOLD at ``t + d``.
    scores : dict of str to ndarray
        Per subject, every voxel's cross-validated encoding r (:func:`encoding_scores`): the ranking.
    grid : sequence of int, default=N_VOXELS_GRID
    n_folds : int, default=5

    Returns
    -------
    fits : dict of str to WindowFit
    n_voxels : int
        The size kept (best mean validation r over subjects; smaller subjects keep all their voxels).
    """
    delays = tuple(int(d) for d in delays)
    descriptor = np.asarray(descriptor, dtype=np.float64)
    if len(descriptor) != data.n_trs:
        raise ValueError(f"the descriptor has {len(descriptor)} TRs but the fMRI has {data.n_trs}")
    candidates = {}
    for subject in data.subjects:
        bold, valid = data.bold[subject], data.bold_valid[subject]
        order = np.argsort(-scores[subject], kind="stable")
        train_rows = decoding_rows(valid, data.labels, data.runs, "train", delays)
        fits = {}
        for n in grid:  # sizes above the subject's voxel count take all its voxels
            capped = min(n, len(order))
            if capped not in fits:
                selected = np.sort(order[:capped])
                ridge = fit_ridge(bold[:, selected], descriptor, train_rows, lags=delays, n_folds=n_folds)
                predicted, rows = _validation_predictions(bold, ridge, selected, valid, data.labels, data.runs, delays)
                r = float(np.nanmean(np.asarray(correlation_score(descriptor[rows], predicted))))
                fits[capped] = (selected, (predicted, rows), r)
            fits[n] = fits[capped]
        candidates[subject] = fits
        log.info("%s: window decoder, validation r by voxels %s", subject,
                 {n: round(fit[2], 3) for n, fit in fits.items()})
    best = max(grid, key=lambda n: np.mean([candidates[s][n][2] for s in data.subjects]))
    log.info("window decoders: %d voxels per subject (best mean validation r)", best)
    out = {}
    for subject in data.subjects:  # refitted on the training and validation blocks
        valid, selected = data.bold_valid[subject], candidates[subject][best][0]
        rows = (decoding_rows(valid, data.labels, data.runs, "train", delays)
                | decoding_rows(valid, data.labels, data.runs, "val", delays))
        ridge = fit_ridge(data.bold[subject][:, selected], descriptor, rows, lags=delays, n_folds=n_folds)
        out[subject] = WindowFit(selected, ridge, scores[subject],
                                 {n: fit[2] for n, fit in candidates[subject].items()}, candidates[subject][best][1])
    return out, best


def _validation_bits(head, data, fits, confidence):
    """Bits per code the tempered code model gains over its prior on the validation block, mean over subjects."""
    prior = head.log_prior.double().cpu().numpy()[None]
    bits = []
    for decoded, rows in (fit.validation for fit in fits.values()):
        counts = code_counts(data.stimulus["audio_codes"][rows], data.stimulus["audio_mask"][rows], prior.shape[-1])
        with torch.no_grad():
            x = torch.as_tensor(decoded, dtype=head.mean.dtype, device=head.mean.device)
            log_probs = head(x, confidence).double().cpu().numpy()
        bits.append(np.mean(tr_bits_gained(log_probs, prior, counts)))
    return float(np.mean(bits))


def _fit_audio_routes(model, data, known_scores):
    config, descriptor = model.config, data.descriptors["audio"]
    scores = encoding_scores(data, descriptor, config.decoder_delays_trs)
    if tuple(config.decoder_delays_trs) == tuple(config.encoder_delays_trs):
        known_scores["audio"] = scores  # the audio band's, as the design is standardised inside
    fits, n_voxels = fit_window_decoders(data, descriptor, config.decoder_delays_trs, scores)
    for subject, fit in fits.items():
        model.audio_decoders[subject].set_weights(**fit.weights())
    bits = {c: _validation_bits(model.audio_head, data, fits, c) for c in CONFIDENCE_GRID}
    confidence = max(bits, key=bits.get)
    model.audio_confidence.fill_(confidence)
    log.info("audio routes: decoders read %d voxels per subject, code model confidence %.2f (validation %.3f "
             "bits/code)", n_voxels, confidence, bits[confidence])
    return {"n_voxels": n_voxels, "confidence": float(confidence),
            "validation_bits_per_code": {str(c): round(b, 4) for c, b in bits.items()},
            "validation_r": {s: {str(n): round(r, 4) for n, r in fit.validation_r.items()} for s, fit in fits.items()}}


def picture_descriptor(data, n_components):
    """The pictures' per-TR descriptor: low-level video features and thumbnail principal components.

    Parameters
    ----------
    data : MovieData
        ``stimulus["video"]`` (z-scored on training TRs) and ``stimulus["thumbs"]``.
    n_components : int
        Thumbnail principal components (PCA on the training TRs), each scaled to unit variance there.

    Returns
    -------
    descriptor : ndarray, shape (n_trs, n_video + n_components), float64
    mean : ndarray, shape (n_pixels,), float64
        The training thumbnails' mean (flattened channels-first).
    basis : ndarray, shape (n_components, n_pixels), float64
        ``thumbnail = mean + descriptor[:, n_video:] @ basis`` rebuilds a thumbnail from its components.
    """
    train = data.labels == BLOCKS.index("train")
    thumbs = data.stimulus["thumbs"].reshape(data.n_trs, -1).astype(np.float64)
    pca = PCA(n_components, svd_solver="full").fit(thumbs[train])
    scores = pca.transform(thumbs)
    scale = scores[train].std(axis=0)
    scale[scale == 0] = 1.0
    descriptor = np.concatenate([data.stimulus["video"].astype(np.float64), scores / scale], axis=1)
    return descriptor, pca.mean_, pca.components_ * scale[:, None]


def _fit_picture_routes(model, data, known_scores):
    config = model.config
    descriptor, mean, basis = picture_descriptor(data, config.n_thumb_components)
    scores = encoding_scores(data, descriptor, config.decoder_delays_trs)
    fits, n_voxels = fit_window_decoders(data, descriptor, config.decoder_delays_trs, scores)
    for subject, fit in fits.items():
        model.picture_decoders[subject].set_weights(**fit.weights())
    model.set_thumbnail_basis(mean, basis)
    log.info("picture route: decoders read %d voxels per subject", n_voxels)
    return {"n_voxels": n_voxels,
            "validation_r": {s: {str(n): round(r, 4) for n, r in fit.validation_r.items()} for s, fit in fits.items()}}


def _fit_text_routes(model, data, known_scores):
    delays = model.config.decoder_delays_trs
    descriptor = data.stimulus["text"].astype(np.float64)  # the embedding and any label fractions: the head's target
    embedding = descriptor[:, data.feature_bands.get("text", np.arange(descriptor.shape[1]))]
    # ranked by the text band's encoder-route scores when they were computed (the same voxels "encode text")
    scores = known_scores["text"] if "text" in known_scores else encoding_scores(data, embedding, delays)
    fits, n_voxels = fit_window_decoders(data, descriptor, delays, scores, grid=TEXT_VOXELS_GRID)
    for subject, fit in fits.items():
        model.text_decoders[subject].set_weights(**fit.weights())
    log.info("text route: decoders read %d voxels per subject", n_voxels)
    return {"n_voxels": n_voxels,
            "validation_r": {s: {str(n): round(r, 4) for n, r in fit.validation_r.items()} for s, fit in fits.items()}}


def _fit_encoder_routes(model, data, known_scores):
    delays, context = model.config.encoder_delays_trs, model.config.route_context_trs
    columns = {band: data.feature_bands.get(band, np.arange(data.stimulus[ROUTE_BANDS[band][1]].shape[1]))
               for band in model.config.route_bands}
    inputs = {band: trailing_means(data.stimulus[ROUTE_BANDS[band][1]][:, columns[band]], data.runs, context)
              for band in model.config.route_bands}
    if model.config.route_mode == "joint":
        routes = fit_joint_routes(data, inputs, delays, columns=columns)
    else:
        scores = {band: known_scores[band] if band in known_scores and not context else encoding_scores(data, X, delays)
                  for band, X in inputs.items()}
        routes = fit_encoder_routes(data, inputs, delays, scores, columns=columns)
        known_scores.update(scores)
    for band, by_subject in routes.items():
        for subject, weights in by_subject.items():
            model.encoder_routes[band][subject].set_weights(**weights)
    return {band: {s: len(w["outputs"]) for s, w in by_subject.items()} for band, by_subject in routes.items()}


def fit_routes(model, data):
    """Fit and install the closed-form routes of ``model``'s sound, pictures and text (see the module docstring).

    Parameters
    ----------
    model : GibletAutoencoder
        With audio, its code model set (``build_model``).
    data : MovieData
        With audio: ``descriptors["audio"]`` (the code model's descriptor, decoded) and
        ``stimulus["audio_descriptor"]`` (the same standardised on training TRs, the encoder's input);
        with video: ``stimulus["video"]`` and ``stimulus["thumbs"]``; with text: ``stimulus["text"]``.

    Returns
    -------
    dict
        JSON-able summary per modality: voxels kept, validation r by size; sound: the confidence,
        validation bits by confidence, encoder-route voxels per subject.
    """
    known_scores = {}  # band -> every subject's voxel encoding scores, computed once
    summary = {m: fit(model, data, known_scores) for m, fit in (("audio", _fit_audio_routes),
                                                                 ("video", _fit_picture_routes))
               if m in model.config.modalities}
    summary["encoder_route_voxels"] = _fit_encoder_routes(model, data, known_scores)
    if "text" in model.config.modalities:
        summary["text"] = _fit_text_routes(model, data, known_scores)
    return summary
