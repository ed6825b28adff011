"""Ridge baselines on the same features: a voxelwise encoding model and a BOLD-window decoder.

Both are :mod:`giblet.training.ridge` fits, stored in their dual form (:class:`StoredRidge`) and turned into
primal weights from the design or BOLD they were fitted on when they predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.training.data import shift_within_runs
from giblet.training.ridge import StoredRidge, fit_dual_ridge

__all__ = ["EncodingDesign", "decoding_design", "decoding_rows", "DECODING_TARGETS", "decoder_targets",
           "fit_decoders"]

#: modality -> (per-TR target table in the features folder) for the ridge decoder; sound's target is the
#: code model's descriptor (``MovieData.descriptors["audio"]``), read through the same code model as the autoencoder's
DECODING_TARGETS = {"video": "video_lowlevel_tr.npz", "text": "text_tr.npz"}


@dataclass(frozen=True)
class EncodingDesign:
    """The ridge encoder's FIR design and the one place that moves between the fMRI's two clocks.

    Row ``t`` of ``values`` holds the stimulus features at the FIR delays before *stored* volume ``t``
    (the ``align`` stage's ``*_fir.npz`` tables side by side). The model clock (``MovieData``'s BOLD and
    labels) puts every volume at its acquisition TR, ``preshift_trs`` later; the encoder reads model-clock
    TR ``u`` from design row ``u - preshift_trs`` and its predictions move back by as much (as
    voxelwise_tutorials' ``Delayer`` holds the delays, this object holds the design with its clock).

    Attributes
    ----------
    values : ndarray, shape (n_trs, n_features), float32
    runs : ndarray, shape (n_trs,), int
    preshift_trs : int
    """

    values: np.ndarray
    runs: np.ndarray
    preshift_trs: int = 0

    @classmethod
    def load(cls, aligned_paths, runs, preshift_trs=0):
        """The FIR tables of ``aligned_paths`` side by side, on a scan of ``runs`` (one run index per TR)."""
        tables = [FeatureTable.load(p) for p in aligned_paths]
        n = {len(t.values) for t in tables}
        if n != {len(runs)}:
            raise ValueError(f"aligned tables {[str(p) for p in aligned_paths]} have {sorted(n)} volumes but the fMRI "
                             f"has {len(runs)}; align the features with this dataset's fmri.run_n_trs")
        values = np.concatenate([t.values for t in tables], axis=1).astype(np.float32)
        return cls(values, np.asarray(runs), int(preshift_trs))

    def fit(self, data, subject):
        """The ridge encoder of ``subject`` (:class:`StoredRidge`): this design -> its BOLD, fitted on the valid
        training TRs of the model clock."""
        return fit_dual_ridge(self.values, data.bold[subject], self.training_rows(data, subject),
                              lags=(-self.preshift_trs,))

    @staticmethod
    def training_rows(data, subject):
        """Model-clock TRs the encoder is fitted on (valid training BOLD); shape (n_trs,), bool."""
        return data.bold_valid[subject] & (data.labels == BLOCKS.index("train"))

    def check(self, encoder, data, subject, source="the aligned tables"):
        """Refuse an encoder (:class:`StoredRidge`) fitted on another design: other columns or training means."""
        stored = np.flatnonzero(self.training_rows(data, subject)) - self.preshift_trs
        if self.values.shape[1] != len(encoder.mean_) or not np.allclose(
                self.values[stored].astype(np.float64).mean(axis=0), encoder.mean_, rtol=1e-5, atol=1e-6):
            raise ValueError(f"{source} ({self.values.shape[1]} columns) are not the design the ridge encoder was "
                             f"trained on ({len(encoder.mean_)} columns); pass the train stage's --aligned files in "
                             "the same order")

    def predict(self, encoder):
        """The encoder's predicted BOLD on the model clock, (n_trs, n_voxels) float32, NaN on the first
        ``preshift_trs`` TRs of each run (``encoder``: :class:`StoredRidge` or :class:`RidgeMap`)."""
        if isinstance(encoder, StoredRidge):
            encoder = encoder.materialise(self.values)
        return shift_within_runs(encoder.predict(self.values), self.runs, self.preshift_trs, np.nan)


def decoding_rows(valid, labels, runs, block, delays):
    """TRs of ``block`` whose every window row ``t + d`` is a valid BOLD volume of ``block`` in the same run."""
    n = len(labels)
    ok = valid & (labels == BLOCKS.index(block))
    rows = labels == BLOCKS.index(block)
    for d in delays:
        rows &= np.r_[ok[d:] & (runs[d:] == runs[: n - d]), np.zeros(d, bool)]
    return rows


def decoding_design(bold, valid, labels, runs, block, delays):
    """BOLD windows after each TR on the clock: X[t] = [bold[t + d] for d in delays].

    Returns the design (n_trs, n_voxels * n_delays), 0 past the end, and :func:`decoding_rows`.
    """
    n, n_voxels = bold.shape
    X = np.zeros((n, n_voxels * len(delays)), np.float32)
    for i, d in enumerate(delays):
        X[: n - d, i * n_voxels : (i + 1) * n_voxels] = bold[d:]
    return X, decoding_rows(valid, labels, runs, block, delays)


def decoder_targets(data, features_dir):
    """What the ridge decoders predict: modality -> per-TR table (n_trs, n) on the model clock
    (:data:`DECODING_TARGETS` of ``data``'s modalities, and the sound descriptor with audio)."""
    targets = {modality: FeatureTable.load(Path(features_dir) / file).values
               for modality, file in DECODING_TARGETS.items()
               if (Path(features_dir) / file).exists() and modality in data.modalities}
    return {**targets, **data.descriptors}


def fit_decoders(data, subject, targets, delays):
    """``subject``'s ridge decoders: the BOLD window ``delays`` after each training TR -> each of ``targets``
    (from :func:`decoder_targets`); modality -> :class:`StoredRidge` of ``data.bold[subject]``."""
    rows = decoding_rows(data.bold_valid[subject], data.labels, data.runs, "train", delays)
    return {modality: fit_dual_ridge(data.bold[subject], target, rows, lags=delays) for modality, target in targets.items()}
