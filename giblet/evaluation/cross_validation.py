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

Decoding is cross-validated the same way: on every fold, the autoencoder (each seed) and a ridge decoder
fitted on the fold's training TRs decode the test chunk's stimulus from measured BOLD, scored by TR
identification within the chunk (rank accuracy, chance 0.5). The per-TR scores are pooled over folds
(about 1,900 TRs per subject on Sherlock instead of one ~190-TR block) and tested against a null that
circularly shifts every fold's decoded sequence independently (:func:`~giblet.evaluation.nulls.pooled_shift_test`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from giblet.evaluation.decoding import autoencoder_views, ridge_views, shifted_identification
from giblet.evaluation.encoding import ceiling_floor, predict_bold
from giblet.evaluation.metrics import pearson_columns
from giblet.evaluation.nulls import pooled_shift_test
from giblet.evaluation.predict import scored_design
from giblet.evaluation.targets import decoding_targets
from giblet.fmri.prepared import PreparedFmri
from giblet.io import atomic_path, write_json
from giblet.outputs import CV_OUTPUTS
from giblet.splits import BLOCKS, fold_splits
from giblet.training.baselines import EncodingDesign, decoder_targets, fit_decoders
from giblet.training.routes import fit_routes
from giblet.training.trainer import build_model, train

__all__ = ["loo_ceiling", "fold_scores", "summarise_folds", "identification_rows", "summarise_identification",
           "run_cross_validate"]

#: Null draws of the pooled identification test (each draws one circular shift per fold).
N_NULL_DRAWS = 10000

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


def identification_rows(views_by_model, targets, **keys):
    """One fold's TR identification of every decoder and identified view, with its every-shift null.

    ``views_by_model`` maps a model name to its decoded views by modality (:func:`autoencoder_views`,
    :func:`ridge_views`); ``keys`` (subject, fold, seed) are copied into every row. Rows hold ``rank_accuracy``
    (the fold's mean), ``n_trs`` and ``null`` (ndarray: the mean under each circular shift 1 ... n_trs - 1).
    """
    rows = []
    for model, by_modality in views_by_model.items():
        for modality, views in by_modality.items():
            for view, shifted in shifted_identification(views, targets).items():
                rows.append({**keys, "model": model, "modality": modality, "view": view, "n_trs": targets.n_trs,
                             "rank_accuracy": float(shifted[0]), "null": shifted[1:]})
    return rows


def summarise_identification(rows, seed=0):
    """Identification pooled over folds per subject, model, seed and view, tested by :func:`pooled_shift_test`.

    Returns a dict: ``subjects`` (``subject, model, seed, modality, view, rank_accuracy`` (the mean over every
    scored TR of the folds), ``chance`` (0.5), ``null_mean``, ``p``, ``n_trs``, ``n_folds``) and ``group`` (per
    ``model/modality/view``: the mean over subjects and seeds, and per seed how many subjects reach p < 0.05).
    """
    table = pd.DataFrame(rows)
    subjects = []
    keys = ["subject", "model", "seed", "modality", "view"]
    for key, folds in table.groupby(keys, sort=False, dropna=False):
        test = pooled_shift_test(folds["rank_accuracy"].to_numpy(), list(folds["null"]), folds["n_trs"].to_numpy(),
                                 n_draws=N_NULL_DRAWS, seed=seed)
        subjects.append({**dict(zip(keys, key)), "rank_accuracy": float(test.observed), "chance": 0.5,
                         "null_mean": float(test.null_mean), "p": float(test.p), "n_trs": int(folds["n_trs"].sum()),
                         "n_folds": len(folds)})
    frame = pd.DataFrame(subjects)
    group = {}
    for (model, modality, view), pooled in frame.groupby(["model", "modality", "view"], sort=False):
        by_seed = pooled.groupby("seed", dropna=False)["p"]
        group[f"{model}/{modality}/{view}"] = {
            "rank_accuracy": float(pooled["rank_accuracy"].mean()), "chance": 0.5,
            "null_mean": float(pooled["null_mean"].mean()),
            "n_subjects_p05_by_seed": [int((p < 0.05).sum()) for _, p in by_seed],
            "n_subjects": int(pooled["subject"].nunique())}
    for row in subjects:
        row["seed"] = None if pd.isna(row["seed"]) else int(row["seed"])
    return {"subjects": subjects, "group": group}


