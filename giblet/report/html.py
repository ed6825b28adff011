"""The per-subject HTML report: a self-contained page (plots embedded, audio beside them)."""

from __future__ import annotations

import base64
import io
import json
import logging
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from giblet.fmri.group_isc import GroupIsc
from giblet.fmri.prepared import PreparedFmri
from giblet.io import atomic_path
from giblet.outputs import DECODE_AUDIO_OUTPUTS, EVALUATE_OUTPUTS, EXAMPLE_THUMBS, HEADLINE_METRIC
from giblet.report import figures
from giblet.report.audio import audio_players, waveform_table
from giblet.report.brain_maps import MAP_THRESHOLD, map_figures
from giblet.splits import GAP

__all__ = ["ReportConfig", "ReportInputs", "run_report", "get_template"]

log = logging.getLogger(__name__)
_PACKAGES = ("giblet", "torch", "transformers", "nilearn", "nibabel", "numpy", "scipy", "scikit-learn", "himalaya",
             "av", "snakemake")
def get_template(name):
    """A Jinja template from ``giblet/report/templates`` (autoescaped)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("giblet.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    return env.get_template(name)


#: Colours of a page's PNGs (a palette image is 3-5x smaller than RGB, and charts and maps have few colours).
PNG_COLOURS = 64


def _png(fig):
    """The figure as a base64 palette PNG (``PNG_COLOURS`` colours), closed."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    image = Image.open(buffer).convert("RGB").quantize(colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def _table(frame):
    """Every row of ``frame`` as an HTML table (escaped by pandas; numbers to 3 decimals) in a box that scrolls,
    under its row count."""
    if frame is None or frame.empty:
        return jinja2.utils.markupsafe.Markup("<p class='note'>not available</p>")
    html = frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–", border=0, justify="left")
    count = f"{len(frame)} row{'s' if len(frame) != 1 else ''}"
    return jinja2.utils.markupsafe.Markup(f"<p class='note table-rows'>{count}</p><div class='table-scroll'>{html}</div>")


def _read_tsv(path):
    return pd.read_csv(path, sep="\t") if Path(path).exists() else None


#: The sound's headline: bits gained over the code prior, and TR identification (pooled codes, log-mel).
SOUND_HEADLINE = ("bits_per_code", "bits_per_second", "rank_accuracy", "descriptor_rank_accuracy",
                  "sound_class_balanced_accuracy", "descriptor_r")


def _sound_headline(decoding):
    """Decoded sound's headline numbers from measured BOLD, autoencoder beside ridge, with their references."""
    if decoding is None:
        return None
    rows = decoding[(decoding["modality"] == "audio") & (decoding["input"] == "measured_bold")
                    & decoding["metric"].isin(SOUND_HEADLINE)]
    order = {m: i for i, m in enumerate(SOUND_HEADLINE)}
    rows = rows.sort_values(["metric", "model"], key=lambda c: c.map(order) if c.name == "metric" else c)
    return rows[["metric", "model", "score", *(c for c in ("ci_low", "ci_high") if c in rows), "chance", "ceiling",
                 "null_mean", "p"]]


#: The headline metric of each modality in the summary box (sound: bits per code over the code prior).
SUMMARY_METRICS = {"audio": "bits_per_code", "video": "rank_accuracy", "text": "rank_accuracy"}


def _summary_tables(encoding, decoding):
    """The summary box: (decoding headline per modality and model from measured BOLD with chance, ceiling, null
    and p; encoding per ROI: both models' r, the ceiling, r / ceiling, p)."""
    headline = None
    if decoding is not None:
        wanted = decoding["modality"].map(SUMMARY_METRICS) == decoding["metric"]
        rows = decoding[wanted & (decoding["input"] == "measured_bold")]
        headline = rows[["modality", "metric", "model", "score", *(c for c in ("ci_low", "ci_high") if c in rows),
                         "chance", "ceiling", "null_mean", "p"]]
    roi = None
    if encoding is not None:
        roi = encoding.pivot_table(index="roi", columns="model", values=["r", "r_over_ceiling", "p"], sort=False)
        roi.columns = [f"{model} {value}" for value, model in roi.columns]
        ceiling = encoding.drop_duplicates("roi").set_index("roi")["ceiling"]
        roi = roi.join(ceiling).reset_index()
    return headline, roi


