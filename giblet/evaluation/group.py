"""Group summary: every number of the subjects' ``summary.json`` across subjects, and pooled lesion effects.

Lesion effects are pooled over subjects by concatenating their paired per-TR scores (each
subject's test TRs in time order, subjects one after another) and bootstrapping blocks of TRs:
a test block of a few dozen TRs gives one subject little power, the group much more.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from giblet.evaluation._tables import json_number, write_tsv
from giblet.evaluation.lesions import compare_lesions, lesion_summary
from giblet.evaluation.metrics import bootstrap_ci
from giblet.io import write_json
from giblet.outputs import GROUP_SUMMARY_OUTPUTS

__all__ = ["flatten_summary", "group_tests", "pooled_lesion_effects", "pooled_lesion_contrasts", "run_group_summary"]

log = logging.getLogger(__name__)

_NOT_SCORES = ("seed", "n_permutations", "n_bootstrap", "bootstrap_block_trs", "seconds")  # settings, not results


def flatten_summary(summary, prefix=""):
    """Numeric leaves of a nested summary as ``{"a/b/c": value}`` (lists become ``path/0``, ``path/1``...)."""
    items = summary.items() if isinstance(summary, dict) else enumerate(summary)
    out = {}
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (dict, list)):
            out.update(flatten_summary(value, f"{path}/"))
        elif isinstance(value, bool):
            out[path] = float(value)
        elif isinstance(value, (int, float)) and path not in _NOT_SCORES:
            out[path] = float(value)
    return out


def group_tests(table):
    """One-sided one-sample t-tests across subjects of every headline score against its reference.

    Decoding scores (``.../score``) are tested against their ``.../chance`` (or 0 without one), encoding r
    (``encoding/.../r``) against 0: the group-level answer that averaging the subjects' p-values does not give.

    Parameters
    ----------
    table : pandas.DataFrame
        Numbers (rows, ``flatten_summary`` paths) by subjects (columns).

    Returns
    -------
    pandas.DataFrame
        Columns ``number, reference, n_subjects, mean_minus_reference, t, p``.
    """
    rows = []
    for path, values in table.iterrows():
        if path.startswith("encoding/") and path.endswith("/r"):
            reference = pd.Series(0.0, index=values.index)
        elif path.startswith("decoding/") and path.endswith("/score"):
            chance = path[: -len("score")] + "chance"
            reference = table.loc[chance] if chance in table.index else pd.Series(0.0, index=values.index)
        else:
            continue
        difference = (values - reference).dropna()
        if len(difference) < 2:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            test = stats.ttest_1samp(difference, 0.0, alternative="greater")
        rows.append({"number": path, "reference": float(reference.mean()), "n_subjects": len(difference),
                     "mean_minus_reference": float(difference.mean()), "t": float(test.statistic),
                     "p": float(test.pvalue)})
    return pd.DataFrame(rows, columns=["number", "reference", "n_subjects", "mean_minus_reference", "t", "p"])


def _read_per_tr(paths, metric):
    frames = []
    for path in paths:
        frame = pd.read_csv(path, sep="\t")
        if "subject" not in frame:
            frame.insert(0, "subject", Path(path).parent.name)
        frames.append(frame[frame["metric"] == metric])
    return pd.concat(frames, ignore_index=True).sort_values(["subject", "tr"], kind="stable")


def pooled_lesion_effects(per_tr, *, n_bootstrap=1000, seed=0, block_trs=5):
    """Change of a metric under every lesion, pooled over subjects' TRs, with a block-bootstrap CI.

    Parameters
    ----------
    per_tr : pandas.DataFrame
        Subjects' ``lesions_per_tr.tsv.gz`` rows with a ``subject`` column, in (subject, TR) order.

    Returns
    -------
    pandas.DataFrame
        One row per ``model, input, modality, metric, roi, part``: ``intact``, ``lesioned``,
        ``change`` (lesioned - intact), ``ci_low``, ``ci_high``, ``significant``, ``n_subjects``, ``n_trs``.
    """
    rows = []
    for keys, group in per_tr.groupby(["model", "input", "modality", "metric", "roi", "part"], sort=False):
        change, low, high = bootstrap_ci((group["lesioned"] - group["intact"]).to_numpy(), n_bootstrap=n_bootstrap,
                                         seed=seed, block_trs=min(block_trs, len(group)))
        rows.append({**dict(zip(["model", "input", "modality", "metric", "roi", "part"], keys)),
                     "intact": group["intact"].mean(), "lesioned": group["lesioned"].mean(), "change": change,
                     "ci_low": low, "ci_high": high, "significant": bool(low > 0 or high < 0),
                     "n_subjects": group["subject"].nunique(), "n_trs": len(group)})
    return pd.DataFrame(rows)


def pooled_lesion_contrasts(per_tr, *, n_bootstrap=1000, seed=0, block_trs=5):
    """Extra cost of silencing each named ROI rather than each other one, pooled over subjects.

    Returns
    -------
    pandas.DataFrame
        :func:`giblet.evaluation.compare_lesions` rows with ``roi`` (the first lesion) and ``other``
        columns: ``extra_cost > 0`` when silencing ``roi`` costs more than silencing ``other``.
    """
    rois = per_tr.loc[per_tr["part"] == "roi", "roi"].unique()
    frames = [compare_lesions(per_tr, {"roi": a, "part": "roi"}, {"roi": b, "part": "roi"}, n_bootstrap=n_bootstrap,
                              seed=seed, block_trs=block_trs).assign(roi=a, other=b)
              for a in rois for b in rois if a != b]
    if not frames:  # one named ROI (e.g. Sherlock's PMC): nothing to compare it with
        return pd.DataFrame(columns=["model", "input", "modality", "metric", "extra_cost", "ci_low", "ci_high",
                                     "significant", "n_trs", "roi", "other"])
    return pd.concat(frames, ignore_index=True)


def run_group_summary(summary_paths, out_dir, lesion_paths=(), *, metric="rank_accuracy", n_bootstrap=1000, seed=0,
                      block_trs=5):
    """Mean, spread and per-subject values of every number in the subjects' evaluation summaries.

    Parameters
    ----------
    summary_paths : sequence of path
        ``summary.json`` of :func:`giblet.evaluation.run_evaluate`, one per subject.
    out_dir : path
        Output folder; the files are named in :data:`~giblet.outputs.GROUP_SUMMARY_OUTPUTS`
        (``numbers``: one row per number).
    lesion_paths : sequence of path, optional
        The subjects' ``lesions_per_tr.tsv.gz`` (subject = the folder name unless a ``subject``
        column says otherwise). With them, ``lesions`` (:func:`pooled_lesion_effects`) and
        ``lesion_contrasts`` (:func:`pooled_lesion_contrasts`) are written for ``metric``.
    metric : str, default="rank_accuracy"
        The decoding metric the pooled lesion tables use (TR identification).
    n_bootstrap, seed, block_trs
        Block bootstrap of the pooled TRs.

    Returns
    -------
    Path
        The ``summary`` JSON, holding ``subjects``, ``codec_status`` (every status met), ``numbers``:
        ``{path: {"n", "mean", "sd", "min", "max", "values": {subject: value}}}`` (booleans such as
        ``significant`` become the fraction of subjects where they hold), ``group_tests`` (:func:`group_tests`,
        also ``tests``) and, with lesion paths,
        ``pooled_lesions``: ``{"model/input": {modality: {roi[ (complement)]: {change, ci, significant}}}}``.
    """
    summaries = [json.loads(Path(p).read_text()) for p in summary_paths]
    if not summaries:
        raise ValueError("run_group_summary needs at least one summary.json; run evaluate for every subject first")
    subjects = [s["subject"] for s in summaries]
    if len(set(subjects)) != len(subjects):
        raise ValueError(f"summaries repeat subjects {subjects}; pass one summary.json per subject")
    table = pd.DataFrame({s["subject"]: flatten_summary(s) for s in summaries})  # (numbers, subjects)
    stats = pd.DataFrame({"n": table.notna().sum(axis=1), "mean": table.mean(axis=1), "sd": table.std(axis=1),
                          "min": table.min(axis=1), "max": table.max(axis=1)})
    frame = pd.concat([stats, table], axis=1).rename_axis("number").reset_index()
    out = {name: Path(out_dir) / file for name, file in GROUP_SUMMARY_OUTPUTS.items()}
    write_tsv(frame, out["numbers"])
    numbers = {row["number"]: {"n": int(row["n"]), **{k: json_number(row[k]) for k in ("mean", "sd", "min", "max")},
                               "values": {s: json_number(row[s]) for s in subjects}}
               for row in frame.to_dict("records")}
    statuses = sorted({str(s.get("codec_status")) for s in summaries if s.get("codec_status") is not None})
    tests = group_tests(table)
    write_tsv(tests, out["tests"])
    group = {"subjects": subjects, "codec_status": statuses, "numbers": numbers,
             "group_tests": {row["number"]: {k: json_number(v) for k, v in row.items() if k != "number"}
                             for row in tests.to_dict("records")}}
    if lesion_paths:
        per_tr = _read_per_tr(lesion_paths, metric)
        options = {"n_bootstrap": n_bootstrap, "seed": seed, "block_trs": block_trs}
        effects = pooled_lesion_effects(per_tr, **options)
        write_tsv(effects, out["lesions"])
        write_tsv(pooled_lesion_contrasts(per_tr, **options), out["lesion_contrasts"])
        group["pooled_lesions"] = lesion_summary(effects)
    log.info("group summary of %d subjects: %d numbers", len(subjects), len(numbers))
    return write_json(out["summary"], group)