def _ridge_decoding(data, inputs, delays, audio_head):
    """Per subject: the test chunk's decoding targets and the ridge decoders' views (fitted on the fold's training
    TRs; the same for every seed)."""
    tables = decoder_targets(data, inputs.features_dir)
    out = {}
    for subject in data.subjects:
        bold = data.bold[subject]
        design, first, rows = scored_design(data, subject, bold, delays)
        targets = decoding_targets(data, inputs.features_dir, rows, audio_head)
        decoders = {m: d.materialise(bold) for m, d in fit_decoders(data, subject, tables, delays).items()}
        out[subject] = targets, ridge_views(decoders, design[rows - first], targets)
    return out


def _fold_table(fold, split, seeds, inputs, setup):
    data, code_model = setup.load_data(inputs, split=split)
    design = EncodingDesign.load(inputs.aligned_paths, data.runs, setup.preshift_trs)
    ridge = {s: design.predict(design.fit(data, s)) for s in data.subjects}
    routed = build_model(data, setup.model_options, setup.modalities, code_model)
    fit_routes(routed, data)  # closed form: fitted once per fold, the same for every seed
    decoding = _ridge_decoding(data, inputs, routed.config.decoder_delays_trs,
                               routed.audio_head if "audio" in setup.modalities else None)
    table, identification = [], []
    for subject, (targets, views) in decoding.items():
        identification += identification_rows({"ridge": views}, targets, subject=subject, fold=fold, seed=None)
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
            targets = decoding[subject][0]
            views = autoencoder_views(model, data, subject, targets, device=setup.device)
            identification += identification_rows({"autoencoder": views}, targets, subject=subject, fold=fold,
                                                  seed=seed)
    for (roi, seed), rows in pd.DataFrame(table).groupby(["roi", "seed"], sort=False):
        log.info("fold %d, seed %d, %s: mean voxel r over subjects, autoencoder %.4f, ridge %.4f, ceiling %.4f",
                 fold + 1, seed, roi, rows["autoencoder_r"].mean(), rows["ridge_r"].mean(), rows["ceiling"].mean())
    for (model, view, seed), rows in pd.DataFrame(identification).groupby(["model", "view", "seed"], dropna=False):
        log.info("fold %d, %s%s, %s: mean rank accuracy over subjects %.4f (chance 0.5, shifted %.4f)", fold + 1,
                 model, "" if pd.isna(seed) else f" (seed {seed:.0f})", view, rows["rank_accuracy"].mean(),
                 np.mean([n.mean() for n in rows["null"]]))
    return table, identification


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
    table, identification = [], []
    for fold, fold_split in enumerate(splits):
        log.info("fold %d of %d: test TRs %s", fold + 1, len(splits), fold_split.ranges()["test"])
        encoding, decoding = _fold_table(fold, fold_split, seeds, inputs, setup)
        table, identification = table + encoding, identification + decoding
    table = pd.DataFrame(table)
    summary = summarise_folds(table)
    for roi, numbers in summary["group"].items():
        log.info("%s: cross-validated mean voxel r, autoencoder %.4f, ridge %.4f, ceiling %.4f", roi,
                 numbers["autoencoder_r"], numbers["ridge_r"], numbers["ceiling"])
    pooled = summarise_identification(identification, seed=int(seeds[0]))
    for name, numbers in pooled["group"].items():
        log.info("%s: identification pooled over folds, rank accuracy %.4f, p < 0.05 in %s of %d subjects", name,
                 numbers["rank_accuracy"], numbers["n_subjects_p05_by_seed"], numbers["n_subjects"])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / CV_OUTPUTS["scores"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    folds = pd.DataFrame(identification)
    folds = folds.assign(null_mean=[n.mean() for n in folds.pop("null")])
    with atomic_path(out_dir / CV_OUTPUTS["identification"]) as tmp:
        folds.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_json(out_dir / CV_OUTPUTS["summary"], {"folds": split.folds, "gap_s": split.gap_s, **summary,
                                                  "identification": pooled})
    return out_dir
