"""Training data on one clock: per-TR stimulus tensors and every subject's BOLD.

Clock convention: index ``t`` is stimulus TR ``t`` ([t * tr_s, (t + 1) * tr_s) from the first
fMRI frame) and the BOLD volume *acquired* at ``t * tr_s``. Data stored pre-shifted by ``p`` TRs
(Sherlock: 3; stored TR t was acquired at TR t + p) are moved ``p`` TRs later within each run, so
the model's causal encoder delays apply the hemodynamic lag exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from giblet.audio.codes import CodeStream, codes_by_tr
from giblet.blocks import column_blocks
from giblet.features import FeatureTable
from giblet.fmri.clean import standardize
from giblet.fmri.prepared import PreparedFmri
from giblet.splits import BLOCKS, GAP

__all__ = ["MovieData", "load_movie_data", "shift_within_runs", "windows", "make_batch"]


@dataclass
class MovieData:
    """Everything the autoencoder trains on.

    Attributes
    ----------
    tr_s : float
    runs : ndarray, shape (n_trs,), int
    labels : ndarray, shape (n_trs,), int8
        Block of each TR on the clock (``BLOCKS`` index, ``GAP`` = -1).
    stimulus : dict of str -> ndarray
        ``audio_codes`` (n_trs, n_codebooks, width) int64 (0 in padded slots), ``audio_mask``
        (n_trs, width) bool, ``audio_descriptor`` (n_trs, n_descriptor) float32 z-scored on
        training TRs, ``video`` (n_trs, n_video) float32 z-scored on training TRs,
        ``thumbs`` (n_trs, 3, h, w) float32 in [0, 1], ``text`` (n_trs, n_text) float32.
    bold : dict of str -> ndarray, shape (n_trs, n_voxels), float32
        Z-scored BOLD on the clock (0 where not valid).
    bold_valid : dict of str -> ndarray, shape (n_trs,), bool
    prepared : dict of str -> PreparedFmri
        The stage inputs (ROI tables, voxel grids, valid TRs and split on their stored clock).
        Their ``values`` array *is* ``bold`` (moved to the model clock in place): use ``bold``.
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim), or None
    video_stats : dict
        Training mean and scale of the video features.
    modalities : tuple of str
    descriptors : dict of str -> ndarray, shape (n_trs, n_features), float64
        Low-dimensional per-TR targets decoded on their own route: ``"audio"``, the audio
        descriptor the code model reads (the 32-band log-mel in dB).
    feature_bands : dict of str -> ndarray of int
        Feature band of an encoder route (:data:`giblet.models.ROUTE_BANDS`) -> the columns of its
        stimulus input it reads (``text``: the embedding; ``text_labels``: the label fractions).
    group_target_weight : float
        Weight of the other subjects' mean BOLD in every subject's encoding target on training TRs
        (:meth:`encoding_target`; 0: the subject's own BOLD alone).
    """

    tr_s: float
    runs: np.ndarray
    labels: np.ndarray
    stimulus: dict
    bold: dict
    bold_valid: dict
    prepared: dict
    codebook_vectors: np.ndarray | None
    video_stats: dict
    modalities: tuple = ()
    descriptors: dict = field(default_factory=dict)
    feature_bands: dict = field(default_factory=dict)
    group_target_weight: float = 0.0
    _group: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_trs(self) -> int:
        return len(self.runs)

    @property
    def subjects(self) -> tuple:
        return tuple(self.bold)

    def _group_sums(self):
        """``(total, count, columns)``: per voxel of the union of the subjects' grid positions and per TR, the sum
        of the valid BOLD of every subject that has the voxel and how many they are; ``columns[subject]`` indexes
        that union by the subject's voxels (computed once)."""
        if self._group is None:
            grids = {tuple(p.grid_shape) for p in self.prepared.values()}
            if len(grids) > 1:
                raise ValueError(f"subjects' voxels lie on different grids {sorted(grids)}: the other subjects' mean "
                                 "needs one grid (prepare every subject with the same masks and template)")
            flat = {s: np.ravel_multi_index(tuple(p.voxel_ijk.T), p.grid_shape) for s, p in self.prepared.items()}
            union = np.unique(np.concatenate(list(flat.values())))
            columns = {s: np.searchsorted(union, f) for s, f in flat.items()}
            total = np.zeros((self.n_trs, len(union)), np.float32)
            count = np.zeros((self.n_trs, len(union)), np.uint16)
            for subject in self.subjects:
                valid = self.bold_valid[subject]
                total[:, columns[subject]] += np.where(valid[:, None], self.bold[subject], 0.0)
                count[np.ix_(valid, columns[subject])] += 1
            self._group = total, count, columns
        return self._group

    def others_mean(self, subject, rows=slice(None)):
        """The other subjects' mean BOLD at ``subject``'s voxels (matched by grid position) on ``rows``.

        Each TR and voxel averages the other subjects that have the voxel and valid BOLD there; NaN
        where none has. Shape (n_rows, n_voxels), float32.
        """
        total, count, columns = self._group_sums()
        cols, valid = columns[subject], self.bold_valid[subject][rows].astype(np.float32)[:, None]
        others = total[rows][:, cols] - self.bold[subject][rows] * valid
        n = count[rows][:, cols] - valid
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, others / n, np.nan).astype(np.float32)

    def encoding_target(self, subject, start=0, stop=None):
        """The BOLD the encoder learns for ``subject`` on TRs ``[start, stop)``, shape (n, n_voxels), float32.

        On training TRs: ``(1 - w) * own + w * others_mean`` with ``w = group_target_weight`` (the subject's own
        BOLD where no other subject has the voxel); on every other TR the subject's own BOLD, so that
        validation and test score against the subject alone. Averaging in the others' response on the same
        training TRs removes part of the subject's noise from the target and none of the response the film
        drives in everyone (no held-out TR is read).
        """
        own = self.bold[subject][start:stop]
        if not self.group_target_weight:
            return own
        rows = np.flatnonzero(self.labels[start:stop] == BLOCKS.index("train")) + start
        others = self.others_mean(subject, rows)
        out = own.copy()
        w = self.group_target_weight
        out[rows - start] = np.where(np.isnan(others), own[rows - start], (1 - w) * own[rows - start] + w * others)
        return out

    def pieces(self, block):
        """Contiguous ``(start, stop)`` TR ranges of ``block``, each inside one run."""
        inside = self.labels == BLOCKS.index(block)
        boundary = np.r_[True, (np.diff(self.runs) != 0) | (np.diff(inside.astype(np.int8)) != 0)]
        starts = np.flatnonzero(boundary)
        stops = np.r_[starts[1:], self.n_trs]
        return [(int(a), int(b)) for a, b in zip(starts, stops) if inside[a]]