def _ground_truth_checks(ground_truth, encoding, isc):
    """The demo's known answers against this subject's numbers: (check, expected, measured, pass) rows.

    Every ROI's whole-scan ISC lies in the range the simulation declares (``expected_loso_isc``); a ROI with a
    driver (``roi_drivers``) is encoded by the autoencoder with a bootstrap interval above 0, the driverless
    (noise) ROI with one that covers 0.
    """
    rows = []
    for roi, (low, high) in ground_truth.get("expected_loso_isc", {}).items():
        if roi in isc:
            rows.append((f"{roi}: whole-scan ISC in the declared range", f"{low:g} to {high:g}", isc[roi], low <= isc[roi] <= high))
    if encoding is not None:
        autoencoder = encoding[encoding["model"] == "autoencoder"].set_index("roi")
        for roi, driver in ground_truth.get("roi_drivers", {}).items():
            if roi not in autoencoder.index or "r_ci_low" not in autoencoder:
                continue
            row = autoencoder.loc[roi]
            measured = f"{row['r']:.3f} [{row['r_ci_low']:.3f}, {row['r_ci_high']:.3f}]"
            if driver is None:
                rows.append((f"{roi}: not encoded (no driver)", "interval covers 0", measured,
                             row["r_ci_low"] <= 0 <= row["r_ci_high"]))
            else:
                rows.append((f"{roi}: encoded (driven by {driver})", "interval above 0", measured, row["r_ci_low"] > 0))
    return pd.DataFrame(rows, columns=["check", "expected", "measured", "pass"])


def _versions():
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _data_table(prepared):
    qc = prepared.qc
    rows = [
        ("TRs", len(prepared.values)), ("runs", len(np.unique(prepared.runs))), ("TR (s)", prepared.tr_s),
        ("voxels kept", prepared.values.shape[1]),
        ("voxels excluded", ", ".join(f"{k}: {v}" for k, v in qc.get("n_excluded_voxels", {}).items()) or "none"),
        ("valid TRs per block", ", ".join(f"{k}: {v}" for k, v in qc.get("n_valid_trs", {}).items())),
        ("TRs in the gaps between blocks", int((prepared.split.labels == GAP).sum())),
        ("TRs of a block left out (bad data)", int((~prepared.valid_trs & (prepared.split.labels != GAP)).sum())),
        ("bad TRs (volumes) by reason", _bad_trs(qc)),
        ("NaN samples filled", f"{qc.get('n_filled_samples', 0)} in {qc.get('n_filled_voxels', 0)} voxels "
                               "(interpolated in time within each run and block)"),
        ("ROIs (voxels)", ", ".join(f"{k}: {v}" for k, v in qc.get("rois", {}).items())),
    ]
    return pd.DataFrame(rows, columns=["", "value"]).astype(str)


def _bad_trs(qc):
    """Counts and ``[start, stop)`` TR ranges of each kind of bad volume (NaN, constant, repeated, outlier)."""
    found = [f"{reason}: {n} (TRs {', '.join(f'{a}-{b - 1}' for a, b in qc['bad_tr_ranges'][reason])})"
             for reason, n in qc.get("n_bad_trs", {}).items() if n]
    return "; ".join(found) or "none"


def _isc_figure(group, subject):
    block, s = group.shown_block, group.subjects.index(subject)
    return figures.isc_bars(list(group.roi_names), group.roi_isc[block, s], group.roi_isc_null_band[block, :, s],
                            title=f"{subject}: ISC by ROI ({group.blocks[block]} block)",
                            ci=group.roi_isc_ci[block, :, s])


def _lesion_figures(table):
    if table is None or table.empty:
        return []
    chosen = table
    for column, preferred in (("model", "autoencoder"), ("input", "measured_bold")):
        if column in chosen and (chosen[column] == preferred).any():
            chosen = chosen[chosen[column] == preferred]
    first_metric = chosen.groupby("modality")["metric"].agg(
        lambda metrics: HEADLINE_METRIC if (metrics == HEADLINE_METRIC).any() else metrics.iloc[0])
    chosen = chosen[chosen["metric"] == chosen["modality"].map(first_metric)]
    label = chosen["roi"].astype(str) + (" (" + chosen["part"].astype(str) + ")" if "part" in chosen else "")
    pivot = chosen.assign(lesion=label).pivot_table(index="lesion", columns="modality", values="change")
    metrics = ", ".join(f"{m}: {first_metric[m]}" for m in pivot.columns)
    return [figures.lesion_heatmap(pivot, f"change when silenced ({metrics})")]


def _thumbnail_figures(eval_dir):
    path = eval_dir / EVALUATE_OUTPUTS["examples"]
    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as z:
        shown = {label: key for label, key in EXAMPLE_THUMBS.items() if key in z.files}
        rows = [np.moveaxis(z[key], 1, -1) if z[key].shape[1] == 3 else z[key] for key in shown.values()]
        titles = [f"TR {t}" for t in z["trs"]]
    return [figures.thumbnail_grid(rows, list(shown), titles)] if rows else []


def _neighbours(subject, subjects):
    """(previous, next) subject of ``subjects`` around ``subject``, None at the ends."""
    subjects = list(subjects or [subject])
    i = subjects.index(subject) if subject in subjects else 0
    return (subjects[i - 1] if i > 0 else None), (subjects[i + 1] if i + 1 < len(subjects) else None)


