"""Decoding: stimulus features recovered from BOLD on a held-out block, next to chance, baselines and nulls.

Predictions travel as *views*, per modality a dict of arrays with the scored TRs on axis 0:

============== ================================= ===========================================
view           shape                             meaning
============== ================================= ===========================================
``codes``      (n_trs, width, n_codebooks, k)    top-k EnCodec codes per frame slot, best first
``code_mask``  (n_trs, width) bool               real frame slots of the TR the codes were decoded at
``pooled``     (n_trs, n_pooled)                 per-TR mean code vectors (``audio_pooled.npz`` layout); decoded:
                                                 their expectation under the predicted code probabilities
``thumbs``     (n_trs, 3, height, width)         thumbnails in [0, 1]
``lowlevel``   (n_trs, n_video)                  low-level video features (``video_lowlevel_tr.npz``)
``embedding``  (n_trs, n_text)                   sentence embedding (``text_tr.npz``)
============== ================================= ===========================================

Codes are categories: they are scored by top-k hits and turned into continuous features only
through the codec's codebook vectors (``pooled``), never averaged as numbers. Every metric is a
per-TR score (higher is better), so that it can be averaged, bootstrapped over TRs and
circularly shifted for a null. TR identification ranks the true TR among all scored TRs by the
correlation of decoded and true features, each set z-scored per feature over the scored TRs
on its own (this removes a prediction's constant offset, e.g. a ridge decoder's shrinkage to
the training mean, and uses nothing about which decoded TR belongs to which true TR).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from giblet.evaluation._batches import block_batch, one_subject, scatter
from giblet.evaluation.metrics import identification_ranks, pearson_rows, rank_accuracy, ssim, topk_hits
from giblet.evaluation.nulls import permutation_test
from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.text.retrieval import TextIndex
from giblet.training.baselines import DECODING_TARGETS
from giblet.training.data import code_frequencies

__all__ = [
    "TOP_K",
    "RIDGE_VIEWS",
    "DecodingTargets",
    "decoding_targets",
    "code_topk",
    "sample_codes",
    "expected_pooled",
    "pooled_from_usage",
    "decoder_outputs",
    "autoencoder_views",
    "ridge_views",
    "baseline_views",
    "truth_views",
    "score_views",
    "chance_levels",
    "decoding_rows",
]

TOP_K = 5  # codes kept per frame slot: top-1 and top-5 accuracy
#: Modality -> the view its ridge decoder predicts (the target file in ``DECODING_TARGETS``).
RIDGE_VIEWS = {"audio": "pooled", "video": "lowlevel", "text": "embedding"}
_FEATURE_VIEWS = ("pooled", "thumbs", "lowlevel", "embedding")  # continuous views, scored by TR identification
_CODE_CHUNK_TRS = 8  # TRs of audio logits held at once: (8 * width * n_codebooks * codebook_size) floats


@dataclass
class DecodingTargets:
    """The truth for the scored TRs, and what scoring needs besides.

    Attributes
    ----------
    rows : ndarray, shape (n_trs,), int
        Scored TRs on the model clock, in time order.
    views : dict of str to ndarray
        True ``codes`` (n_trs, n_codebooks, width) int, ``code_mask`` and the continuous views.
    train_mean : dict of str to ndarray
        Training-TR mean of every continuous view (the constant baseline prediction).
    unigram : ndarray, shape (n_codebooks, TOP_K), int or None
        Most frequent training codes per codebook, most frequent first.
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim) or None
    tr_s : float
    text_index : TextIndex or None
        Annotation texts searchable by embedding.
    correct_texts : list of set of str
        Texts of the annotation segments overlapping each scored TR.
    """

    rows: np.ndarray
    views: dict
    train_mean: dict
    unigram: np.ndarray | None
    codebook_vectors: np.ndarray | None
    tr_s: float
    text_index: TextIndex | None
    correct_texts: list

    @property
    def n_trs(self) -> int:
        return len(self.rows)


def _segment_texts(table, tr_s, rows):
    durations = np.asarray(table.meta["durations_s"], dtype=np.float64)
    onsets = table.times_s
    texts = table.meta["texts"]
    out = []
    for t in rows:
        overlap = (onsets < (t + 1) * tr_s) & (onsets + durations > t * tr_s)
        out.append({texts[i] for i in np.flatnonzero(overlap)})
    return out


def decoding_targets(data, features_dir, rows):
    """Collect the true views of ``rows`` and their training statistics.

    Parameters
    ----------
    data : MovieData
    features_dir : path
        The feature stages' folder (``audio_pooled.npz``, ``video_lowlevel_tr.npz``,
        ``text_tr.npz``, ``text_segments.npz``).
    rows : ndarray, shape (n_trs,), int
        Scored TRs on the model clock.

    Returns
    -------
    DecodingTargets
    """
    features_dir, rows = Path(features_dir), np.asarray(rows)
    train = data.labels == BLOCKS.index("train")
    views, mean = {}, {}
    unigram = None
    tables = {view: features_dir / DECODING_TARGETS[m] for m, view in RIDGE_VIEWS.items() if m in data.modalities}
    if "audio" in data.modalities:
        codes, mask = data.stimulus["audio_codes"], data.stimulus["audio_mask"]
        views["codes"], views["code_mask"] = codes[rows], mask[rows]
        unigram = np.argsort(-code_frequencies(data), axis=1, kind="stable")[:, :TOP_K]
    if "video" in data.modalities:
        views["thumbs"] = data.stimulus["thumbs"]
    for view, path in tables.items():
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the feature stage that writes it before evaluate")
        views[view] = FeatureTable.load(path).values
    for view in _FEATURE_VIEWS:
        if view in views:
            mean[view] = views[view][train].astype(np.float64).mean(axis=0)
            views[view] = views[view][rows]
    text_index, correct = None, []
    if "text" in data.modalities:
        segments = FeatureTable.load(features_dir / "text_segments.npz")
        text_index = TextIndex.from_table(segments)
        correct = _segment_texts(segments, data.tr_s, rows)
    return DecodingTargets(rows, views, mean, unigram, data.codebook_vectors, data.tr_s,
                           text_index, correct)


def pooled_from_usage(usage, codebook_vectors):
    """Mean code vectors of TRs from their code usage: the ``audio_pooled.npz`` layout.

    Parameters
    ----------
    usage : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Per TR and codebook, the fraction of frames using each code (or its expectation).
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim), float

    Returns
    -------
    ndarray, shape (n_trs, (n_codebooks + 1) * dim), float64
        Per codebook, then summed over codebooks (the TR-mean quantized latent).
    """
    per_codebook = np.einsum("tqk,qkd->tqd", usage, np.asarray(codebook_vectors, np.float64))
    return np.concatenate([per_codebook, per_codebook.sum(axis=1, keepdims=True)], axis=1).reshape(len(usage), -1)


def code_topk(model, latent, k=TOP_K):
    """The ``k`` most likely codes of every frame slot and codebook (argmax of the audio head's logits first).

    Parameters
    ----------
    model : GibletAutoencoder
    latent : Tensor, shape (n_trs, width, codebook_dim), float
        The audio head's output for each TR.
    k : int, default=TOP_K

    Returns
    -------
    ndarray, shape (n_trs, width, n_codebooks, k), int64
        Code indices, most likely first (categories: never averaged or rounded).
    """
    top = []
    with torch.no_grad():
        for start in range(0, len(latent), _CODE_CHUNK_TRS):
            logits = model.audio_head.logits(latent[start : start + _CODE_CHUNK_TRS])
            top.append(logits.topk(k, dim=-1).indices.cpu().numpy())
    return np.concatenate(top).astype(np.int64)


def sample_codes(model, latent, seed=0):
    """One code per frame slot and codebook drawn from the audio head's probabilities (seeded).

    A head that has learned the code frequencies puts each codebook's commonest code on top for
    most frames, so top-1 codes play one steady sound; a draw from the probabilities is how the
    prediction sounds. The draw is Gumbel-max with a generator seeded by ``seed``: the same seed
    gives the same noise, so two predictions (intact and lesioned) differ only where their
    probabilities do.

    Parameters
    ----------
    model : GibletAutoencoder
    latent : Tensor, shape (n_trs, width, codebook_dim), float
    seed : int, default=0

    Returns
    -------
    ndarray, shape (n_trs, width, n_codebooks), int64
    """
    generator = torch.Generator().manual_seed(seed)
    codes = []
    with torch.no_grad():
        for start in range(0, len(latent), _CODE_CHUNK_TRS):
            logits = model.audio_head.logits(latent[start : start + _CODE_CHUNK_TRS]).float().cpu()
            uniform = torch.rand(logits.shape, generator=generator).clamp(1e-12, 1 - 1e-12)
            codes.append((logits - torch.log(-torch.log(uniform))).argmax(-1).numpy())
    return np.concatenate(codes).astype(np.int64)


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
        Modality -> (n_trs, ...) on ``device``: audio latent (n_trs, width, dim), thumbnails,
        text embedding (see :meth:`GibletAutoencoder.predict_stimulus`).
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


def expected_pooled(model, latent, mask, codebook_vectors):
    """Per-TR mean code vectors expected under the audio head's code probabilities (``pooled`` view).

    The top-1 codes of a head that has learned the code frequencies are mostly each codebook's
    commonest code, so their pooled vectors barely vary between TRs; the expectation keeps what the
    probabilities say about every TR.

    Parameters
    ----------
    model : GibletAutoencoder
    latent : Tensor, shape (n_trs, width, codebook_dim), float
    mask : ndarray, shape (n_trs, width), bool
        The real frame slots of every TR.
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, codebook_dim), float
        The codec's codebooks (``DecodingTargets.codebook_vectors``), which made the true view: the
        model's own tables differ from them when it trains its codebooks.

    Returns
    -------
    ndarray, shape (n_trs, (n_codebooks + 1) * codebook_dim), float64
        See :func:`pooled_from_usage`.
    """
    frames = torch.from_numpy(mask).to(latent.device, latent.dtype)[..., None, None]
    usage = []
    with torch.no_grad():
        for start in range(0, len(latent), _CODE_CHUNK_TRS):
            probs = model.audio_head.logits(latent[start : start + _CODE_CHUNK_TRS]).softmax(-1)
            weights = frames[start : start + _CODE_CHUNK_TRS]
            usage.append(((probs * weights).sum(1) / weights.sum(1).clamp_min(1)).double().cpu().numpy())
    return pooled_from_usage(np.concatenate(usage), codebook_vectors)


def _audio_views(model, latent, targets):
    mask = targets.views["code_mask"]
    pooled = expected_pooled(model, latent, mask, targets.codebook_vectors)
    return {"codes": code_topk(model, latent), "code_mask": mask, "pooled": pooled}


#: Modality -> ``(model, decoder output (n_trs, ...), targets) -> views``.
_OUTPUT_VIEWS = {
    "audio": _audio_views,
    "video": lambda model, thumbs, targets: {"thumbs": thumbs.cpu().numpy()},
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
    return {m: {RIDGE_VIEWS[m]: decoder.predict(design).astype(np.float64)} for m, decoder in decoders.items()}


def baseline_views(views, targets):
    """Constant predictions from training TRs, in the views of ``views``: the unigram codes, mean features."""
    out = {}
    for view, value in views.items():
        if view == "codes":
            out[view] = np.broadcast_to(targets.unigram, value.shape[:2] + targets.unigram.shape)
        elif view == "code_mask":
            out[view] = value
        else:
            out[view] = np.broadcast_to(targets.train_mean[view], value.shape)
    return out


def truth_views(views, targets):
    """The true features in the views of ``views`` (their scores are the ceilings of the metrics)."""
    out = {view: targets.views[view] for view in views}
    if "codes" in views:
        out["codes"] = targets.views["codes"].transpose(0, 2, 1)[..., None]
    return out


def _code_scores(views, targets):
    truth = targets.views["codes"].transpose(0, 2, 1)  # (n_trs, width, n_codebooks)
    mask = (views["code_mask"] & targets.views["code_mask"])[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {}
        for k in (1, TOP_K):
            hits = (topk_hits(views["codes"][..., :k], truth) & mask).sum(axis=1) / mask.sum(axis=1)
            out[f"top{k}"] = hits.mean(axis=1)
            out.update({f"top{k}_cb{q}": hits[:, q] for q in range(hits.shape[1])})
    return out


def _thumb_scores(views, targets):
    return {"thumb_corr": pearson_rows(views["thumbs"], targets.views["thumbs"]),
            "ssim": ssim(views["thumbs"], targets.views["thumbs"])}


def _text_scores(views, targets):
    decoded, true = views["embedding"], targets.views["embedding"]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (decoded * true).sum(1) / (np.linalg.norm(decoded, axis=1) * np.linalg.norm(true, axis=1))
    retrieved = targets.text_index.nearest_texts(decoded)
    hits = np.array([np.nan if not ok else float(text in ok) for text, ok in zip(retrieved, targets.correct_texts)])
    return {"cosine": cosine, "retrieval_accuracy": hits}


def _zscore(x):
    """Columns z-scored over the scored TRs (each set on its own: no pairing of decoded and true TRs is used)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    varies = np.ptp(x, axis=0) > 0  # constant columns become 0 exactly (a mean can differ from them by rounding)
    centred = np.where(varies, x - x.mean(axis=0), 0.0)
    scale = centred.std(axis=0)
    return centred / np.where(varies, scale, 1.0)


