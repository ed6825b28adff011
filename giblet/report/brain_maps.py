"""Brain maps of voxel r, a subject's or the group's: over the mean EPI (or the MNI152 template), with ROI outlines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from giblet.outputs import EVALUATE_OUTPUTS
from giblet.report import figures
from giblet.voxel_scores import VoxelScores

__all__ = ["MAP_THRESHOLD", "WHOLE_BRAIN_MM", "VoxelMaps", "background_image", "map_figures", "group_map_figures"]


#: Voxels with |r| at most this are left out of the brain maps (stated on the page).
MAP_THRESHOLD = 0.1


#: A voxel grid at least this large (mm) on every axis is taken to be a whole-brain template space (e.g. MNI).
WHOLE_BRAIN_MM = 150.0


def background_image(prepared, image):
    """(image or None, what it is): the subject's mean EPI (training TRs) when it has contrast; else, for data
    stored already standardised on a whole-brain grid (as public group-space releases are), nilearn's MNI152
    template, which such data are registered to; else nothing."""
    mean = prepared.mean_epi
    if mean is not None and len(mean) == len(prepared.voxel_ijk) and np.std(mean) > 0.01 * np.abs(np.median(mean)) > 0:
        return image(mean), "the subject's mean EPI (training TRs, before cleaning)"
    extent = np.abs(np.diag(prepared.affine)[:3]) * np.asarray(prepared.grid_shape)
    if (extent >= WHOLE_BRAIN_MM).all():
        from nilearn.datasets import load_mni152_template

        return load_mni152_template(resolution=2), "the MNI152 template (the stored data are already standardised)"
    return None, "no anatomy (the stored data are already standardised and carry no mean image)"


@dataclass(frozen=True)
class VoxelMaps:
    """Voxel r of each model on one grid, with the ROIs (what the maps show of a :class:`VoxelScores`)."""

    maps: dict
    ijk: np.ndarray
    affine: np.ndarray
    roi_names: list
    membership: np.ndarray

    @classmethod
    def load(cls, path):
        """The r maps of one ``encoding_voxels.npz`` (:class:`~giblet.voxel_scores.VoxelScores`), or None when there
        is none."""
        if not path.exists():
            return None
        scores = VoxelScores.load(path)
        return cls(scores.r, scores.voxel_ijk, scores.affine, list(scores.roi_names), scores.roi_membership)

    @classmethod
    def mean(cls, subjects):
        """Every model's r averaged over the subjects that have each voxel (voxels matched by grid position); a
        voxel belongs to a ROI if it does in any subject. All on one grid (same affine)."""
        first = subjects[0]
        if any(not np.allclose(s.affine, first.affine) or s.roi_names != first.roi_names for s in subjects):
            raise ValueError("the subjects' voxel maps are on different grids or ROIs: no group map")
        ijk, where = np.unique(np.concatenate([s.ijk for s in subjects]), axis=0, return_inverse=True)
        where = np.split(where.ravel(), np.cumsum([len(s.ijk) for s in subjects])[:-1])
        membership = np.zeros((len(ijk), len(first.roi_names)), bool)
        maps = {}
        for s, rows in zip(subjects, where):
            membership[rows] |= s.membership.astype(bool)
            for model, r in s.maps.items():
                total, count = maps.setdefault(model, (np.zeros(len(ijk)), np.zeros(len(ijk))))
                finite = np.isfinite(r)
                total[rows[finite]] += r[finite]
                count[rows[finite]] += 1
        with np.errstate(invalid="ignore"):
            means = {model: total / count for model, (total, count) in maps.items()}
        return cls(means, ijk, first.affine, first.roi_names, membership)

    def figures(self, grid_shape, background=None, title="encoding r"):
        """Brain maps of every model's r on one colour scale with ROI outlines (``background``: a function of the
        image builder giving the background image), and the voxel-wise autoencoder-vs-ridge scatter."""
        import nibabel as nib

        def image(values):
            volume = np.zeros(grid_shape, np.float32)
            volume[tuple(self.ijk.T)] = np.nan_to_num(values)
            return nib.Nifti1Image(volume, self.affine)

        bg_img, described = background(image) if background else (None, "no anatomy")
        rois = {name: image(self.membership[:, i].astype(np.float32)) for i, name in enumerate(self.roi_names)}
        finite = np.concatenate([np.abs(r[np.isfinite(r)]) for r in self.maps.values()])
        vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        z_mm = (self.ijk @ self.affine[:3, :3].T + self.affine[:3, 3])[:, 2]  # slices through the voxels modelled
        cuts = np.linspace(*np.percentile(z_mm, [5, 95]), 6).round().tolist()
        out = [figures.brain_map(image(r), f"{title}: {name}", bg_img=bg_img, rois=rois, cut_coords=cuts,
                                 vmax=max(vmax, MAP_THRESHOLD * 1.5), threshold=MAP_THRESHOLD)
               for name, r in self.maps.items()]
        if {"autoencoder", "ridge"} <= set(self.maps):
            labels = [self.roi_names[row.argmax()] if row.any() else "other" for row in self.membership]
            out.append(figures.voxel_scatter(self.maps["ridge"], self.maps["autoencoder"], labels))
        return out, described


def map_figures(eval_dir, prepared):
    """(figures, background): brain maps of both models' voxel r over the mean EPI (:func:`background_image`) with ROI
    outlines, on one colour scale, and the voxel-wise autoencoder-vs-ridge scatter."""
    maps = VoxelMaps.load(eval_dir / EVALUATE_OUTPUTS["encoding_voxels"])
    if maps is None:
        return [], None
    return maps.figures(prepared.grid_shape, lambda image: background_image(prepared, image))


def group_map_figures(paths, prepared):
    """(figures, background, n_subjects): :func:`map_figures` of the voxel r averaged over subjects
    (:meth:`VoxelMaps.mean` of their ``encoding_voxels.npz`` ``paths``) over one subject's background
    (``prepared``: its ``PreparedFmri``)."""
    subjects = [m for m in (VoxelMaps.load(Path(p)) for p in paths) if m is not None]
    if not subjects:
        return [], None, 0
    figs, described = VoxelMaps.mean(subjects).figures(
        prepared.grid_shape, lambda image: background_image(prepared, image), title="mean encoding r over subjects")
    return figs, described.replace("the subject", f"subject {prepared.subject}", 1), len(subjects)
