"""Brain and ROI masks on any grid, brought onto the data grid, and the named-ROI table.

Real masks are rarely clean binary images on the data grid. Every one goes through
:func:`load_mask`, which handles what occurs in practice (all of it in the Sherlock kit):

- fractional masks (a brain mask downsampled to 3 mm holds 0, 0.125, ..., 1) and
  continuous-valued maps: a voxel is in the mask when its value is ``> threshold``;
- label-valued images (values 20..93): every non-zero label is in the mask, or, with
  ``atlas=True``, each label becomes its own ROI ``<name>_<label>``;
- 4-D images with one volume (x, y, z, 1): squeezed;
- another affine or voxel size: resampled to the data grid with nearest neighbour (nilearn),
  so labels and values are never blended. A mask whose voxels mostly fall outside the data's
  field of view is in another space (native vs MNI) and is an error, not resampled.

Voxel columns of the data are described by their grid indices ``ijk`` (n_voxels, 3); an ROI
is a boolean column membership, so ``membership[:, r]`` selects ROI ``r``'s voxels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from giblet.config import check_choice
from giblet.fmri.integrity import check_complete, readable

__all__ = ["MaskSpec", "mask_spec", "mask_grid", "load_mask", "check_mask_input", "grid_ijk", "roi_means", "unmask"]

log = logging.getLogger(__name__)

_MIN_INSIDE_FRACTION = 0.5  # below this share of its volume inside the data's field of view, a mask is in another space


@dataclass(frozen=True)
class MaskSpec:
    """A mask or ROI file and how to read it.

    Attributes
    ----------
    path : str
        NIfTI file, on any grid.
    threshold : float, default=0.0
        A voxel is in the mask when its value is ``> threshold`` (0: every non-zero voxel;
        0.5 keeps the voxels mostly inside a fractional brain mask).
    atlas : bool, default=False
        Integer label image whose labels are separate ROIs, named ``<name>_<label>``.
    """

    path: str
    threshold: float = 0.0
    atlas: bool = False


def mask_spec(value) -> MaskSpec:
    """Build a :class:`MaskSpec` from a config value: a path or ``{path, threshold, atlas}``."""
    if isinstance(value, MaskSpec):
        return value
    if isinstance(value, (str, Path)):
        return MaskSpec(str(value))
    if isinstance(value, dict) and "path" in value:
        return MaskSpec(str(value["path"]), float(value.get("threshold", 0.0)), bool(value.get("atlas", False)))
    raise ValueError(f"a mask must be a path or a mapping with 'path' (and 'threshold', 'atlas'), got {value!r}")


def _mask_kind(values):
    """Describe the non-zero values of a mask: binary, fractional, labels or continuous."""
    nonzero = np.unique(values[values != 0])
    if len(nonzero) <= 1:
        return "binary"
    if nonzero.min() > 0 and nonzero.max() <= 1:
        return "fractional"
    if np.all(nonzero == np.round(nonzero)):
        return "labels"
    return "continuous"


def _open_3d(path):
    """Open a mask, squeezing a 4-D singleton; check it is 3-D, complete and undamaged (no data kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask file not found; check the mask path in the fmri config")
    with readable(path):
        img = nib.load(path)
    if img.ndim not in (3, 4) or img.ndim == 4 and img.shape[3] != 1:
        raise ValueError(
            f"{path}: mask has shape {img.shape}; a mask must be 3-D (or 4-D with one volume). "
            "Split a 4-D atlas into one file per map"
        )
    check_complete(path, img, verify_crc=True)  # masks are small
    return nib.funcs.squeeze_image(img) if img.ndim == 4 else img


def _read_3d(path):
    """Load a mask image, squeezing a 4-D singleton; NaN becomes 0."""
    img = _open_3d(path)
    with readable(path):
        values = np.nan_to_num(np.asanyarray(img.dataobj).astype(np.float64))
    return nib.Nifti1Image(values, img.affine), values


def check_mask_input(spec):
    """Check a mask file without keeping its data (for ``giblet check-inputs``; masks are small).

    Parameters
    ----------
    spec : MaskSpec or str or dict

    Raises
    ------
    FileNotFoundError, ValueError
        The file is missing, truncated or corrupt, or not 3-D (or 4-D with one volume).
    """
    _open_3d(mask_spec(spec).path)


def _inside_fraction(values, affine, target_affine, target_shape):
    """Share of the mask's non-zero voxels whose centres fall on the target grid."""
    ijk = np.argwhere(values != 0)
    world = nib.affines.apply_affine(affine, ijk)
    target = np.round(nib.affines.apply_affine(np.linalg.inv(target_affine), world))
    inside = np.all((target >= 0) & (target < np.asarray(target_shape)), axis=1)
    return float(inside.mean()) if len(ijk) else 0.0


def mask_grid(spec):
    """The grid a mask file is on: ``(affine (4, 4), grid_shape (3 int))``."""
    img, _ = _read_3d(mask_spec(spec).path)
    return img.affine, img.shape


def load_mask(name, spec, target_affine, target_shape):
    """Read a mask and put it on the data grid.

    Parameters
    ----------
    name : str
        ROI name (used in messages, and as the prefix of atlas labels).
    spec : MaskSpec or str or dict
    target_affine : ndarray, shape (4, 4)
        Voxel-to-world affine of the data, in mm.
    target_shape : tuple of 3 int
        Grid shape of the data.

    Returns
    -------
    masks : dict of str -> ndarray, shape target_shape, bool
        ``{name: mask}``, or ``{f"{name}_{label}": mask}`` for each label of an atlas.
    qc : dict
        JSON-able description: path, kind, threshold, distinct values, voxels and volumes
        (mm^3) before and after resampling, share inside the data's field of view.
    """
    spec = mask_spec(spec)
    img, values = _read_3d(spec.path)
    kind = _mask_kind(values)
    voxel_mm3 = abs(np.linalg.det(img.affine[:3, :3]))
    target_mm3 = abs(np.linalg.det(np.asarray(target_affine)[:3, :3]))
    inside = _inside_fraction(values, img.affine, target_affine, target_shape)
    if inside < _MIN_INSIDE_FRACTION:
        raise ValueError(
            f"{spec.path}: only {inside:.0%} of mask {name!r} lies inside the data's field of view "
            f"(mask affine {img.affine.tolist()}, data affine {np.asarray(target_affine).tolist()}); "
            "the mask is in another space: give a mask in the data's space (e.g. MNI vs native)"
        )
    same_grid = img.shape == tuple(target_shape) and np.allclose(img.affine, target_affine)
    if not same_grid:
        from nilearn.image import resample_img  # here: ~1 s to import, and most stages only read prepared files

        img = resample_img(
            img, target_affine=target_affine, target_shape=target_shape, interpolation="nearest",
            force_resample=True, copy_header=True,
        )
        log.info("%s: mask %r resampled (nearest neighbour) onto the data grid", spec.path, name)
    on_grid = np.asanyarray(img.dataobj)
    if spec.atlas:
        if kind not in ("labels", "binary"):
            raise ValueError(
                f"{spec.path}: atlas {name!r} has {kind} values; an atlas needs integer labels (set atlas: false)"
            )
        labels = np.unique(on_grid[on_grid > spec.threshold]).astype(int)
        masks = {f"{name}_{label}": on_grid == label for label in labels}
    else:
        masks = {name: on_grid > spec.threshold}
    empty = [key for key, mask in masks.items() if not mask.any()]
    if not masks or empty:
        raise ValueError(
            f"{spec.path}: mask {name!r} has no voxel with value > {spec.threshold} on the data grid "
            f"({kind} values in [{values.min():g}, {values.max():g}]); lower its threshold"
        )
    n_source = int((values > spec.threshold).sum())
    qc = {
        "path": str(spec.path),
        "kind": kind,
        "threshold": spec.threshold,
        "n_distinct_values": int(len(np.unique(values[values != 0]))),
        "resampled": not same_grid,
        "inside_fov_fraction": inside,
        "n_voxels_source": n_source,
        "volume_mm3_source": n_source * voxel_mm3,
        "n_voxels_on_grid": {key: int(mask.sum()) for key, mask in masks.items()},
        "volume_mm3_on_grid": {key: float(mask.sum() * target_mm3) for key, mask in masks.items()},
    }
    return masks, qc


def grid_ijk(mask, order="C"):
    """Grid indices of a mask's voxels, in C (numpy) or F (MATLAB, column-major) order.

    Parameters
    ----------
    mask : ndarray, shape (nx, ny, nz), bool
    order : {"C", "F"}

    Returns
    -------
    ndarray, shape (n_voxels, 3), int32
    """
    check_choice("voxel order", order, ("C", "F"))
    flat = np.flatnonzero(np.ravel(mask, order=order))
    return np.stack(np.unravel_index(flat, mask.shape, order=order), axis=1).astype(np.int32)


def roi_means(values, membership):
    """Mean time course of every ROI.

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    membership : ndarray, shape (n_voxels, n_rois), bool

    Returns
    -------
    ndarray, shape (n_trs, n_rois), float64
        NaN at TRs where a member voxel is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    return np.stack([values[:, member].mean(axis=1) for member in np.asarray(membership, bool).T], axis=1)


def unmask(values, ijk, affine, grid_shape, fill=0.0):
    """Draw voxel values back into a NIfTI image.

    Parameters
    ----------
    values : ndarray, shape (n_voxels,) or (n_maps, n_voxels)
    ijk : ndarray, shape (n_voxels, 3), int
        Grid index of each voxel column.
    affine : ndarray, shape (4, 4)
    grid_shape : tuple of 3 int
    fill : float, default=0.0
        Value outside the voxels.

    Returns
    -------
    nibabel.Nifti1Image
        3-D for one map, 4-D (x, y, z, n_maps) otherwise; float32.
    """
    values = np.asarray(values, dtype=np.float32)
    maps = np.atleast_2d(values)
    if maps.shape[1] != len(ijk):
        raise ValueError(f"values have {maps.shape[1]} voxels but ijk has {len(ijk)}")
    out = np.full((*tuple(grid_shape), len(maps)), fill, dtype=np.float32)
    out[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = maps.T
    return nib.Nifti1Image(out[..., 0] if values.ndim == 1 else out, np.asarray(affine, dtype=float))