#: View -> scorer ``(views, targets) -> {metric: per-TR scores}`` (besides TR identification).
VIEW_SCORERS = {"codes": _code_scores, "thumbs": _thumb_scores, "embedding": _text_scores}


def score_views(views, targets):
    """Per-TR scores of one modality's views.

    Returns
    -------
    dict of str to (str, ndarray)
        Metric -> (the view it scores, per-TR scores (n_trs,) float64, higher is better).
        Every continuous view is also scored by TR identification: ``rank_accuracy``
        (1 - normalised rank; chance 0.5) and ``top1_identification`` (chance 1 / n_trs).
    """
    out = {}
    for view in views:
        if view in VIEW_SCORERS:
            out.update({m: (view, s) for m, s in VIEW_SCORERS[view](views, targets).items()})
    for view in (v for v in _FEATURE_VIEWS if v in views):  # one per modality (audio: pooled decoded codes)
        ranks = identification_ranks(_zscore(views[view]), _zscore(targets.views[view]))
        out["rank_accuracy"] = (view, rank_accuracy(ranks, targets.n_trs))
        out["top1_identification"] = (view, (ranks == 0).astype(np.float64))
    return out


def chance_levels(metrics, targets, codebook_size=None):
    """Analytic chance of each metric (NaN where there is none: correlations, SSIM, cosine)."""
    retrieval = np.nan
    if targets.text_index is not None:
        texts = np.asarray(targets.text_index.texts)
        retrieval = np.nanmean([np.isin(texts, list(ok)).mean() if ok else np.nan for ok in targets.correct_texts])
    chance = {"rank_accuracy": 0.5, "top1_identification": 1.0 / targets.n_trs, "retrieval_accuracy": retrieval}
    out = {}
    for metric in metrics:
        if metric.startswith(("top1", "top5")) and metric != "top1_identification":
            out[metric] = int(metric[3]) / codebook_size
        else:
            out[metric] = chance.get(metric, np.nan)
    return out


