"""The ``prepare-fmri`` stage (one job per subject) and the group ISC that follows it."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from giblet.blocks import column_blocks, keep_columns
from giblet.fmri.clean import CleanConfig, clean_pieces, fill_nan_samples, standardize
from giblet.fmri.group_isc import GroupIsc
from giblet.fmri.isc import (N_ISC_SHIFTS, bootstrap_isc, isc_vs_group_mean, loso_isc, published_isc,
                             shifted_null_isc)
from giblet.fmri.load import bold_grid, is_matrix, read_bold, read_confounds, read_matrix
from giblet.fmri.masks import grid_ijk, load_mask, mask_grid, mask_spec, roi_means
from giblet.fmri.prepared import PreparedFmri
from giblet.fmri.quality import MAX_NAN_FRACTION, constant_voxels, find_bad
from giblet.splits import BLOCKS, GAP, SplitConfig, fold_chunks, make_split
from giblet.splits import pieces as split_pieces

__all__ = ["PrepareFmriConfig", "run_prepare_fmri", "run_group_isc"]

log = logging.getLogger(__name__)

_MIN_ROI_KEPT = 0.5  # a ROI keeping less than this share of its voxels in the data is worth a warning


@dataclass(frozen=True)
class PrepareFmriConfig:
    """Options of ``prepare-fmri`` (keys of the config's ``fmri`` section).

    Attributes
    ----------
    brain_mask : MaskSpec, optional
        Voxels to keep. NIfTI input: read these voxels (default: the union of the ROIs).
        Matrix input: matrix voxels outside it are excluded.
    rois : dict of str -> MaskSpec
        Named ROIs (atlas specs expand to one ROI per label); they travel with the data.
    matrix_mask : MaskSpec, optional
        The mask a matrix input's rows were taken from (required for matrix input).
    matrix_key, kept_key : str, optional
        Arrays of a matrix file holding the data and the kept-voxel flags (Sherlock: rdata, keptvox).
    voxel_order : {"C", "F"}, optional
        Row order of a matrix among its mask's voxels; default "F" for .mat, "C" otherwise.
    detrend : bool, default=True
        Remove mean and linear trend of every (run, block) piece.
    high_pass_hz : float or None, default=0.01
        High-pass cut-off, in Hz (100 s period); None for no filter.
    low_pass_hz : float or None, default=None
        Low-pass cut-off, in Hz; needs ``filter="butterworth"``.
    filter : {"cosine", "butterworth"}, default="cosine"
    header_tr : {"check", "ignore"}, default="check"
        A NIfTI header TR more than 1 % away from ``tr_s`` is an error; ``"ignore"`` trusts ``tr_s``.
    max_nan_fraction : float, default=0.05
        Voxels with NaN at more than this share of the TRs are dropped; others keep, their NaN
        samples filled by linear interpolation in time.
    """

    brain_mask: object = None
    rois: dict = field(default_factory=dict)
    matrix_mask: object = None
    matrix_key: str | None = None
    kept_key: str | None = None
    voxel_order: str | None = None
    detrend: bool = True
    high_pass_hz: float | None = 0.01
    low_pass_hz: float | None = None
    filter: str = "cosine"
    header_tr: str = "check"
    max_nan_fraction: float = MAX_NAN_FRACTION

    def __post_init__(self):
        for name in ("brain_mask", "matrix_mask"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, mask_spec(getattr(self, name)))
        object.__setattr__(self, "rois", {str(k): mask_spec(v) for k, v in self.rois.items()})

    @property
    def cleaning(self) -> CleanConfig:
        """The detrending and filter options, for :func:`~giblet.fmri.clean.clean_pieces`."""
        return CleanConfig(self.detrend, self.high_pass_hz, self.low_pass_hz, self.filter)

    @classmethod
    def from_dict(cls, section) -> "PrepareFmriConfig":
        """Take this stage's keys from the config's ``fmri`` section (other keys belong to other stages)."""
        return cls(**{f.name: section[f.name] for f in fields(cls) if section.get(f.name) is not None})


def _read_input(inputs, config, tr_s, run_n_trs):
    """Read a subject's data and put the masks on its grid: (values, ijk, affine, shape, masks, masks_qc, excluded)."""
    n_trs = sum(run_n_trs)
    matrix = len(inputs) == 1 and is_matrix(inputs[0])
    if matrix:
        if config.matrix_mask is None:
            raise ValueError(f"{inputs[0]}: a matrix input needs fmri.matrix_mask (the mask its rows were taken from)")
        affine, grid_shape = mask_grid(config.matrix_mask)
    else:
        affine, grid_shape = bold_grid(inputs, run_n_trs, tr_s, config.header_tr)
    masks, masks_qc, brain = {}, {}, None
    if config.brain_mask is not None:
        on_grid, masks_qc["brain_mask"] = load_mask("brain_mask", config.brain_mask, affine, grid_shape)
        brain = on_grid["brain_mask"]
    for name, spec in config.rois.items():
        on_grid, masks_qc[name] = load_mask(name, spec, affine, grid_shape)
        masks.update(on_grid)
    if matrix:
        source, _ = load_mask("matrix_mask", config.matrix_mask, affine, grid_shape)
        values, ijk = read_matrix(
            inputs[0], source["matrix_mask"], n_trs,
            key=config.matrix_key, kept_key=config.kept_key, voxel_order=config.voxel_order,
        )
    else:
        if brain is None and not masks:
            raise ValueError(f"{inputs[0]}: NIfTI input needs fmri.brain_mask or fmri.rois to choose the voxels")
        brain = brain if brain is not None else np.any(list(masks.values()), axis=0)
        values, ijk = read_bold(inputs, brain), grid_ijk(brain, "C")
    inside = np.ones(len(ijk), bool) if brain is None else brain[tuple(ijk.T)]
    excluded = (ijk[~inside], ["outside_brain_mask"] * int((~inside).sum()))
    return keep_columns(values, inside), ijk[inside], affine, grid_shape, masks, masks_qc, excluded


def run_prepare_fmri(subject, inputs, out_path, timing, *, split=SplitConfig(), config=PrepareFmriConfig(),
                     confounds=None, published=None) -> Path:
    """Read, check, clean and standardise one subject's fMRI; write a :class:`PreparedFmri` ``.npz``.

    Parameters
    ----------
    subject : str
    inputs : path or sequence of path
        4-D NIfTI files (one per run, or one holding all runs), or one matrix file
        (``.npy``/``.npz``/``.mat``/``.h5``, voxels x TRs).
    out_path : path
        Output ``.npz`` (written atomically).
    timing : giblet.timing.ScanTiming
        Repetition time and TRs of each run, in playback order (``start_offset_s`` is not used).
    split : SplitConfig
        Train/val/test blocks; statistics of the z-score come from the training block only.
    config : PrepareFmriConfig
    confounds : path, optional
        Nuisance regressors, one row per TR over all runs (``.tsv``/``.csv``/``.npy``).
    published : dict of str to (path, int), optional
        ROI -> (published ISC table, this subject's column): the ISC recomputed the published way
        beside the published value (:func:`~giblet.fmri.isc.published_isc`), in ``qc["published_isc"]``.

    Returns
    -------
    Path
        ``out_path``. The file holds values (n_trs, n_voxels) float32 z-scored on the training
        TRs (NaN on invalid TRs), runs, valid TRs, split, voxel grid, ROI table, excluded
        voxels, training statistics and the QC summary (``PreparedFmri.qc``).
    """
    inputs = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    tr_s, run_n_trs = timing.tr_s, list(timing.run_n_trs)
    runs = np.repeat(np.arange(len(run_n_trs)), run_n_trs)
    the_split = make_split(len(runs), tr_s, split)
    # cross-validation folds: their chunks are cleaned on their own too, so no filter crosses a fold's block either
    labellings = [the_split.labels] + ([fold_chunks(len(runs), tr_s, split)] if split.folds > 1 else [])
    train = the_split.mask("train")
    source = ", ".join(str(p) for p in inputs)

    values, ijk, affine, grid_shape, masks, masks_qc, (excluded_ijk, reasons) = _read_input(
        inputs, config, tr_s, run_n_trs
    )
    published = {roi: published_isc(values[:, masks[roi][tuple(ijk.T)]], path, column)
                 for roi, (path, column) in (published or {}).items()}  # the stored data, before any cleaning
    quality = find_bad(values, reference_trs=train, source=source, runs=runs,
                       max_nan_fraction=config.max_nan_fraction)
    valid = quality.tr_ok & np.any([labels != GAP for labels in labellings], axis=0)
    for block in BLOCKS:
        if the_split.mask(block).any() and not (valid & the_split.mask(block)).any():
            log.warning("%s: the %s block has no valid TR left (bad TRs %s); no model can be scored on it: "
                        "fix the data or the split", source, block, quality.summary()["n_bad_trs"])
    pieces = split_pieces(runs, *labellings)
    voxel_reasons = quality.voxel_reasons()
    kept = np.flatnonzero(quality.voxel_ok)  # columns of ``values`` still in use, as indices of the voxels read
    values = keep_columns(values, quality.voxel_ok)  # from here on filled, cleaned and z-scored in place: held once
    n_filled, unfillable = fill_nan_samples(values, pieces, valid)
    voxel_reasons[kept[unfillable]] = "nan"
    values, kept, n_filled = keep_columns(values, ~unfillable), kept[~unfillable], n_filled[~unfillable]
    mean_epi = np.empty(values.shape[1], np.float32)  # the raw image, before cleaning: the report's background
    for block in column_blocks(values.shape[1]):
        mean_epi[block] = values[valid & train, block].mean(axis=0)
    clean_pieces(values, pieces, valid, tr_s=tr_s, config=config.cleaning,
                 confounds=None if confounds is None else read_confounds(confounds, len(runs)), out=values)
    fit = valid & train
    flat = constant_voxels(values, fit)  # constant once detrended/filtered: nothing left to model
    voxel_reasons[kept[flat]] = "constant"
    keep = voxel_reasons == ""
    z = keep_columns(values, ~flat)
    z, mean, scale = standardize(z, fit, out=z)

    ijk_kept = ijk[keep]
    roi_names = tuple(masks)
    membership = np.stack([masks[name][tuple(ijk_kept.T)] for name in roi_names], axis=1).reshape(len(ijk_kept), -1)
    empty = [name for name, n in zip(roi_names, membership.sum(axis=0)) if n == 0]
    if empty:
        raise ValueError(
            f"{source}: ROIs {empty} have no usable voxel in the data (outside its voxels or all excluded); "
            "remove them from fmri.rois or check their masks"
        )
    _warn_thin_rois(masks, ijk, voxel_reasons, source)
    qc = {
        "subject": subject,
        "inputs": [str(p) for p in inputs],
        "tr_s": tr_s,
        "run_n_trs": run_n_trs,
        "split_folds": int(split.folds),  # cross-validation chunks cleaned on their own (1: none)
        "n_voxels_read": int(len(ijk) + len(excluded_ijk)),
        "n_voxels_kept": int(keep.sum()),
        "n_excluded_voxels": dict(Counter([*reasons, *voxel_reasons[~keep].tolist()])),
        **quality.summary(),
        "n_filled_samples": int(n_filled[~flat].sum()),  # NaN samples of kept voxels, interpolated in time
        "n_filled_voxels": int((n_filled[~flat] > 0).sum()),
        "n_valid_trs": {b: int((valid & the_split.mask(b)).sum()) for b in BLOCKS},
        "split": the_split.to_dict(),
        "masks": masks_qc,
        "rois": {name: int(n) for name, n in zip(roi_names, membership.sum(axis=0))},
        "cleaning": {**asdict(config.cleaning), "confounds": None if confounds is None else str(confounds)},
        "published_isc": published,
        "block_mean_sd": {  # training: 0 and 1 by construction; val/test: as a model sees them
            b: _mean_sd(z, rows) for b in BLOCKS if (rows := valid & the_split.mask(b)).any()
        },
    }
    prepared = PreparedFmri(
        subject=subject, values=z, runs=runs, tr_s=float(tr_s), valid_trs=valid, split=the_split,
        voxel_ijk=ijk_kept, affine=np.asarray(affine, dtype=np.float64), grid_shape=tuple(grid_shape),
        roi_names=roi_names, roi_membership=membership,
        excluded_ijk=np.concatenate([excluded_ijk, ijk[~keep]]).astype(np.int32).reshape(-1, 3),
        excluded_reasons=(*reasons, *voxel_reasons[~keep]), mean=mean, scale=scale, qc=qc, mean_epi=mean_epi[~flat],
    )
    log.info("%s: %d TRs (%d valid) x %d voxels, %d excluded; bad TRs %s; %d NaN samples filled in %d voxels",
             subject, len(runs), valid.sum(), keep.sum(), len(prepared.excluded_reasons), qc["n_bad_trs"],
             qc["n_filled_samples"], qc["n_filled_voxels"])
    return prepared.save(out_path)


def _warn_thin_rois(masks, ijk, voxel_reasons, source):
    """Log a WARNING for every ROI that keeps less than ``_MIN_ROI_KEPT`` of its voxels in the data."""
    for name, mask in masks.items():
        reasons = voxel_reasons[mask[tuple(ijk.T)]]
        n_kept = int((reasons == "").sum())
        if n_kept < _MIN_ROI_KEPT * len(reasons):
            log.warning("%s: ROI %r keeps %d of its %d voxels in the data (excluded: %s); its results rest on few "
                        "voxels: check the data (and fmri.max_nan_fraction)",
                        source, name, n_kept, len(reasons), dict(Counter(reasons[reasons != ""].tolist())))


def _mean_sd(values, rows):
    """``[mean, sd]`` of all of ``values[rows]``, summed in float64 a block of voxels at a time."""
    n, total, squares = rows.sum() * values.shape[1], 0.0, 0.0
    for block in column_blocks(values.shape[1]):
        x = values[rows, block].astype(np.float64)
        total, squares = total + x.sum(), squares + np.square(x).sum()
    mean = total / n
    return [float(mean), float(np.sqrt(squares / n - mean**2))]


def run_group_isc(prepared_paths, out_path) -> Path:
    """Leave-one-subject-out ISC per voxel and per ROI mean from ``prepare-fmri`` outputs.

    Subjects are streamed (each file read twice), so whole-brain groups fit in memory. Only
    voxels kept in every subject and TRs valid in every subject are used.

    Parameters
    ----------
    prepared_paths : sequence of path
        :class:`PreparedFmri` files of >= 2 subjects on one grid, TR axis, split and ROI table.
    out_path : path
        Output ``.npz`` (written atomically).

    Returns
    -------
    Path
        ``out_path``, a :class:`~giblet.fmri.group_isc.GroupIsc` file.
    """
    paths = [Path(p) for p in prepared_paths]
    if len(paths) < 2:
        raise ValueError(f"group ISC needs >= 2 subjects, got {len(paths)}")
    first = PreparedFmri.load(paths[0])
    flat0 = np.ravel_multi_index(tuple(first.voxel_ijk.T), first.grid_shape)
    total = np.zeros(first.values.shape, dtype=np.float64)
    count = np.zeros(len(flat0), dtype=np.int64)
    valid = np.ones(len(first.values), bool)
    columns, subjects, published = [], [], []
    for s, path in enumerate(tqdm(paths, desc="group ISC: sum", unit="subject")):
        p = first if s == 0 else PreparedFmri.load(path)
        if not (p.grid_shape == first.grid_shape and np.allclose(p.affine, first.affine)
                and np.array_equal(p.split.labels, first.split.labels) and p.roi_names == first.roi_names):
            raise ValueError(
                f"{path}: grid, TR axis, split or ROIs differ from {paths[0]}; prepare all subjects with one config"
            )
        _, in_first, in_p = np.intersect1d(flat0, np.ravel_multi_index(tuple(p.voxel_ijk.T), p.grid_shape),
                                           return_indices=True)
        total[:, in_first] += p.values[:, in_p]
        count[in_first] += 1
        valid &= p.valid_trs
        columns.append((in_first, in_p))
        subjects.append(p.subject)
        published.append(p.qc.get("published_isc", {}))
    common = count == len(paths)
    group_mean = total[:, common] / len(paths)
    del total
    blocks = {"all": valid} | {b: rows for b in BLOCKS if (rows := valid & first.split.mask(b)).any()}
    voxel_isc = np.empty((len(blocks), len(paths), int(common.sum())), dtype=np.float32)
    own_rois = []
    for s, path in enumerate(tqdm(paths, desc="group ISC: correlate", unit="subject")):
        in_first, in_p = columns[s]
        own = np.full((len(valid), len(flat0)), np.nan)
        own[:, in_first] = PreparedFmri.load(path).values[:, in_p]
        own = own[:, common]
        own_rois.append(roi_means(own, first.roi_membership[common]))
        for b, rows in enumerate(blocks.values()):
            voxel_isc[b, s] = isc_vs_group_mean(own[rows], group_mean[rows], len(paths))
    own_rois = np.stack(own_rois)  # (n_subjects, n_trs, n_rois)
    roi_isc = np.stack([loso_isc(own_rois[:, rows]) for rows in blocks.values()])
    rng = np.random.default_rng(0)
    roi_nulls = np.stack([shifted_null_isc(own_rois[:, rows], N_ISC_SHIFTS, rng) for rows in blocks.values()])
    roi_null = roi_nulls.mean(axis=1)  # (n_blocks, n_subjects, n_rois)
    roi_null_band = np.percentile(roi_nulls, [2.5, 97.5], axis=1).transpose(1, 0, 2, 3)
    group_null_band = np.percentile(roi_nulls.mean(axis=2), [2.5, 97.5], axis=1).transpose(1, 0, 2)
    draws = [bootstrap_isc(own_rois[:, rows]) for rows in blocks.values()]  # (n_draws, n_subjects, n_rois) each
    roi_ci = np.stack([np.nanpercentile(d, [2.5, 97.5], axis=0) for d in draws])
    group_ci = np.stack([np.nanpercentile(d.mean(axis=1), [2.5, 97.5], axis=0) for d in draws])
    summary = {
        "subjects": subjects,
        "n_voxels": int(common.sum()),
        "n_voxels_dropped": int((~common).sum()),
        "blocks": {
            block: {"n_trs": int(rows.sum()),
                    "median_voxel_isc": float(np.nanmedian(voxel_isc[b])),
                    "roi_isc_mean": dict(zip(first.roi_names, np.nanmean(roi_isc[b], axis=0).tolist())),
                    "roi_isc_null_mean": dict(zip(first.roi_names, np.nanmean(roi_null[b], axis=0).tolist()))}
            for b, (block, rows) in enumerate(blocks.items())
        },
        "published_isc": [  # per subject and ROI: the published value, it recomputed, and this group's ISC
            {"subject": subject, "roi": roi, **values,
             "this_group": float(roi_isc[0, s, first.roi_names.index(roi)]), "this_group_n": len(paths)}
            for s, (subject, by_roi) in enumerate(zip(subjects, published)) for roi, values in by_roi.items()],
    }
    log.info("group ISC over %d subjects, %d voxels: %s",
             len(paths), common.sum(), summary["blocks"]["all"]["roi_isc_mean"])
    return GroupIsc(
        subjects=tuple(subjects), blocks=tuple(blocks), n_trs=np.asarray([int(rows.sum()) for rows in blocks.values()]),
        voxel_ijk=first.voxel_ijk[common], affine=first.affine, grid_shape=first.grid_shape, roi_names=first.roi_names,
        voxel_isc=voxel_isc, roi_isc=roi_isc.astype(np.float32), roi_isc_null=roi_null.astype(np.float32),
        roi_isc_null_band=roi_null_band.astype(np.float32), roi_isc_null_group_band=group_null_band.astype(np.float32),
        roi_isc_ci=roi_ci.astype(np.float32), roi_isc_group_ci=group_ci.astype(np.float32),
        roi_timecourses=own_rois.astype(np.float32), summary=summary,
    ).save(out_path)
