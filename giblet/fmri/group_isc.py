"""The group ISC file: the interchange between ``group-isc`` and the stages and pages that read the ceiling."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from giblet.io import save_npz

__all__ = ["GroupIsc"]


@dataclass(frozen=True)
class GroupIsc:
    """Leave-one-subject-out ISC per voxel and ROI mean, with its chance reference and intervals.

    Attributes
    ----------
    subjects : tuple of str, length n_subjects
    blocks : tuple of str, length n_blocks
        ``"all"`` (every TR valid in every subject), then the split's non-empty blocks.
    n_trs : ndarray, shape (n_blocks,), int
        TRs of each block.
    voxel_ijk : ndarray, shape (n_voxels, 3), int
        Grid index of the voxels kept in every subject.
    affine : ndarray, shape (4, 4), float64
    grid_shape : tuple of 3 int
    roi_names : tuple of str, length n_rois
    voxel_isc : ndarray, shape (n_blocks, n_subjects, n_voxels), float32
    roi_isc : ndarray, shape (n_blocks, n_subjects, n_rois), float32
    roi_isc_null : ndarray, shape (n_blocks, n_subjects, n_rois), float32
        Chance reference: the mean over draws with every subject circularly shifted by its own offset.
    roi_isc_null_band : ndarray, shape (n_blocks, 2, n_subjects, n_rois), float32
        The draws' 2.5 and 97.5 percentiles.
    roi_isc_null_group_band : ndarray, shape (n_blocks, 2, n_rois), float32
        The same of the subjects' mean ISC.
    roi_isc_ci : ndarray, shape (n_blocks, 2, n_subjects, n_rois), float32
        Moving-block bootstrap 95 % interval of the ROI ISC (the same TRs drawn for every subject).
    roi_isc_group_ci : ndarray, shape (n_blocks, 2, n_rois), float32
        The same of the subjects' mean.
    roi_timecourses : ndarray, shape (n_subjects, n_trs, n_rois), float32
        Every subject's ROI means, NaN on its invalid TRs (for ceilings on any TRs).
    summary : dict
        Group means per block; with published tables, ``published_isc`` rows (the published ISC, it
        recomputed, and this group's whole-scan ISC).
    source : str
        The file it was loaded from (named in errors; not saved).
    """

    subjects: tuple
    blocks: tuple
    n_trs: np.ndarray
    voxel_ijk: np.ndarray
    affine: np.ndarray
    grid_shape: tuple
    roi_names: tuple
    voxel_isc: np.ndarray
    roi_isc: np.ndarray
    roi_isc_null: np.ndarray
    roi_isc_null_band: np.ndarray
    roi_isc_null_group_band: np.ndarray
    roi_isc_ci: np.ndarray
    roi_isc_group_ci: np.ndarray
    roi_timecourses: np.ndarray
    summary: dict
    source: str = "group ISC"

    def save(self, path):
        """Write to ``path`` (``.npz``, one array per attribute) atomically."""
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)
                  if f.name not in ("summary", "source")}
        return save_npz(path, **arrays, summary=np.asarray(json.dumps(self.summary, sort_keys=True)))

    @classmethod
    def load(cls, path) -> "GroupIsc":
        """Read a file of :meth:`save`; one missing an attribute (an older giblet's) is refused by name."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        with np.load(path, allow_pickle=False) as z:
            missing = sorted(set(names) - set(z.files))
            if missing:
                raise ValueError(f"{path}: no {missing} (written by an older giblet); rerun group-isc")
            values = {name: z[name] for name in names}
        return cls(**values | {
            "subjects": tuple(str(s) for s in values["subjects"]), "blocks": tuple(str(b) for b in values["blocks"]),
            "grid_shape": tuple(int(n) for n in values["grid_shape"]),
            "roi_names": tuple(str(r) for r in values["roi_names"]), "summary": json.loads(str(values["summary"])),
            "source": str(path)})

    def index(self, subject, block, roi_names):
        """``(block index, subject index)`` of ``subject`` on ``block``, checking the ROIs are ``roi_names``."""
        if subject not in self.subjects or block not in self.blocks:
            raise ValueError(f"{self.source}: no {subject!r} in subjects {list(self.subjects)} or no {block!r} in "
                             f"blocks {list(self.blocks)}; rerun group-isc with every subject of the config")
        if self.roi_names != tuple(roi_names):
            raise ValueError(f"{self.source}: ROIs {list(self.roi_names)} differ from the subject's "
                             f"{list(roi_names)}; rerun group-isc after prepare-fmri")
        return self.blocks.index(block), self.subjects.index(subject)

    @property
    def shown_block(self) -> int:
        """The block the pages show: the test block when there is one, else the whole scan."""
        return self.blocks.index("test") if "test" in self.blocks else 0
