"""Brain maps of a subject's voxel r: over its mean EPI (or the MNI152 template), with ROI outlines."""

from __future__ import annotations

import numpy as np

from giblet.evaluation.outputs import EVALUATE_OUTPUTS
from giblet.report import figures

__all__ = ["MAP_THRESHOLD", "WHOLE_BRAIN_MM", "background_image", "map_figures"]


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


def map_figures(eval_dir, prepared):
    """(figures, background): brain maps of both models' voxel r over the mean EPI (:func:`background_image`) with ROI
    outlines, on one colour scale, and the voxel-wise autoencoder-vs-ridge scatter."""
    import nibabel as nib

    path = eval_dir / EVALUATE_OUTPUTS["encoding_voxels"]
    if not path.exists():
        return [], None
    with np.load(path, allow_pickle=False) as z:
        maps = {key[2:]: z[key] for key in z.files if key.startswith("r_")}
        ijk, affine, roi_names, membership = z["voxel_ijk"], z["affine"], list(z["roi_names"]), z["roi_membership"]

    def image(values):
        volume = np.zeros(prepared.grid_shape, np.float32)
        volume[tuple(ijk.T)] = np.nan_to_num(values)
        return nib.Nifti1Image(volume, affine)

    background, described = background_image(prepared, image)
    rois = {str(name): image(membership[:, i].astype(np.float32)) for i, name in enumerate(roi_names)}
    finite = np.concatenate([np.abs(r[np.isfinite(r)]) for r in maps.values()])
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    z_mm = (ijk @ affine[:3, :3].T + affine[:3, 3])[:, 2]  # slices through the voxels modelled, not the whole grid
    cuts = np.linspace(*np.percentile(z_mm, [5, 95]), 6).round().tolist()
    out = [figures.brain_map(image(r), f"encoding r: {name}", bg_img=background, rois=rois, cut_coords=cuts,
                             vmax=max(vmax, MAP_THRESHOLD * 1.5), threshold=MAP_THRESHOLD) for name, r in maps.items()]
    if {"autoencoder", "ridge"} <= set(maps):
        labels = [str(roi_names[row.argmax()]) if row.any() else "other" for row in membership]
        out.append(figures.voxel_scatter(maps["ridge"], maps["autoencoder"], labels))
    return out, described