def shift_within_runs(values, runs, shift, fill, in_place=False):
    """Move rows ``shift`` TRs later inside each run; the first ``shift`` rows of a run get ``fill``.

    At shift 0 this is ``values`` itself (no copy). ``in_place=True`` moves the rows inside ``values``
    (a block of columns at a time) instead of returning a new array.
    """
    if shift == 0:
        return values
    out = values if in_place else np.empty_like(values)
    flat_in, flat_out = values.reshape(len(values), -1), out.reshape(len(out), -1)
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        moved = min(shift, len(rows))
        for block in column_blocks(flat_in.shape[1]):
            flat_out[rows[moved:], block] = flat_in[rows[: len(rows) - moved], block]
            flat_out[rows[:moved], block] = fill
    return out


def _check_trs(name, n, n_trs):
    if n != n_trs:
        raise ValueError(f"{name} has {n} TRs but the fMRI has {n_trs}; extract features with the same fmri.run_n_trs")


#: A column whose training SD is at most this fraction of its largest magnitude there is constant up to rounding
#: noise (the demo's log-mel bands above its 8 kHz soundtrack: SD 0.005 dB at -80 dB, where sounding bands vary
#: by ~10 dB): it becomes 0, never noise scaled up to unit variance for the model to fit.
FLAT_SD_FRACTION = 1e-3


