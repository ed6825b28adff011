"""One subject's prepared fMRI data: the interchange file between ``prepare-fmri`` and later stages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from giblet.fmri.masks import roi_means, unmask
from giblet.io import save_npz
from giblet.splits import Split

__all__ = ["PreparedFmri", "subject_prepared_path"]


@dataclass(frozen=True)
class PreparedFmri:
    """Cleaned, standardised voxel data with its clock, split, voxel grid and ROI table.

    Attributes
    ----------
    subject : str
    values : ndarray, shape (n_trs, n_voxels), float32
        Z-scored with training-block statistics; NaN on every TR where ``valid_trs`` is False.
    runs : ndarray, shape (n_trs,), int64
        Run of each TR (0-based, playback order).
    tr_s : float
        Repetition time, in seconds; TR ``t`` covers ``[t * tr_s, (t + 1) * tr_s)``.
    valid_trs : ndarray, shape (n_trs,), bool
        TRs in a block and free of problems (not a gap; not a NaN, constant, repeated or outlier
        volume: ``qc["bad_tr_ranges"]``).
    split : Split
    voxel_ijk : ndarray, shape (n_voxels, 3), int32
        Grid index of each voxel column.
    affine : ndarray, shape (4, 4), float64
        Voxel-to-world affine of the grid, in mm.
    grid_shape : tuple of 3 int
    roi_names : tuple of str, length n_rois
    roi_membership : ndarray, shape (n_voxels, n_rois), bool
        ``roi_membership[:, r]`` marks the voxels of ROI ``roi_names[r]``.
    excluded_ijk : ndarray, shape (n_excluded, 3), int32
        Grid index of voxels left out.
    excluded_reasons : tuple of str, length n_excluded
        Why (``"nan"``: NaN at more than ``fmri.max_nan_fraction`` of the TRs; ``"constant"``;
        ``"outside_brain_mask"``).
    mean, scale : ndarray, shape (n_voxels,), float64
        Training-block statistics used for the z-score (after cleaning).
    qc : dict
        JSON-able quality report.
    mean_epi : ndarray, shape (n_voxels,), float32, optional
        Every voxel's mean over the valid training TRs of the data as read (before cleaning): a mean EPI
        (None in files written before it was stored).
    """

    subject: str
    values: np.ndarray
    runs: np.ndarray
    tr_s: float
    valid_trs: np.ndarray
    split: Split
    voxel_ijk: np.ndarray
    affine: np.ndarray
    grid_shape: tuple
    roi_names: tuple
    roi_membership: np.ndarray
    excluded_ijk: np.ndarray
    excluded_reasons: tuple
    mean: np.ndarray
    scale: np.ndarray
    qc: dict = field(default_factory=dict)
    mean_epi: np.ndarray | None = None

    @property
    def times_s(self) -> np.ndarray:
        """Start of each TR, in seconds from the first fMRI frame; shape (n_trs,), float64."""
        return np.arange(len(self.values)) * self.tr_s

    @property
    def rois(self) -> dict:
        """``{roi_name: voxel column indices}``."""
        return {name: np.flatnonzero(self.roi_membership[:, r]) for r, name in enumerate(self.roi_names)}

    def roi_means(self) -> np.ndarray:
        """Mean time course of every ROI, shape (n_trs, n_rois); NaN on invalid TRs."""
        return roi_means(self.values, self.roi_membership)

    def to_nifti(self, values, fill=0.0):
        """Draw per-voxel ``values`` (n_voxels,) or (n_maps, n_voxels) back into a NIfTI image."""
        return unmask(values, self.voxel_ijk, self.affine, self.grid_shape, fill=fill)

    def save(self, path):
        """Write to ``path`` (uncompressed ``.npz``: z-scored floats barely compress) atomically."""
        return save_npz(
            path, compress=False,
            subject=np.asarray(self.subject),
            values=self.values,
            runs=self.runs,
            tr_s=np.asarray(self.tr_s),
            valid_trs=self.valid_trs,
            split_labels=self.split.labels,
            split_gap_s=np.asarray(self.split.gap_s),
            voxel_ijk=self.voxel_ijk,
            affine=self.affine,
            grid_shape=np.asarray(self.grid_shape),
            roi_names=np.asarray(self.roi_names, dtype=str),
            roi_membership=self.roi_membership,
            excluded_ijk=self.excluded_ijk,
            excluded_reasons=np.asarray(self.excluded_reasons, dtype=str),
            mean=self.mean,
            scale=self.scale,
            qc=np.asarray(json.dumps(self.qc, sort_keys=True)),
            **({} if self.mean_epi is None else {"mean_epi": self.mean_epi}),
        )

    @classmethod
    def load(cls, path) -> "PreparedFmri":
        with np.load(path, allow_pickle=False) as z:
            tr_s = float(z["tr_s"])
            return cls(
                subject=str(z["subject"]),
                values=z["values"],
                runs=z["runs"],
                tr_s=tr_s,
                valid_trs=z["valid_trs"],
                split=Split(labels=z["split_labels"], tr_s=tr_s, gap_s=float(z["split_gap_s"])),
                voxel_ijk=z["voxel_ijk"],
                affine=z["affine"],
                grid_shape=tuple(int(n) for n in z["grid_shape"]),
                roi_names=tuple(str(n) for n in z["roi_names"]),
                roi_membership=z["roi_membership"],
                excluded_ijk=z["excluded_ijk"],
                excluded_reasons=tuple(str(r) for r in z["excluded_reasons"]),
                mean=z["mean"],
                scale=z["scale"],
                qc=json.loads(str(z["qc"])),
                mean_epi=z["mean_epi"] if "mean_epi" in z.files else None,
            )


def subject_prepared_path(prepared_paths, subject):
    """The ``prepare-fmri`` file of ``subject`` among ``prepared_paths`` (reads only its ``subject`` entry)."""
    found = []
    for path in prepared_paths:
        with np.load(path, allow_pickle=False) as z:
            found.append(str(z["subject"]))
            if found[-1] == subject:
                return Path(path)
    raise ValueError(f"no prepare-fmri file for subject {subject!r} among {len(found)} files (subjects {found}); "
                     "pass the subject's file in prepared_paths")
