"""Cross-validated encoding: the autoencoder and the ridge encoder retrained on every fold of the scan.

One held-out block is a few minutes of one film: on Sherlock the per-subject ceiling of a 190-TR
test block ranges 0.04-0.64 and a model's r moves with the block. Voxelwise-modelling practice
scores encoding models on several contiguous held-out blocks instead. Here the scan is cut into
``split.folds`` chunks, ``gap_s`` apart (:func:`giblet.splits.fold_splits`); fold ``f`` tests on
chunk ``f``, stops training early on chunk ``f - 1`` and trains on the rest. Per fold, both models
are fitted from scratch on that fold's training TRs (BOLD z-scored again on them, the
autoencoder's routes and trunk, the ridge encoder with its own penalty search), and each is
scored on exactly the same test TRs as the leave-one-subject-out ceiling: r per voxel, averaged
over a ROI's voxels. Scores are then averaged over folds (every TR of the chunks is tested once).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from giblet.evaluation.encoding import ceiling_floor, predict_bold
from giblet.evaluation.metrics import pearson_columns
from giblet.evaluation.outputs import CV_OUTPUTS
from giblet.fmri.prepared import PreparedFmri
from giblet.io import atomic_path, write_json
from giblet.splits import BLOCKS, fold_splits
from giblet.training.baselines import EncodingDesign
from giblet.training.routes import fit_routes
from giblet.training.trainer import build_model, train

__all__ = ["loo_ceiling", "fold_scores", "summarise_folds", "run_cross_validate"]

log = logging.getLogger(__name__)

def loo_ceiling(data, subject, rows):
    """Leave-one-subject-out ceiling of every voxel of ``subject`` on ``rows``: r with the other subjects' mean.

    Voxels are matched by their grid position; the mean at a TR is over the other subjects with valid BOLD
    there and that voxel (:meth:`~giblet.training.data.MovieData.others_mean`). Returns (n_voxels,) float64,
    NaN where no other subject has the voxel.
    """
    others = data.others_mean(subject, rows).astype(np.float64)
    out = np.full(others.shape[1], np.nan)
    has = np.isfinite(others).all(axis=0)
    out[has] = pearson_columns(others[:, has], data.bold[subject][rows][:, has])
    return out


def fold_scores(data, subject, predictions, fold):
    """One fold's table for ``subject``: per ROI, mean voxel r of every model and of the ceiling on the same TRs.

    ``predictions`` maps a model name to its predicted BOLD (n_trs, n_voxels) on the model clock (NaN where it
    predicts nothing); a TR is scored where the subject's BOLD is valid in the test block and every model
    predicts it.
    """
    rows = data.bold_valid[subject] & (data.labels == BLOCKS.index("test"))
    for predicted in predictions.values():
        rows &= np.isfinite(predicted).all(axis=1)
    measured = data.bold[subject][rows]
    voxel_r = {name: pearson_columns(predicted[rows], measured) for name, predicted in predictions.items()}
    ceiling = loo_ceiling(data, subject, rows)
    membership = data.prepared[subject].roi_membership
    table = []
    for index, roi in enumerate(data.prepared[subject].roi_names):
        voxels = membership[:, index]
        table.append({"subject": subject, "fold": fold, "roi": roi, "n_trs": int(rows.sum()),
                      **{f"{name}_r": float(np.nanmean(r[voxels])) for name, r in voxel_r.items()},
                      "ceiling": float(np.nanmean(ceiling[voxels]))})
    return table


def summarise_folds(table):
    """Fold scores averaged per subject and ROI (and over the autoencoder's seeds), then over subjects.

    Returns a dict: ``subjects`` (a row per subject and ROI: ``autoencoder_r`` (mean over seeds),
    ``autoencoder_r_seeds`` (one per seed), ``ridge_r``, ``ceiling``, ``r_over_ceiling`` for both (None where
    the ceiling is under :func:`~giblet.evaluation.encoding.ceiling_floor` of the TRs scored), ``n_trs``) and
    ``group`` (per ROI: the means over subjects, the autoencoder / ridge ratio of the means, the seed spread
    (max - min over seeds of the subjects' mean r) and how many subjects' r exceeds their ceiling).
    """
    seeds = sorted(table["seed"].unique())
    wide = table.pivot_table(index=["subject", "fold", "roi"], columns="seed", values="autoencoder_r")
    per_fold = table[table["seed"] == seeds[0]].set_index(["subject", "fold", "roi"])[["ridge_r", "ceiling", "n_trs"]]
    per_fold = per_fold.join(wide.rename(columns=lambda s: f"seed_{s}"))
    means = per_fold.groupby(level=["subject", "roi"]).agg(
        {**{c: "mean" for c in per_fold.columns if c != "n_trs"}, "n_trs": "sum"})
    seed_columns = [f"seed_{s}" for s in seeds]
    subjects, group = [], {}
    for (subject, roi), row in means.iterrows():
        autoencoder = float(row[seed_columns].mean())
        usable = row["ceiling"] > ceiling_floor(row["n_trs"] / len(table["fold"].unique()))
        subjects.append({"subject": subject, "roi": roi, "autoencoder_r": autoencoder,
                         "autoencoder_r_seeds": [float(row[c]) for c in seed_columns],
                         "ridge_r": float(row["ridge_r"]), "ceiling": float(row["ceiling"]),
                         "autoencoder_r_over_ceiling": autoencoder / row["ceiling"] if usable else None,
                         "ridge_r_over_ceiling": float(row["ridge_r"] / row["ceiling"]) if usable else None,
                         "n_trs": int(row["n_trs"])})
    frame = pd.DataFrame(subjects)
    for roi, rows in frame.groupby("roi", sort=False):
        by_seed = np.array(rows["autoencoder_r_seeds"].tolist()).mean(axis=0)
        autoencoder, ridge, ceiling = rows["autoencoder_r"].mean(), rows["ridge_r"].mean(), rows["ceiling"].mean()
        group[roi] = {"autoencoder_r": float(autoencoder), "ridge_r": float(ridge), "ceiling": float(ceiling),
                      "autoencoder_over_ridge": float(autoencoder / ridge) if ridge > 0 else None,
                      "autoencoder_r_over_ceiling": float(autoencoder / ceiling) if ceiling > 0 else None,
                      "ridge_r_over_ceiling": float(ridge / ceiling) if ceiling > 0 else None,
                      "autoencoder_r_by_seed": [float(v) for v in by_seed],
                      "seed_spread": float(by_seed.max() - by_seed.min()),
                      "n_subjects_above_ceiling": int((rows["autoencoder_r"] > rows["ceiling"]).sum()),
                      "n_subjects": int(len(rows))}
    return {"seeds": [int(s) for s in seeds], "subjects": subjects, "group": group}


def _fold_table(fold, split, seeds, inputs, setup):
    data, code_model = setup.load_data(inputs, split=split)
    design = EncodingDesign.load(inputs.aligned_paths, data.runs, setup.preshift_trs)
    ridge = {s: design.predict(design.fit(data, s)) for s in data.subjects}
    routed = build_model(data, setup.model_options, setup.modalities, code_model)
    fit_routes(routed, data)  # closed form: fitted once per fold, the same for every seed
    table = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model(data, setup.model_options, setup.modalities, code_model)
        model.load_state_dict(dict(routed.named_buffers()), strict=False)  # the routes are buffers
        with tempfile.TemporaryDirectory() as scratch:  # no checkpoint outlives its fold
            history = train(model, data, setup.train, scratch, seed=seed, device=setup.device)
        log.info("fold %d, seed %d: %d epochs", fold + 1, seed, len(history))
        for subject in data.subjects:
            predictions = {"autoencoder": predict_bold(model, data, subject, "test", setup.device),
                           "ridge": ridge[subject]}
            table += [{**row, "seed": seed} for row in fold_scores(data, subject, predictions, fold)]
    for (roi, seed), rows in pd.DataFrame(table).groupby(["roi", "seed"], sort=False):
        log.info("fold %d, seed %d, %s: mean voxel r over subjects, autoencoder %.4f, ridge %.4f, ceiling %.4f",
                 fold + 1, seed, roi, rows["autoencoder_r"].mean(), rows["ridge_r"].mean(), rows["ceiling"].mean())
    return table


def run_cross_validate(inputs, out_dir, setup, split, seeds):
    """Retrain and score both encoders on every fold (see the module docstring); write ``CV_OUTPUTS``.

    ``inputs`` and ``setup`` as ``train``'s (:class:`~giblet.training.stage.TrainingInputs`,
    :class:`~giblet.training.stage.TrainingSetup`; with audio, the code model is the audio head, which
    encoding does not read); ``split`` is the config's :class:`~giblet.splits.SplitConfig` (``folds`` >= 3;
    the prepared files must have been cleaned with the same folds); ``seeds`` the autoencoder's seeds (its
    spread is reported).
    """
    out_dir = Path(out_dir)
    first = PreparedFmri.load(inputs.prepared_paths[0])
    if first.qc.get("split_folds") != split.folds:
        raise ValueError(f"{inputs.prepared_paths[0]} was prepared with split.folds {first.qc.get('split_folds', 1)}, "
                         f"the config says {split.folds}: rerun prepare-fmri so that every fold's chunks are cleaned "
                         "on their own")
    splits = fold_splits(len(first.runs), first.tr_s, split)
    del first
    table = []
    for fold, fold_split in enumerate(splits):
        log.info("fold %d of %d: test TRs %s", fold + 1, len(splits), fold_split.ranges()["test"])
        table += _fold_table(fold, fold_split, seeds, inputs, setup)
    table = pd.DataFrame(table)
    summary = summarise_folds(table)
    for roi, numbers in summary["group"].items():
        log.info("%s: cross-validated mean voxel r, autoencoder %.4f, ridge %.4f, ceiling %.4f", roi,
                 numbers["autoencoder_r"], numbers["ridge_r"], numbers["ceiling"])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / CV_OUTPUTS["scores"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_json(out_dir / CV_OUTPUTS["summary"], {"folds": split.folds, "gap_s": split.gap_s, **summary})
    return out_dir