def _standardised(values, train, stats=None):
    """``values`` z-scored with the mean and scale of the training rows; columns flat there (``FLAT_SD_FRACTION``)
    become 0. ``stats`` receives the mean, scale (1 where flat) and the flat columns."""
    mean, scale = values[train].mean(axis=0), values[train].std(axis=0)
    flat = scale <= FLAT_SD_FRACTION * np.abs(values[train]).max(axis=0)
    scale[flat] = 1.0
    if stats is not None:
        stats.update(mean=mean, scale=scale, flat=flat)
    out = (values - mean) / scale
    out[:, flat] = 0.0
    return out


def load_movie_data(features_dir, prepared_paths, modalities, preshift_trs=0, audio_descriptor="audio_logmel_tr.npz",
                    split=None, group_target_weight=0.0):
    """Assemble :class:`MovieData` from the feature stages' outputs and ``prepare-fmri`` files.

    ``audio_descriptor`` names the per-TR descriptor table of the sound (the code model's).
    ``split`` (a :class:`~giblet.splits.Split` on the stored clock, e.g. a cross-validation fold) replaces
    the prepared files' split; the BOLD is then z-scored again on its training TRs.
    ``group_target_weight``: see :meth:`MovieData.encoding_target`.
    """
    features_dir = Path(features_dir)
    prepared = {p.subject: p for p in (PreparedFmri.load(path) for path in prepared_paths)}
    first = next(iter(prepared.values()))
    n_trs, runs = len(first.runs), first.runs
    for p in prepared.values():
        if len(p.runs) != n_trs or not np.array_equal(p.split.labels, first.split.labels):
            raise ValueError(f"subject {p.subject} has another TR count or split than {first.subject}")
    stored_labels = first.split.labels if split is None else split.labels
    if len(stored_labels) != n_trs:
        raise ValueError(f"the split has {len(stored_labels)} TRs but the fMRI has {n_trs}")
    labels = shift_within_runs(stored_labels, runs, preshift_trs, GAP)
    train = labels == BLOCKS.index("train")
    stimulus, codebooks, video_stats, descriptors, bands = {}, None, {}, {}, {}
    if "audio" in modalities:
        stream = CodeStream.load(features_dir / "codes.npz")
        codes, mask = codes_by_tr(stream, first.tr_s, n_trs)
        stimulus["audio_codes"] = np.where(mask[:, None, :], codes, 0).astype(np.int64)
        stimulus["audio_mask"] = mask
        with np.load(features_dir / "codebooks.npz") as z:
            codebooks = z["vectors"].astype(np.float32)
        descriptors["audio"] = FeatureTable.load(features_dir / audio_descriptor).values.astype(np.float64)
        _check_trs(audio_descriptor, len(descriptors["audio"]), n_trs)
        stimulus["audio_descriptor"] = _standardised(descriptors["audio"], train).astype(np.float32)
        bands["audio"] = np.arange(descriptors["audio"].shape[1])
    if "video" in modalities:
        video = FeatureTable.load(features_dir / "video_lowlevel_tr.npz").values.astype(np.float64)
        thumbs = FeatureTable.load(features_dir / "video_thumbnails_tr.npz")
        _check_trs("video_lowlevel_tr.npz", len(video), n_trs)
        stimulus["video"] = _standardised(video, train, video_stats).astype(np.float32)
        bands["video"] = np.arange(video.shape[1])
        h, w, c = thumbs.meta["image_shape"]
        stimulus["thumbs"] = thumbs.values.reshape(n_trs, h, w, c).transpose(0, 3, 1, 2).astype(np.float32)
    if "text" in modalities:
        text = FeatureTable.load(features_dir / "text_tr.npz").values
        labels_tr = FeatureTable.load(features_dir / "labels_tr.npz").values
        _check_trs("text_tr.npz", len(text), n_trs)
        stimulus["text"] = np.concatenate([text, labels_tr], axis=1).astype(np.float32)
        bands["text"] = np.arange(text.shape[1])
        if labels_tr.shape[1]:
            bands["text_labels"] = np.arange(text.shape[1], text.shape[1] + labels_tr.shape[1])
    bold, bold_valid = {}, {}
    for subject, p in prepared.items():  # p.values becomes the BOLD in place: one whole-brain copy per subject
        if split is not None:
            standardize(p.values, p.valid_trs & (stored_labels == BLOCKS.index("train")), out=p.values)
        p.values[~p.valid_trs] = 0.0
        bold[subject] = shift_within_runs(p.values, runs, preshift_trs, 0.0, in_place=True)
        bold_valid[subject] = shift_within_runs(p.valid_trs, runs, preshift_trs, False)
    return MovieData(float(first.tr_s), runs, labels, stimulus, bold, bold_valid, prepared, codebooks, video_stats,
                     tuple(modalities), descriptors, bands, group_target_weight)


