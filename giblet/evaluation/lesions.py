"""Lesions: how much each decoding score changes when a region (or everything but it) is silenced.

Scores are compared TR by TR (lesioned minus intact, on the same scored TRs), so the
confidence interval of the change comes from a moving-block bootstrap over TRs of paired
differences. Silencing goes through :func:`giblet.models.lesion`: voxels are replaced by their
training mean (``"mean"``), zero, or noise with their training mean and standard deviation.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from giblet.evaluation._tables import json_number
from giblet.evaluation.decoding import score_views
from giblet.evaluation.encoding import predict_bold
from giblet.evaluation.metrics import bootstrap_ci, fdr_bh
from giblet.evaluation.predict import decode_all
from giblet.models import lesion
from giblet.splits import BLOCKS

__all__ = ["LESION_INPUTS", "LESION_PARTS", "lesion_masks", "silence", "lesion_effects", "correct_lesion_tests",
           "compare_lesions", "lesion_statistics", "lesioned_inputs", "score_lesions", "lesion_summary"]

#: Signals a lesion can silence: the subject's measured BOLD, or the encoder's predicted BOLD (middle layer).
LESION_INPUTS = ("measured_bold", "predicted_bold")

#: Part of the brain silenced for a named ROI: the ROI itself or everything else.
LESION_PARTS = {"roi": lambda members: members, "complement": lambda members: ~members}


def lesion_masks(roi_names, roi_membership):
    """Bool voxel masks of every named ROI and its complement.

    Parameters
    ----------
    roi_names : sequence of str, length n_rois
    roi_membership : ndarray, shape (n_voxels, n_rois), bool

    Returns
    -------
    dict of (str, str) to ndarray, shape (n_voxels,), bool
        ``(roi, part) -> mask`` with ``part`` in :data:`LESION_PARTS`; masks without a voxel are left
        out (the complement of a ROI that covers every voxel silences nothing).
    """
    membership = np.asarray(roi_membership, dtype=bool)
    masks = {(roi, part): make(membership[:, r])
             for r, roi in enumerate(roi_names) for part, make in LESION_PARTS.items()}
    return {key: mask for key, mask in masks.items() if mask.any()}


def silence(voxels, mask, mode, mean, std, seed=0):
    """Silence ``mask``'s voxels of a (n_trs, n_voxels) array (measured BOLD) with :func:`giblet.models.lesion`.

    Parameters
    ----------
    voxels : ndarray, shape (n_trs, n_voxels), float32
    mask : ndarray, shape (n_voxels,), bool
    mode : {"zero", "mean", "noise"}
    mean, std : ndarray, shape (n_voxels,)
        Training statistics of ``voxels``.
    seed : int, default=0
        Seeds the ``"noise"`` draws.

    Returns
    -------
    ndarray, shape (n_trs, n_voxels), float32
    """
    generator = torch.Generator().manual_seed(seed)
    out = lesion(torch.from_numpy(np.ascontiguousarray(voxels, dtype=np.float32)), torch.from_numpy(mask), mode,
                 mean=mean, std=std, generator=generator)
    return out.numpy()


def lesion_effects(intact, lesioned, *, n_bootstrap=1000, seed=0, block_trs=1, level=0.95):
    """Change of every metric under a lesion, with its bootstrap confidence interval over TRs.

    Parameters
    ----------
    intact, lesioned : dict of str to (str, ndarray)
        :func:`giblet.evaluation.decoding.score_views` outputs on the same TRs.
    n_bootstrap : int, default=1000
    seed : int, default=0
    block_trs : int, default=1
        Moving-block length of the bootstrap, in TRs.
    level : float, default=0.95

    Returns
    -------
    list of dict
        Keys ``metric, features, intact, lesioned, change, ci_low, ci_high, p, significant``;
        ``change = lesioned - intact`` (negative: the lesion costs), ``p`` its bootstrap p,
        ``significant`` when the interval excludes 0 (uncorrected: :func:`correct_lesion_tests`
        corrects a table of many).
    """
    metrics = list(intact)
    diff = np.stack([lesioned[m][1] - intact[m][1] for m in metrics], axis=1)
    change, low, high, p = bootstrap_ci(diff, n_bootstrap=n_bootstrap, seed=seed,
                                        block_trs=min(block_trs, len(diff)), level=level, with_p=True)
    return [{"metric": m, "features": intact[m][0], "intact": np.nanmean(intact[m][1]),
             "lesioned": np.nanmean(lesioned[m][1]), "change": change[i], "ci_low": low[i], "ci_high": high[i],
             "p": p[i], "significant": bool(low[i] > 0 or high[i] < 0)}
            for i, m in enumerate(metrics)]


def correct_lesion_tests(table, alpha=0.05):
    """``table`` (:func:`lesion_effects` rows of every lesion) with ``q`` (Benjamini-Hochberg over all its tests)
    and ``significant`` = q < ``alpha``: one subject's lesions are hundreds of tests (ROIs x parts x models x
    inputs x metrics), and an uncorrected interval flagged changes of -0.001."""
    out = table.copy()
    out["q"] = fdr_bh(out["p"].to_numpy(dtype=float)) if len(out) else []
    out["significant"] = out["q"] < alpha
    return out


def compare_lesions(per_tr, first, second, *, n_bootstrap=1000, seed=0, block_trs=1, level=0.95):
    """How much more lesion ``first`` costs than lesion ``second``, per metric, with a paired bootstrap CI.

    Parameters
    ----------
    per_tr : pandas.DataFrame
        The stage's ``lesions_per_tr.tsv.gz`` (columns ``model, input, roi, part, n_voxels, modality,
        metric, tr, intact, lesioned``), or several subjects' concatenated with a ``subject`` column
        (then pooled over subjects).
    first, second : dict
        Column filters selecting one lesion each, e.g. ``{"roi": "auditory", "part": "roi"}``.
    n_bootstrap, seed, block_trs, level
        See :func:`giblet.evaluation.metrics.bootstrap_ci`.

    Returns
    -------
    pandas.DataFrame
        One row per ``(model, input, modality, metric)``: ``extra_cost`` (mean over paired TRs of
        ``lesioned[second] - lesioned[first]``; > 0 when ``first`` costs more), ``ci_low``,
        ``ci_high``, ``significant`` and ``n_trs``.
    """
    groups = ["model", "input", "modality", "metric"]
    pairs = [c for c in per_tr.columns if c not in {"roi", "part", "n_voxels", "intact", "lesioned", *groups}]

    def pick(selection):
        rows = per_tr.loc[(per_tr[list(selection)] == pd.Series(selection)).all(axis=1)]
        return rows.set_index(groups + pairs)["lesioned"]

    both = pd.concat({"first": pick(first), "second": pick(second)}, axis=1).dropna()
    out = []
    for group, rows in both.groupby(level=groups, sort=False):
        extra = (rows["second"] - rows["first"]).sort_index().to_numpy()
        mean, low, high = bootstrap_ci(extra, n_bootstrap=n_bootstrap, seed=seed, block_trs=min(block_trs, len(extra)),
                                       level=level)
        out.append({**dict(zip(groups, group)), "extra_cost": mean, "ci_low": low, "ci_high": high,
                    "significant": bool(low > 0 or high < 0), "n_trs": len(extra)})
    return pd.DataFrame(out)


def _statistics(values, rows):
    mean, std = values[rows].mean(axis=0), values[rows].std(axis=0)
    return mean.astype(np.float32), std.astype(np.float32)


def lesion_statistics(model, data, subject, device):
    """Training mean and std of the measured BOLD and of the encoder's predicted voxels (the lesion fillers)."""
    train = np.flatnonzero((data.labels == BLOCKS.index("train")) & data.bold_valid[subject])
    return {"measured_bold": _statistics(data.bold[subject], train),
            "predicted_bold": _statistics(predict_bold(model, data, subject, "train", device), train)}


