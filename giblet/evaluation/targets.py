"""The truth decoders are scored against on one subject's test block (:class:`DecodingTargets`): every view of
the true stimulus (see :mod:`giblet.evaluation.decoding`), the true codes' counts, the annotation texts for
retrieval, and the sound classes of the scored TRs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from giblet.audio.code_scores import code_counts
from giblet.audio.codes import tr_frame_slots, tr_frame_spans
from giblet.audio.descriptors import sounding_frames
from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.text.retrieval import TextIndex
from giblet.training.baselines import DECODING_TARGETS

__all__ = ["RIDGE_VIEWS", "IDENTIFIED_VIEWS", "SoundClasses", "DecodingTargets", "decoding_targets", "sound_classes",
           "code_log_probs"]

#: Modality -> the view its ridge decoder predicts (the target file in ``DECODING_TARGETS``).
RIDGE_VIEWS = {"audio": "descriptor", "video": "lowlevel", "text": "embedding"}
#: Continuous views scored by TR identification -> prefix of their metric names (the unprefixed ones
#: are each modality's headline identification: audio on the pooled code vectors).
IDENTIFIED_VIEWS = {"pooled": "", "lowlevel": "", "embedding": "", "thumbs": "thumbs_", "descriptor": "descriptor_"}


@dataclass(frozen=True)
class SoundClasses:
    """The sound class of every scored TR and each class's centroid in the descriptor space.

    Attributes
    ----------
    names : tuple of str
        Class names (the label column's values).
    labels : ndarray, shape (n_trs,), int
        Index into ``names`` of each scored TR's class (its majority label); -1 where no label covers it.
    centroids : ndarray, shape (n_classes, n_descriptor), float64
        Mean descriptor of each class's training TRs, z-scored by the training TRs' mean and SD.
    """

    names: tuple
    labels: np.ndarray
    centroids: np.ndarray


@dataclass
class DecodingTargets:
    """The truth for the scored TRs, and what scoring needs besides.

    Attributes
    ----------
    rows : ndarray, shape (n_trs,), int
        Scored TRs on the model clock, in time order.
    views : dict of str to ndarray
        The true views, ``code_log_probs`` from the true descriptor (the oracle), the true
        ``code_counts`` (n_trs, n_codebooks, codebook_size): how often each code sits in each TR,
        and ``sounding_counts``, the same over the frames that sound (:func:`~giblet.audio.descriptors.sounding_frames`).
    train_mean : dict of str to ndarray
        Training-TR mean of every continuous view (the constant baseline prediction).
    audio_head : CodeModelHead or None
        The code model: descriptor -> code log-probabilities; its ``log_prior`` (the training
        unigram) is the constant baseline of ``code_log_probs``.
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim) or None
    tr_s : float
    text_index : TextIndex or None
        Annotation texts searchable by embedding.
    correct_texts : list of set of str
        Texts of the annotation segments overlapping each scored TR.
    sound_classes : SoundClasses or None
        Scores the decoded descriptor by its nearest class centroid (balanced accuracy).
    """

    rows: np.ndarray
    views: dict
    train_mean: dict
    audio_head: object
    codebook_vectors: np.ndarray | None
    tr_s: float
    text_index: TextIndex | None
    correct_texts: list
    sound_classes: SoundClasses | None = None

    @property
    def n_trs(self) -> int:
        return len(self.rows)

    @property
    def log_prior(self):
        """Training unigram log-probabilities (n_codebooks, codebook_size), float64."""
        return self.audio_head.log_prior.detach().cpu().double().numpy()


def _segment_texts(table, tr_s, rows):
    durations = np.asarray(table.meta["durations_s"], dtype=np.float64)
    onsets = table.times_s
    texts = table.meta["texts"]
    out = []
    for t in rows:
        overlap = (onsets < (t + 1) * tr_s) & (onsets + durations > t * tr_s)
        out.append({texts[i] for i in np.flatnonzero(overlap)})
    return out


def decoding_targets(data, features_dir, rows, audio_head=None, sound_label=None):
    """Collect the true views of ``rows`` and their training statistics.

    Parameters
    ----------
    data : MovieData
    features_dir : path
        The feature stages' folder (``audio_logmel_tr.npz``, ``audio_pooled.npz``,
        ``video_lowlevel_tr.npz``, ``text_tr.npz``, ``text_segments.npz``).
    rows : ndarray, shape (n_trs,), int
        Scored TRs on the model clock.
    audio_head : CodeModelHead, optional
        The code model (``GibletAutoencoder.audio_head``); needed with audio.
    sound_label : str, optional
        The annotation label column whose values are sound classes (``labels_tr.npz``): scores the
        decoded descriptor by balanced sound-class accuracy (see :func:`sound_classes`).

    Returns
    -------
    DecodingTargets
    """
    features_dir, rows = Path(features_dir), np.asarray(rows)
    train = data.labels == BLOCKS.index("train")
    views, mean = {}, {}
    tables = {RIDGE_VIEWS[m]: features_dir / file for m, file in DECODING_TARGETS.items() if m in data.modalities}
    if "audio" in data.modalities:
        views["descriptor"] = data.descriptors["audio"]
        if audio_head is None:
            raise ValueError("decoding sound needs the code model: pass the autoencoder's audio_head")
        tables["pooled"] = features_dir / "audio_pooled.npz"
        size = int(audio_head.log_prior.shape[1])
        codes, mask = data.stimulus["audio_codes"][rows], data.stimulus["audio_mask"][rows]
        views["code_counts"] = code_counts(codes, mask, size)
        sounding = _sounding_slots(features_dir / "audio_logmel_frames.npz", data.n_trs, data.tr_s, rows)
        views["sounding_counts"] = code_counts(codes, mask & sounding, size)
    if "video" in data.modalities:
        views["thumbs"] = data.stimulus["thumbs"]
    for view, path in tables.items():
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the feature stage that writes it before evaluate")
        views[view] = FeatureTable.load(path).values
    for view in IDENTIFIED_VIEWS:
        if view in views:
            mean[view] = views[view][train].astype(np.float64).mean(axis=0)
            views[view] = views[view][rows]
    if "audio" in data.modalities:
        views["code_log_probs"] = code_log_probs(audio_head, views["descriptor"])
    text_index, correct = None, []
    if "text" in data.modalities:
        segments = FeatureTable.load(features_dir / "text_segments.npz")
        text_index = TextIndex.from_table(segments)
        correct = _segment_texts(segments, data.tr_s, rows)
    classes = None
    if sound_label is not None and "audio" in data.modalities:
        classes = sound_classes(features_dir / "labels_tr.npz", sound_label, data.descriptors["audio"], train, rows)
    return DecodingTargets(rows, views, mean, audio_head, data.codebook_vectors, data.tr_s, text_index, correct,
                           classes)


def _sounding_slots(frames_path, n_trs, tr_s, rows):
    """(n_rows, width) bool: the code slots of ``rows`` whose frame sounds, in the layout of ``codes_by_tr``."""
    if not frames_path.exists():
        raise FileNotFoundError(f"{frames_path}: missing; rerun the audio stage (extract-audio) before evaluate")
    table = FeatureTable.load(frames_path)
    rate = float(table.meta["frame_rate_hz"])
    sounding = sounding_frames(table.values)
    spans = tr_frame_spans(n_trs, tr_s, rate)[rows]
    index, mask = tr_frame_slots(spans, tr_s, rate)
    if len(spans) and spans[-1, 1] > len(sounding):
        raise ValueError(f"{frames_path}: {len(sounding)} frames, but the scored TRs need {spans[-1, 1]}; rerun the "
                         "audio stage")
    return mask & sounding[index]


def sound_classes(labels_path, column, descriptor, train, rows):
    """The sound classes of the scored TRs and their training centroids, from an annotation label column.

    Parameters
    ----------
    labels_path : path
        ``labels_tr.npz`` (per-TR label fractions named ``column=value``).
    column : str
        The label column of sound classes (e.g. ``sound``: speech, music, noise, silence).
    descriptor : ndarray, shape (n_trs, n_descriptor), float
        The true audio descriptor of every TR.
    train : ndarray, shape (n_trs,), bool
        Training TRs (the centroids' and the z-scoring's).
    rows : ndarray, shape (n_rows,), int
        Scored TRs.

    Returns
    -------
    SoundClasses
        Each TR's class is its label of largest share; classes without a training TR are left out
        (their TRs get -1, as do TRs no label covers).
    """
    labels_path = Path(labels_path)
    if not labels_path.exists():
        raise FileNotFoundError(f"{labels_path}: missing; evaluate.sound_classes needs the text stage's label table "
                                "(list the column in text.label_columns)")
    table = FeatureTable.load(labels_path)
    columns = [i for i, name in enumerate(table.names) if name.startswith(f"{column}=")]
    if not columns:
        found = sorted({name.split("=")[0] for name in table.names})
        raise ValueError(f"{labels_path}: no label column {column!r} (has {found}); set evaluate.sound_classes to "
                         "one of text.label_columns")
    fractions = table.values[:, columns]
    labels = np.where(fractions.sum(axis=1) > 0, fractions.argmax(axis=1), -1)
    trained = [c for c in range(len(columns)) if np.any(train & (labels == c))]
    remap = np.full(len(columns) + 1, -1)
    remap[trained] = np.arange(len(trained))
    labels = remap[labels]  # -1 stays -1 (remap[-1])
    descriptor = np.asarray(descriptor, dtype=np.float64)
    scale = descriptor[train].std(axis=0)
    z = (descriptor - descriptor[train].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    centroids = np.stack([z[train & (labels == c)].mean(axis=0) for c in range(len(trained))])
    names = tuple(table.names[columns[c]].split("=", 1)[1] for c in trained)
    return SoundClasses(names, labels[np.asarray(rows)], centroids)



def code_log_probs(head, descriptor, confidence=1.0):
    """The code model's log-probabilities at each descriptor: (n_trs, n_codebooks, codebook_size) float32."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(descriptor), dtype=head.mean.dtype, device=head.mean.device)
        return head(x, confidence).float().cpu().numpy()

