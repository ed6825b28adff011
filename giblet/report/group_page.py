"""The group HTML page: every subject's numbers, the group's charts, tests, map and cross-validated encoding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from giblet.fmri.group_isc import GroupIsc
from giblet.fmri.prepared import PreparedFmri
from giblet.io import atomic_path
from giblet.outputs import GROUP_SUMMARY_OUTPUTS
from giblet.report import figures
from giblet.report.brain_maps import MAP_THRESHOLD, group_map_figures
from giblet.report.html import _png, _read_tsv, _table, get_template

__all__ = ["run_group_report"]


def _cross_validation_tables(path):
    """Tables of ``cross-validate``'s summary: encoding per ROI over subjects and per subject and ROI, identification
    over subjects and per subject (all None without a summary)."""
    if path is None:
        return {"cv_group_table": None, "cv_subject_table": None, "cv_identification_group": None,
                "cv_identification_subjects": None}
    summary = json.loads(Path(path).read_text())
    group = pd.DataFrame([{"roi": roi, **{k: v for k, v in row.items() if k != "autoencoder_r_by_seed"},
                           "autoencoder_r_by_seed": ", ".join(f"{v:.3f}" for v in row["autoencoder_r_by_seed"])}
                          for roi, row in summary["group"].items()])
    subjects = pd.DataFrame([{k: v for k, v in row.items() if k != "autoencoder_r_seeds"} for row in summary["subjects"]])
    identification = summary.get("identification", {"group": {}, "subjects": []})
    pooled = pd.DataFrame([{"decoder": name, **{k: v for k, v in row.items() if k != "n_subjects_p05_by_seed"},
                            "n_subjects_p05_by_seed": ", ".join(map(str, row["n_subjects_p05_by_seed"]))}
                           for name, row in identification["group"].items()])
    return {"cv_group_table": _table(group), "cv_subject_table": _table(subjects),
            "cv_identification_group": _table(pooled) if not pooled.empty else None,
            "cv_identification_subjects": _table(pd.DataFrame(identification["subjects"])) if not pooled.empty else None}


#: Per-subject numbers of the group page: encoding r per ROI and model, decoding scores from measured BOLD.
SUBJECT_NUMBERS = (r"^encoding/[^/]+/rois/[^/]+/(r|ceiling)$", r"^decoding/[^/]+/measured_bold/[^/]+/[^/]+/score$")


def _per_subject(group, subjects):
    """Headline numbers (rows) of every subject (columns) with their group mean."""
    rows = [{"number": key, "mean": row["mean"], **{s: row["values"].get(s) for s in subjects}}
            for key, row in group.get("numbers", {}).items()
            if any(re.match(pattern, key) for pattern in SUBJECT_NUMBERS)]
    return pd.DataFrame(rows)


def _group_encoding(group):
    """Long table ``roi, model, subject, r, ceiling`` of every subject's ROI encoding from the group numbers."""
    rows = []
    for key, row in group.get("numbers", {}).items():
        match = re.fullmatch(r"encoding/([^/]+)/rois/([^/]+)/r", key)
        if match is None:
            continue
        model, roi = match.groups()
        ceiling = group["numbers"].get(f"encoding/{model}/rois/{roi}/ceiling", {}).get("values", {})
        rows += [{"roi": roi, "model": model, "subject": subject, "r": r, "ceiling": ceiling.get(subject)}
                 for subject, r in row["values"].items() if r is not None]
    return pd.DataFrame(rows, columns=["roi", "model", "subject", "r", "ceiling"])


def run_group_report(*, dataset, subjects, group_summary_path, group_isc_path, out_html, cross_validation_path=None,
                     encoding_voxels=(), prepared_path=None):
    """Write the group page: links to every subject's page, every subject's headline numbers, the pooled lesion
    contrasts, the group numbers, when given the cross-validated encoding (``cross-validate``'s summary) and the
    map of voxel r averaged over subjects (their ``encoding_voxels.npz``, over the background of
    ``prepared_path``'s subject)."""
    group = json.loads(Path(group_summary_path).read_text())
    contrasts = _read_tsv(Path(group_summary_path).with_name(GROUP_SUMMARY_OUTPUTS["lesion_contrasts"]))
    numbers = pd.DataFrame([{"number": k, **{s: v for s, v in row.items() if s != "values"}}
                            for k, row in group.get("numbers", {}).items()])
    isc = GroupIsc.load(group_isc_path)
    block = isc.shown_block
    isc_figure = figures.isc_bars(list(isc.roi_names), isc.roi_isc[block].mean(axis=0),
                                  isc.roi_isc_null_group_band[block], title=f"group mean ISC ({isc.blocks[block]} block)",
                                  subjects=isc.roi_isc[block], ci=isc.roi_isc_group_ci[block])
    published = pd.DataFrame(isc.summary.get("published_isc", []))
    statuses = group.get("codec_status")
    encoding = _group_encoding(group)
    context = {"title": f"{dataset} group", "dataset": dataset, "subjects": subjects,
               "codec_status": ", ".join(statuses) if isinstance(statuses, list) else statuses,
               "isc_figures": [_png(isc_figure)], "group_table": _table(numbers),
               "encoding_figures": [_png(figures.group_encoding_bars(encoding))] if not encoding.empty else [],
               "published_table": None if published.empty else _table(published),
               "subject_table": _table(_per_subject(group, subjects)),
               "tests_table": _table(pd.DataFrame([{"number": k, **v} for k, v in group.get("group_tests", {}).items()])),
               "contrast_table": None if contrasts is None or contrasts.empty else _table(contrasts)}
    context.update(_cross_validation_tables(cross_validation_path))
    maps, background, n_mapped = group_map_figures(encoding_voxels, PreparedFmri.load(prepared_path)) \
        if prepared_path is not None and encoding_voxels else ([], None, 0)
    context.update(map_figures=[_png(f) for f in maps], map_background=background, map_threshold=MAP_THRESHOLD,
                   n_mapped=n_mapped)
    with atomic_path(out_html) as tmp:
        tmp.write_text(get_template("group.html").render(**context))
    return out_html
