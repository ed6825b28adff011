"""The ``evaluate`` stage: one subject's encoding, decoding and lesion scores on the test block."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from giblet.audio.codes import CodeStream
from giblet.compute import resolve_device
from giblet.config import check_choice
from giblet.evaluation._tables import json_number, write_tsv
from giblet.evaluation.decoding import decoding_rows, score_views
from giblet.evaluation.encoding import (
    codebook_feature_sets,
    encoding_table,
    feature_set_encoding,
    isc_ceiling,
    predict_bold,
    roi_ceiling_on,
    score_encoding,
)
from giblet.evaluation.lesions import LESION_INPUTS, lesion_summary, score_lesions
from giblet.evaluation.predict import decode_all, scored_design
from giblet.evaluation.targets import decoding_targets
from giblet.features import FeatureTable
from giblet.fmri.group_isc import GroupIsc
from giblet.fmri.prepared import subject_prepared_path
from giblet.io import save_npz, write_json
from giblet.models import LESION_MODES
from giblet.outputs import EVALUATE_OUTPUTS, EXAMPLE_THUMBS, HEADLINE_METRIC, evaluate_outputs
from giblet.splits import BLOCKS
from giblet.training.baselines import EncodingDesign
from giblet.training.ridge import StoredRidge
from giblet.training.data import load_movie_data
from giblet.training.stage import load_model
from giblet.voxel_scores import VoxelScores

__all__ = ["EvaluateConfig", "EvaluateInputs", "run_evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of ``evaluate`` and ``decode-audio`` (the config's ``evaluate`` section, with what they share).

    Attributes
    ----------
    modalities : tuple of str
        As trained.
    preshift_trs : int, default=0
        TRs the stored BOLD is shifted earlier (Sherlock: 3); must match training.
    seed : int, default=0
        Seeds the nulls, bootstraps, noise lesions and sampled codes.
    n_permutations : int, default=1000
        Phase-randomised encoding predictions per model; circular shifts of decoded sequences
        (at most n_trs - 1).
    n_bootstrap : int, default=1000
        Bootstrap resamples of the test TRs (confidence intervals).
    bootstrap_block_trs : int, default=5
        Moving-block length of the bootstrap, in TRs (keeps BOLD autocorrelation in the resamples).
    lesion_mode : {"zero", "mean", "noise"}, default="mean"
        Replacement of silenced voxels (training statistics; see :func:`giblet.models.lesion`).
    lesion_inputs : tuple of {"measured_bold", "predicted_bold"}, default=both
        Where ``decode-audio`` applies lesions for the excerpt WAVs (each is 2 x n_rois codec decodes).
    n_examples : int, default=8
        Test TRs whose thumbnails go to ``examples.npz``.
    sound_label : str, optional
        Annotation label column of sound classes (``evaluate.sound_classes``): decoded sound is
        also scored by balanced sound-class accuracy.
    device : str, optional
        None/"auto": CUDA when available.
    """

    modalities: tuple
    preshift_trs: int = 0
    seed: int = 0
    n_permutations: int = 1000
    n_bootstrap: int = 1000
    bootstrap_block_trs: int = 5
    lesion_mode: str = "mean"
    lesion_inputs: tuple = LESION_INPUTS
    n_examples: int = 8
    sound_label: str | None = None
    device: str | None = None

    def __post_init__(self):
        check_choice("evaluate.lesion_mode", self.lesion_mode, LESION_MODES)
        unknown = sorted(set(self.lesion_inputs) - set(LESION_INPUTS))
        if unknown:
            raise ValueError(f"evaluate.lesion_inputs must be among {list(LESION_INPUTS)}, got {unknown}")
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "lesion_inputs", tuple(self.lesion_inputs))

    @classmethod
    def from_config(cls, cfg):
        """The options from a validated config (its ``evaluate`` section, modalities, seed, device, pre-shift)."""
        section = cfg["evaluate"]
        known = {f.name for f in fields(cls)}
        return cls(modalities=cfg["modalities"], preshift_trs=cfg["fmri"]["preshift_trs"], seed=cfg["seed"],
                   device=cfg["device"], sound_label=section["sound_classes"],
                   **{k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known})


@dataclass(frozen=True)
class EvaluateInputs:
    """What ``evaluate`` reads.

    Attributes
    ----------
    features_dir : path
        Feature stages' folder (per-TR tables, ``codes.npz``, ``text_segments.npz``).
    aligned_paths : sequence of path
        The ``align`` stage's FIR tables (the ridge encoder's design, stored clock).
    prepared_paths : sequence of path
        ``prepare-fmri`` files; the subject's is picked by its ``subject`` entry.
    model_path, baselines_path : path
        The ``train`` stage's ``autoencoder.pt`` and ``baselines.joblib``.
    group_isc_path : path
        ``group_isc.npz`` (the leave-one-subject-out ceiling).
    """

    features_dir: Path
    aligned_paths: tuple
    prepared_paths: tuple
    model_path: Path
    baselines_path: Path
    group_isc_path: Path