def decoding_rows(model_name, input_name, views_by_modality, targets, *, codebook_size=None, n_permutations=1000,
                  seed=0):
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
    codebook_size : int, optional
        For the chance level of code accuracies.
    n_permutations : int, default=1000
        Circular shifts of the decoded sequence against the truth (at most n_trs - 1).
    seed : int, default=0

    Returns
    -------
    list of dict
        Keys ``model, input, modality, metric, features, score, chance, baseline, ceiling, null_mean, p,
        n_trs``: ``baseline`` scores the constant training prediction (unigram codes, mean features),
        ``ceiling`` the true features themselves, ``null_mean`` and the one-sided ``p`` the decoded
        sequence circularly shifted against the truth.
    """
    rows = []
    for modality, views in views_by_modality.items():
        scores = score_views(views, targets)
        names = list(scores)
        baseline = score_views(baseline_views(views, targets), targets)
        ceiling = score_views(truth_views(views, targets), targets)
        chance = chance_levels(names, targets, codebook_size)

        def means(v):
            per_metric = score_views(v, targets)
            return np.array([np.nanmean(per_metric[m][1]) for m in names])

        null = permutation_test(means, views, method="circular", n_permutations=n_permutations, seed=seed)
        for i, metric in enumerate(names):
            rows.append({"model": model_name, "input": input_name, "modality": modality, "metric": metric,
                         "features": scores[metric][0], "score": null.observed[i], "chance": chance[metric],
                         "baseline": np.nanmean(baseline[metric][1]), "ceiling": np.nanmean(ceiling[metric][1]),
                         "null_mean": null.null_mean[i],
                         "p": null.p[i], "n_trs": targets.n_trs})
    return rows