@dataclass(frozen=True)
class ReportInputs:
    """What ``report`` reads for one subject.

    Attributes
    ----------
    eval_dir, prepared_path, group_isc_path : path
        The subject's ``evaluate`` folder and ``prepare-fmri`` file, and ``group_isc.npz``.
    config_path : path
        The config file (shown on the page).
    wave_dir : path, optional
        The subject's ``decode-audio`` folder (when audio is modelled).
    ground_truth_path : path, optional
        The demo's ``ground_truth.json``: a banner says the data are simulated, the known answers are checked.
    """

    eval_dir: Path
    prepared_path: Path
    group_isc_path: Path
    config_path: Path
    wave_dir: Path | None = None
    ground_truth_path: Path | None = None


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``report``: ``dataset`` (the page title) and ``subjects`` (``fmri.subjects``, in order: the
    previous/next links)."""

    dataset: str
    subjects: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "subjects", tuple(self.subjects))

    @classmethod
    def from_config(cls, cfg):
        """The settings of a validated config."""
        return cls(dataset=cfg["dataset"], subjects=cfg["fmri"]["subjects"])


def run_report(subject, inputs, out_html, config):
    """Write ``out_html`` (self-contained; WAVs in ``<stem>_audio/`` beside it) for one subject.

    Parameters
    ----------
    subject : str
    inputs : ReportInputs
    out_html : path
    config : ReportConfig

    Returns
    -------
    Path
        ``out_html``.
    """
    eval_dir, out_html, wave_dir = Path(inputs.eval_dir), Path(out_html), inputs.wave_dir
    ground_truth_path, dataset = inputs.ground_truth_path, config.dataset
    prepared, group = PreparedFmri.load(inputs.prepared_path), GroupIsc.load(inputs.group_isc_path)
    summary = json.loads((eval_dir / EVALUATE_OUTPUTS["summary"]).read_text()) if (eval_dir / EVALUATE_OUTPUTS["summary"]).exists() else {}
    encoding = _read_tsv(eval_dir / EVALUATE_OUTPUTS["encoding_rois"])
    lesions = _read_tsv(eval_dir / EVALUATE_OUTPUTS["lesions"])
    decoding = _read_tsv(eval_dir / EVALUATE_OUTPUTS["decoding"])
    players, waves, lesion_waves, rate = audio_players(wave_dir, out_html)
    sound_clock = json.loads((Path(wave_dir) / DECODE_AUDIO_OUTPUTS["summary"]).read_text()) \
        if wave_dir and (Path(wave_dir) / DECODE_AUDIO_OUTPUTS["summary"]).exists() else {}
    maps, background = map_figures(eval_dir, prepared)
    summary_decoding, summary_encoding = _summary_tables(encoding, decoding)
    checks = None
    if ground_truth_path is not None:
        b, s = group.index(subject, "all", group.roi_names)  # the declared ranges are of the whole scan
        isc = dict(zip(group.roi_names, group.roi_isc[b, s].tolist()))
        checks = _ground_truth_checks(json.loads(Path(ground_truth_path).read_text()), encoding, isc)
    context = {
        "map_figures": [_png(f) for f in maps], "map_background": background,
        "summary_decoding": _table(summary_decoding), "summary_encoding": _table(summary_encoding),
        "title": f"{dataset} {subject}", "dataset": dataset, "subject": subject,
        "simulated": ground_truth_path is not None, "ground_truth_table": None if checks is None else _table(checks),
        "neighbours": _neighbours(subject, config.subjects),
        "codec_status": summary.get("codec_status"),
        "versions": _versions(),
        "data_table": _table(_data_table(prepared)),
        "isc_figures": [_png(_isc_figure(group, subject))],
        "encoding_figures": [_png(figures.encoding_bars(encoding))] if encoding is not None else [],
        "encoding_table": _table(encoding),
        "map_threshold": MAP_THRESHOLD,
        "decoding_table": _table(decoding),
        "has_sound": decoding is not None and bool((decoding["modality"] == "audio").any()),
        "sound_headline": _table(_sound_headline(decoding)),
        "codebook_table": _table(_read_tsv(eval_dir / EVALUATE_OUTPUTS["codebook_encoding"])),
        "audio": players,
        "spectrogram_figures": [_png(figures.spectrograms(w, rate)) for w in (waves, lesion_waves) if w],
        "waveform_table": _table(waveform_table(Path(wave_dir) / DECODE_AUDIO_OUTPUTS["scores"]) if wave_dir else None),
        "sound_clock": sound_clock,
        "thumbnail_figures": [_png(f) for f in _thumbnail_figures(eval_dir)],
        "text_table": _table(_read_tsv(eval_dir / EVALUATE_OUTPUTS["text_examples"]))
        if (eval_dir / EVALUATE_OUTPUTS["text_examples"]).exists() else None,
        "lesion_figures": [_png(f) for f in _lesion_figures(lesions)],
        "lesion_table": _table(lesions),
        "versions_table": _table(pd.DataFrame(list(_versions().items()), columns=["package", "version"])),
        "config_text": Path(inputs.config_path).read_text(),
    }
    with atomic_path(out_html) as tmp:
        tmp.write_text(get_template("subject.html").render(**context))
    log.info("wrote %s", out_html)
    return out_html