def _encoding(model, data, subject, inputs, baselines, config, device, out_dir):
    """Encoding scores of the autoencoder and the ridge encoder beside the ISC ceiling (tables, voxel maps, summary)."""
    prepared = data.prepared[subject]
    rows = np.flatnonzero((data.labels == BLOCKS.index("test")) & data.bold_valid[subject])
    measured = data.bold[subject][rows]
    design = EncodingDesign.load(inputs.aligned_paths, data.runs, config.preshift_trs)
    design.check(baselines["encoder"], data, subject, f"aligned tables {[str(p) for p in inputs.aligned_paths]}")
    predictions = {
        "autoencoder": predict_bold(model, data, subject, "test", device)[rows],
        "ridge": design.predict(baselines["encoder"])[rows],
    }
    scores = {name: score_encoding(p, measured, prepared.roi_membership, n_permutations=config.n_permutations,
                                   seed=config.seed, n_bootstrap=config.n_bootstrap,
                                   block_trs=config.bootstrap_block_trs)
              for name, p in tqdm(predictions.items(), desc="encoding nulls", unit="model")}
    group = GroupIsc.load(inputs.group_isc_path)
    voxel_ceiling = isc_ceiling(group, subject, prepared.voxel_ijk, prepared.roi_names)[0]
    roi_ceiling = roi_ceiling_on(group, subject, prepared.roi_names, rows, data.runs,
                                 config.preshift_trs)
    table = encoding_table(scores, prepared.roi_names, prepared.roi_membership, voxel_ceiling, roi_ceiling)
    write_tsv(table, out_dir / EVALUATE_OUTPUTS["encoding_rois"])
    VoxelScores(**{field: {name: getattr(s, f"voxel_{field}") for name, s in scores.items()} for field in "rpq"},
                ceiling=voxel_ceiling, voxel_ijk=prepared.voxel_ijk, affine=prepared.affine,
                grid_shape=prepared.grid_shape, roi_names=prepared.roi_names, roi_membership=prepared.roi_membership,
                n_trs=len(rows)).save(out_dir / EVALUATE_OUTPUTS["encoding_voxels"])
    rois = {(row.model, row.roi): row for row in table.itertuples()}
    summary = {name: {"n_trs": int(len(rows)), "median_voxel_r": json_number(np.nanmedian(s.voxel_r)),
                      "fraction_voxels_q05": json_number(np.mean(s.voxel_q < 0.05)),
                      "rois": {roi: {key: json_number(getattr(rois[name, roi], key))
                                     for key in ("r", "r_ci_low", "r_ci_high", "ceiling", "r_over_ceiling", "p")}
                               for roi in prepared.roi_names}}
               for name, s in scores.items()}
    return summary


def _codebook_encoding(data, subject, features_dir, delays):
    """Ridge encoding from each codebook level's pooled vectors, their sum and the log-mel (:func:`feature_set_encoding`)."""
    prepared = data.prepared[subject]
    pooled = FeatureTable.load(features_dir / "audio_pooled.npz").values
    sets = codebook_feature_sets(pooled, data.codebook_vectors.shape[0], data.descriptors["audio"])
    return feature_set_encoding(sets, data.bold[subject], data.bold_valid[subject], data.labels, data.runs, delays,
                                prepared.roi_names, prepared.roi_membership)