def windows(data, block, length, stride, before, after):
    """Training or evaluation windows inside the contiguous pieces of ``block``.

    Returns a list of ``(lo, a, b, hi)``: TRs ``[a, b)`` enter the losses, ``[lo, a)`` and
    ``[b, hi)`` are context (clipped to the run) for the causal encoder and anti-causal decoder.
    """
    out = []
    for start, stop in data.pieces(block):
        run = data.runs[start]
        run_rows = np.flatnonzero(data.runs == run)
        a_values = range(start, stop, stride) if length else [start]
        for a in a_values:
            b = stop if not length else min(a + length, stop)
            lo, hi = max(a - before, run_rows[0]), min(b + after, run_rows[-1] + 1)
            out.append((lo, a, b, hi))
            if b == stop:
                break
    return out


def make_batch(data, spans, block):
    """Stack windows into padded arrays (B, T, ...) with per-subject BOLD and loss masks.

    Returns ``(stimulus, in_loss, bold, valid, encoding_target)``: the last is the encoder's per-subject target
    (:meth:`MovieData.encoding_target`; ``bold`` itself unless training with a group target). BOLD outside
    ``block`` is zeroed, so no held-out measurement enters training inputs.
    """
    size = max(hi - lo for lo, _, _, hi in spans)
    in_block = data.labels == BLOCKS.index(block)
    batch = {key: np.zeros((len(spans), size) + v.shape[1:], v.dtype) for key, v in data.stimulus.items()}
    target = np.zeros((len(spans), size), bool)
    bold = {s: np.zeros((len(spans), size, v.shape[1]), np.float32) for s, v in data.bold.items()}
    valid = {s: np.zeros((len(spans), size), bool) for s in data.bold}
    grouped = bool(data.group_target_weight) and block == "train"
    goal = {s: np.zeros_like(v) for s, v in bold.items()} if grouped else bold
    for i, (lo, a, b, hi) in enumerate(spans):
        for key, v in data.stimulus.items():
            batch[key][i, : hi - lo] = v[lo:hi]
        target[i, a - lo : b - lo] = True
        for s in data.bold:
            keep = in_block[lo:hi] & data.bold_valid[s][lo:hi]
            bold[s][i, : hi - lo] = np.where(keep[:, None], data.bold[s][lo:hi], 0.0)
            valid[s][i, : hi - lo] = keep
            if grouped:
                goal[s][i, : hi - lo] = np.where(keep[:, None], data.encoding_target(s, lo, hi), 0.0)
    return batch, target, bold, valid, goal
