"""Per-subject and group HTML reports: self-contained pages (plots embedded, audio beside them)."""

from __future__ import annotations

import base64
import io
import json
import logging
import platform
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from scipy.io import wavfile

from giblet.evaluation.outputs import DECODE_AUDIO_OUTPUTS, EVALUATE_OUTPUTS, EXAMPLE_THUMBS
from giblet.fmri.prepared import PreparedFmri
from giblet.io import atomic_path, write_bytes
from giblet.report import figures
from giblet.splits import GAP

__all__ = ["run_report", "run_group_report", "get_template"]

log = logging.getLogger(__name__)
_PACKAGES = ("giblet", "torch", "transformers", "nilearn", "nibabel", "numpy", "scipy", "scikit-learn", "himalaya",
             "av", "snakemake")
#: WAVs of the evaluation stage shown as players, in this order, with their labels
_AUDIO_KINDS = {
    "original": "original soundtrack",
    "codec_resynthesis": "(a) codec resynthesis of the true codes (ceiling)",
    "decoded_measured_bold": "(b) decoded from measured BOLD",
    "reconstructed_predicted_bold": "(c) autoencoder reconstruction",
}


def get_template(name):
    """A Jinja template from ``giblet/report/templates`` (autoescaped)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("giblet.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    return env.get_template(name)


def _png(fig):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(frame, max_rows=60):
    """An HTML table (escaped by pandas) with numbers to 3 decimals."""
    if frame is None or frame.empty:
        return jinja2.utils.markupsafe.Markup("<p class='note'>not available</p>")
    html = frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–", border=0)
    return jinja2.utils.markupsafe.Markup(html)


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
    return rows[["metric", "model", "score", "chance", "ceiling", "null_mean", "p"]]


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


def _isc_figure(group_isc_path, subject):
    with np.load(group_isc_path, allow_pickle=False) as z:
        subjects, blocks = [str(s) for s in z["subjects"]], [str(b) for b in z["blocks"]]
        block = blocks.index("test") if "test" in blocks else 0
        s = subjects.index(subject)
        return figures.isc_bars([str(r) for r in z["roi_names"]], z["roi_isc"][block, s],
                                z["roi_isc_null"][block, s], title=f"{subject}: ISC by ROI ({blocks[block]} block)")


def _map_figures(eval_dir, prepared):
    path = eval_dir / EVALUATE_OUTPUTS["encoding_voxels"]
    if not path.exists():
        return []
    out = []
    with np.load(path, allow_pickle=False) as z:
        for key in [k for k in z.files if k.startswith("r_")][:2]:
            volume = np.zeros(prepared.grid_shape, np.float32)
            volume[tuple(z["voxel_ijk"].T)] = np.nan_to_num(z[key])
            import nibabel as nib

            out.append(figures.brain_map(nib.Nifti1Image(volume, z["affine"]), f"encoding r: {key[2:]}"))
    return out


def _lesion_figures(table):
    if table is None or table.empty:
        return []
    chosen = table
    for column, preferred in (("model", "autoencoder"), ("input", "measured_bold")):
        if column in chosen and (chosen[column] == preferred).any():
            chosen = chosen[chosen[column] == preferred]
    first_metric = chosen.groupby("modality")["metric"].first()
    chosen = chosen[chosen["metric"] == chosen["modality"].map(first_metric)]
    label = chosen["roi"].astype(str) + (" (" + chosen["part"].astype(str) + ")" if "part" in chosen else "")
    pivot = chosen.assign(lesion=label).pivot_table(index="lesion", columns="modality", values="change")
    metrics = ", ".join(f"{m}: {first_metric[m]}" for m in pivot.columns)
    return [figures.lesion_heatmap(pivot, f"change when silenced ({metrics})")]


def _audio(wave_dir, out_html):
    """Copy the evaluation WAVs beside the page as 16-bit PCM; return players and spectrogram inputs."""
    if not wave_dir or not Path(wave_dir).exists():
        return [], {}, None
    folder = out_html.parent / f"{out_html.stem}_audio"
    players, waves, rate = [], {}, None
    lesions = {p.stem: f"(d) lesion: {p.stem}" for p in sorted((Path(wave_dir) / "excerpt").glob("lesion-*.wav"))}
    for name, label in {**_AUDIO_KINDS, **lesions}.items():
        source = next((p for p in (Path(wave_dir) / "excerpt" / f"{name}.wav", Path(wave_dir) / f"{name}.wav")
                       if p.exists()), None)
        if source is None:
            continue
        rate, wave = wavfile.read(source)
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16) if wave.dtype.kind == "f" else wave
        buffer = io.BytesIO()
        wavfile.write(buffer, rate, pcm)
        write_bytes(folder / f"{name}.wav", buffer.getvalue())
        players.append({"label": label, "src": f"{folder.name}/{name}.wav"})
        if name in _AUDIO_KINDS:
            waves[label] = pcm.astype(np.float32) / 32767
    return players, waves, rate


def _thumbnail_figures(eval_dir):
    path = eval_dir / EVALUATE_OUTPUTS["examples"]
    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as z:
        shown = {label: key for label, key in EXAMPLE_THUMBS.items() if key in z.files}
        rows = [np.moveaxis(z[key], 1, -1) if z[key].shape[1] == 3 else z[key] for key in shown.values()]
        titles = [f"TR {t}" for t in z["trs"]]
    return [figures.thumbnail_grid(rows, list(shown), titles)] if rows else []


def run_report(subject, *, dataset, eval_dir, prepared_path, group_isc_path, config_path, out_html, wave_dir=None):
    """Write ``out_html`` (self-contained; WAVs in ``<stem>_audio/`` beside it) for one subject."""
    eval_dir, out_html = Path(eval_dir), Path(out_html)
    prepared = PreparedFmri.load(prepared_path)
    summary = json.loads((eval_dir / EVALUATE_OUTPUTS["summary"]).read_text()) if (eval_dir / EVALUATE_OUTPUTS["summary"]).exists() else {}
    encoding = _read_tsv(eval_dir / EVALUATE_OUTPUTS["encoding_rois"])
    lesions = _read_tsv(eval_dir / EVALUATE_OUTPUTS["lesions"])
    decoding = _read_tsv(eval_dir / EVALUATE_OUTPUTS["decoding"])
    players, waves, rate = _audio(wave_dir, out_html)
    context = {
        "title": f"{dataset} {subject}", "dataset": dataset, "subject": subject,
        "codec_status": summary.get("codec_status"),
        "versions": _versions(),
        "data_table": _table(_data_table(prepared)),
        "isc_figures": [_png(_isc_figure(group_isc_path, subject))],
        "encoding_figures": [_png(figures.encoding_bars(encoding))] if encoding is not None else [],
        "encoding_table": _table(encoding),
        "map_figures": [_png(f) for f in _map_figures(eval_dir, prepared)],
        "decoding_table": _table(decoding, max_rows=200),
        "has_sound": decoding is not None and bool((decoding["modality"] == "audio").any()),
        "sound_headline": _table(_sound_headline(decoding)),
        "codebook_table": _table(_read_tsv(eval_dir / EVALUATE_OUTPUTS["codebook_encoding"]), max_rows=120),
        "audio": players,
        "spectrogram_figures": [_png(figures.spectrograms(waves, rate))] if waves else [],
        "waveform_table": _table(_read_tsv(Path(wave_dir) / DECODE_AUDIO_OUTPUTS["scores"]) if wave_dir else None),
        "thumbnail_figures": [_png(f) for f in _thumbnail_figures(eval_dir)],
        "text_table": _table(_read_tsv(eval_dir / EVALUATE_OUTPUTS["text_examples"]), max_rows=12)
        if (eval_dir / EVALUATE_OUTPUTS["text_examples"]).exists() else None,
        "lesion_figures": [_png(f) for f in _lesion_figures(lesions)],
        "lesion_table": _table(lesions),
        "versions_table": _table(pd.DataFrame(list(_versions().items()), columns=["package", "version"])),
        "config_text": Path(config_path).read_text(),
    }
    with atomic_path(out_html) as tmp:
        tmp.write_text(get_template("subject.html").render(**context))
    log.info("wrote %s", out_html)
    return out_html


def run_group_report(*, dataset, subjects, group_summary_path, group_isc_path, out_html):
    """Write the group page: links to every subject's page and the group numbers."""
    group = json.loads(Path(group_summary_path).read_text())
    numbers = pd.DataFrame([{"number": k, **{s: v for s, v in row.items() if s != "values"}}
                            for k, row in group.get("numbers", {}).items()])
    with np.load(group_isc_path, allow_pickle=False) as z:
        blocks = [str(b) for b in z["blocks"]]
        block = blocks.index("test") if "test" in blocks else 0
        isc = figures.isc_bars([str(r) for r in z["roi_names"]], z["roi_isc"][block].mean(axis=0),
                               z["roi_isc_null"][block].mean(axis=0), title=f"group mean ISC ({blocks[block]} block)")
    with np.load(group_isc_path, allow_pickle=False) as z:
        published = pd.DataFrame(json.loads(str(z["summary"])).get("published_isc", []))
    statuses = group.get("codec_status")
    context = {"title": f"{dataset} group", "dataset": dataset, "subjects": subjects,
               "codec_status": ", ".join(statuses) if isinstance(statuses, list) else statuses,
               "isc_figures": [_png(isc)], "group_table": _table(numbers, max_rows=200),
               "published_table": None if published.empty else _table(published, max_rows=100)}
    with atomic_path(out_html) as tmp:
        tmp.write_text(get_template("group.html").render(**context))
    return out_html