def lesioned_inputs(data, subject, mask, mode, stats, seed, device):
    """The silenced measured BOLD (n_trs, n_voxels) and the middle-layer lesion for one voxel mask."""
    silenced = silence(data.bold[subject], mask, mode, *stats["measured_bold"], seed)
    mean, std = (torch.from_numpy(x).to(device) for x in stats["predicted_bold"])
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
    on_layer = functools.partial(lesion, roi=torch.from_numpy(mask).to(device), mode=mode, mean=mean, std=std,
                                 generator=generator)
    return silenced, on_layer


def score_lesions(model, data, subject, targets, baselines, intact, config, device):
    """Tidy lesion effects (BH-corrected) and the per-TR scores behind them, for every ROI and its complement.

    ``intact`` holds the intact decoders' scores (:func:`~giblet.evaluation.decoding.score_views` by
    ``(model, input)`` and modality); ``config`` is the :class:`~giblet.evaluation.evaluate.EvaluateConfig`
    (lesion mode, seed, bootstrap).
    """
    prepared, seed = data.prepared[subject], config.seed
    options = {"n_bootstrap": config.n_bootstrap, "seed": seed, "block_trs": config.bootstrap_block_trs}
    stats = lesion_statistics(model, data, subject, device)
    effects, per_tr = [], []
    masks = lesion_masks(prepared.roi_names, prepared.roi_membership)
    for (roi, part), mask in tqdm(masks.items(), desc="lesions", unit="lesion"):
        silenced, on_layer = lesioned_inputs(data, subject, mask, config.lesion_mode, stats, seed, device)
        lesioned = decode_all(model, data, subject, targets, baselines, device, silenced, on_layer)
        for (name, source), by_modality in lesioned.items():
            for modality, views in by_modality.items():
                before, after = intact[name, source][modality], score_views(views, targets)
                keys = {"model": name, "input": source, "roi": roi, "part": part, "n_voxels": int(mask.sum()),
                        "modality": modality}
                effects += [{**keys, **row} for row in lesion_effects(before, after, **options)]
                per_tr += [pd.DataFrame({**keys, "metric": metric, "tr": targets.rows, "intact": before[metric][1],
                                         "lesioned": after[metric][1]}) for metric in before]
    return correct_lesion_tests(pd.DataFrame(effects)), pd.concat(per_tr, ignore_index=True)


def lesion_summary(table):
    """``{"model/input": {modality: {roi[ (complement)]: {change, ci, significant}}}}`` of a lesion table (one metric)."""
    out = {}
    for row in table.to_dict("records"):
        name = row["roi"] if row["part"] == "roi" else f"{row['roi']} (complement)"
        out.setdefault(f"{row['model']}/{row['input']}", {}).setdefault(row["modality"], {})[name] = {
            "change": json_number(row["change"]), "ci": [json_number(row["ci_low"]), json_number(row["ci_high"])],
            "significant": bool(row["significant"])}
    return out