def _examples(views, targets, n_examples, out_dir):
    index = np.arange(0, targets.n_trs, max(1, targets.n_trs // n_examples))[:n_examples]  # evenly spaced TRs
    arrays = {"trs": targets.rows[index], "times_s": targets.rows[index] * targets.tr_s}
    if "thumbs" in targets.views:
        true, decoded, reconstructed = EXAMPLE_THUMBS.values()
        arrays[true] = targets.views["thumbs"][index]
        for source, key in (("measured_bold", decoded), ("predicted_bold", reconstructed)):
            arrays[key] = views["autoencoder", source]["video"]["thumbs"][index].astype(np.float32)
    save_npz(out_dir / EVALUATE_OUTPUTS["examples"], **arrays)
    text = {"tr": targets.rows, "time_s": targets.rows * targets.tr_s}
    if targets.text_index is not None:
        text["true_texts"] = [" | ".join(sorted(ok)) for ok in targets.correct_texts]
        for (model, source), v in views.items():
            text[f"{model}_{source}"] = targets.text_index.nearest_texts(v["text"]["embedding"],
                                                                          reference=targets.views["embedding"])
    write_tsv(pd.DataFrame(text), out_dir / EVALUATE_OUTPUTS["text_examples"])


def _decoding_summary(table):
    out = {}
    headline = table[~table["metric"].str.contains("_cb")]
    for row in headline.to_dict("records"):
        key = f"{row['model']}/{row['input']}"
        out.setdefault(key, {}).setdefault(row["modality"], {})[row["metric"]] = {
            k: json_number(row[k]) for k in ("score", "chance", "baseline", "ceiling", "null_mean", "p")}
    return out


def run_evaluate(subject, inputs, out_dir, config):
    """Score one subject's encoding, decoding and lesions on the test block.

    Parameters
    ----------
    subject : str
    inputs : EvaluateInputs
    out_dir : path
        Output folder; files are named in :data:`~giblet.outputs.EVALUATE_OUTPUTS`.
    config : EvaluateConfig

    Returns
    -------
    dict of str to Path
        Keys of :func:`~giblet.outputs.evaluate_outputs` of the modalities.
    """
    started = time.perf_counter()
    out_dir, features_dir, device = Path(out_dir), Path(inputs.features_dir), resolve_device(config.device)
    model, saved = load_model(inputs.model_path, device)
    if saved.get("preshift_trs", 0) != config.preshift_trs:
        raise ValueError(f"{inputs.model_path} was trained with preshift_trs={saved.get('preshift_trs')}, evaluation "
                         f"asks for {config.preshift_trs}; set fmri.preshift_trs as in training")
    modalities = config.modalities
    data = load_movie_data(features_dir, [subject_prepared_path(inputs.prepared_paths, subject)], modalities,
                           config.preshift_trs, audio_descriptor=saved.get("audio_descriptor", "audio_logmel_tr.npz"))
    all_baselines = joblib.load(inputs.baselines_path)
    if subject not in all_baselines:
        raise ValueError(f"{inputs.baselines_path} has no ridge baselines for {subject!r} (has "
                         f"{sorted(all_baselines)}); retrain with this subject")
    stored = all_baselines[subject]
    if not isinstance(stored["encoder"], StoredRidge):
        raise ValueError(f"{inputs.baselines_path} was written by an older giblet (primal ridge weights); rerun the "
                         "train stage")
    baselines = {**stored, "decoders": {m: d.materialise(data.bold[subject]) for m, d in stored["decoders"].items()}}
    out_dir.mkdir(parents=True, exist_ok=True)
    codec_status = CodeStream.load(features_dir / "codes.npz").codec_status if "audio" in modalities else None

    encoding = _encoding(model, data, subject, inputs, baselines, config, device, out_dir)
    codebook_encoding = None
    if "audio" in modalities:
        codebook_encoding = _codebook_encoding(data, subject, features_dir, model.config.encoder_delays_trs)
        write_tsv(codebook_encoding, out_dir / EVALUATE_OUTPUTS["codebook_encoding"])

    rows = scored_design(data, subject, data.bold[subject], model.config.decoder_delays_trs)[2]
    targets = decoding_targets(data, features_dir, rows, model.audio_head if "audio" in modalities else None,
                               config.sound_label)
    views = decode_all(model, data, subject, targets, baselines, device)
    options = {"seed": config.seed, "n_bootstrap": config.n_bootstrap, "block_trs": config.bootstrap_block_trs}
    decoding = pd.DataFrame([row for (name, source), v in tqdm(views.items(), desc="decoding nulls", unit="model")
                             for row in decoding_rows(name, source, v, targets, n_permutations=config.n_permutations,
                                                      **options)])
    write_tsv(decoding, out_dir / EVALUATE_OUTPUTS["decoding"])
    _examples(views, targets, config.n_examples, out_dir)

    intact = {key: {m: score_views(v, targets) for m, v in by_modality.items()} for key, by_modality in views.items()}
    lesions, per_tr = score_lesions(model, data, subject, targets, baselines, intact, config, device)
    write_tsv(lesions, out_dir / EVALUATE_OUTPUTS["lesions"])
    write_tsv(per_tr, out_dir / EVALUATE_OUTPUTS["lesions_per_tr"])

    seconds = time.perf_counter() - started
    write_json(out_dir / EVALUATE_OUTPUTS["summary"], {
        "subject": subject, "codec_status": codec_status, "modalities": list(modalities),
        "n_decoding_trs": int(len(rows)), "lesion_mode": config.lesion_mode, "headline_metric": HEADLINE_METRIC,
        "seed": config.seed, "n_permutations": config.n_permutations, "n_bootstrap": config.n_bootstrap,
        "bootstrap_block_trs": config.bootstrap_block_trs, "encoding": encoding,
        "decoding": _decoding_summary(decoding),
        "lesions": lesion_summary(lesions[lesions["metric"] == HEADLINE_METRIC]), "seconds": round(seconds, 1),
        **({} if codebook_encoding is None else {"codebook_encoding": {
            f"{row.features}/{row.roi}": json_number(row.r) for row in codebook_encoding.itertuples()}}),
    })
    log.info("%s: evaluated %d test TRs in %.1f s", subject, len(rows), seconds)
    return {name: out_dir / file for name, file in evaluate_outputs(modalities).items()}
