"""The ``evaluate`` and ``decode-audio`` stages: one subject's scores and sounds on the test block."""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch
from scipy.io import wavfile
from tqdm.auto import tqdm

from giblet.audio.code_model import sample_codes
from giblet.audio.codes import CodeStream
from giblet.audio.load import load_audio
from giblet.audio.metrics import score_audio_pairs
from giblet.audio.stage import load_stage_codec
from giblet.compute import resolve_device
from giblet.evaluation._tables import json_number, write_tsv
from giblet.evaluation.decoding import (
    autoencoder_views,
    decoder_outputs,
    decoding_rows,
    decoding_targets,
    ridge_views,
    score_views,
)
from giblet.evaluation.encoding import (
    codebook_feature_sets,
    encoding_table,
    feature_set_encoding,
    isc_ceiling,
    predict_bold,
    ridge_bold,
    roi_ceiling_on,
    score_encoding,
)
from giblet.evaluation.lesions import correct_lesion_tests, lesion_effects, lesion_masks, silence
from giblet.evaluation.outputs import (
    AUDIO_REFERENCE_OUTPUTS,
    AUDIO_REFERENCES,
    DECODE_AUDIO_OUTPUTS,
    EVALUATE_OUTPUTS,
    EXAMPLE_THUMBS,
    HEADLINE_METRIC,
    evaluate_outputs,
)
from giblet.evaluation.waveforms import trs_waveform, write_wav
from giblet.features import FeatureTable
from giblet.io import save_npz, write_json
from giblet.models import LESION_MODES, lesion
from giblet.splits import BLOCKS
from giblet.training.baselines import decoding_design, encoder_rows, encoding_design
from giblet.training.data import load_movie_data
from giblet.training.stage import load_model

__all__ = ["EVALUATE_OUTPUTS", "HEADLINE_METRIC", "LESION_INPUTS", "AUDIO_REFERENCES", "subject_prepared_path",
           "run_evaluate", "run_audio_references", "run_decode_audio_eval"]

log = logging.getLogger(__name__)

#: Signals a lesion can silence: the subject's measured BOLD, or the encoder's predicted BOLD (middle layer).
LESION_INPUTS = ("measured_bold", "predicted_bold")


def subject_prepared_path(prepared_paths, subject):
    """The ``prepare-fmri`` file of ``subject`` among ``prepared_paths`` (reads only its ``subject`` entry)."""
    found = []
    for path in prepared_paths:
        with np.load(path, allow_pickle=False) as z:
            found.append(str(z["subject"]))
            if found[-1] == subject:
                return Path(path)
    raise ValueError(f"no prepare-fmri file for subject {subject!r} among {len(found)} files (subjects {found}); "
                     "pass the subject's file in prepared_paths")


def _check_lesion_mode(mode):
    if mode not in LESION_MODES:
        raise ValueError(f"evaluate.lesion_mode must be one of {sorted(LESION_MODES)}, got {mode!r}")


def _statistics(values, rows):
    mean, std = values[rows].mean(axis=0), values[rows].std(axis=0)
    return mean.astype(np.float32), std.astype(np.float32)


def _test_design(data, subject, bold, delays):
    """The ridge decoder's design on the test block only (and the BOLD after it that its windows reach).

    Returns
    -------
    design : ndarray, shape (n_rows, n_voxels * n_delays)
        Rows for TRs ``first, first + 1, ...`` of the clock.
    first : int
    scored : ndarray, shape (n_scored,), int
        Test TRs whose every window row is valid test-block BOLD of the same run (the scored TRs).
    """
    test = np.flatnonzero(data.labels == BLOCKS.index("test"))
    first, stop = test[0], min(test[-1] + max(delays) + 1, data.n_trs)
    window = slice(first, stop)
    design, rows = decoding_design(bold[window], data.bold_valid[subject][window], data.labels[window],
                                   data.runs[window], "test", delays)
    return design, first, np.flatnonzero(rows) + first


def _decode_all(model, data, subject, targets, baselines, delays, device, bold=None, lesion_fn=None):
    """Views of the three decoders: the autoencoder and the ridge from measured BOLD, the autoencoder's reconstruction.

    ``bold`` replaces the measured BOLD (a lesion of it); ``lesion_fn`` acts on the middle layer.
    """
    design, first, _ = _test_design(data, subject, data.bold[subject] if bold is None else bold, delays)
    return {
        ("autoencoder", "measured_bold"): autoencoder_views(model, data, subject, targets, bold=bold, device=device),
        ("ridge", "measured_bold"): ridge_views(baselines["decoders"], design[targets.rows - first], targets),
        ("autoencoder", "predicted_bold"): autoencoder_views(model, data, subject, targets, source="predicted_bold",
                                                             lesion=lesion_fn, device=device),
    }


def _check_design(design, encoder, stored_rows, aligned_paths):
    """The FIR design must be the one the ridge encoder was fitted on: same columns, same training means."""
    if design.shape[1] != encoder.n_features_in_ or not np.allclose(
            design[stored_rows].astype(np.float64).mean(axis=0), encoder.mean_, rtol=1e-5, atol=1e-6):
        raise ValueError(f"aligned tables {[str(p) for p in aligned_paths]} ({design.shape[1]} columns) are not the "
                         f"design the ridge encoder was trained on ({encoder.n_features_in_} columns); pass the train "
                         "stage's --aligned files in the same order")


def _encoding(model, data, subject, aligned_paths, baselines, group_isc_path, preshift_trs, device, out_dir, *,
              n_permutations, seed, n_bootstrap, block_trs):
    prepared = data.prepared[subject]
    rows = np.flatnonzero((data.labels == BLOCKS.index("test")) & data.bold_valid[subject])
    measured = data.bold[subject][rows]
    design = encoding_design(aligned_paths)
    _check_design(design, baselines["encoder"], np.flatnonzero(encoder_rows(data, subject)) - preshift_trs,
                  aligned_paths)
    predictions = {
        "autoencoder": predict_bold(model, data, subject, "test", device)[rows],
        "ridge": ridge_bold(baselines["encoder"], design, data.runs, preshift_trs)[rows],
    }
    scores = {name: score_encoding(p, measured, prepared.roi_membership, n_permutations=n_permutations, seed=seed,
                                   n_bootstrap=n_bootstrap, block_trs=block_trs)
              for name, p in tqdm(predictions.items(), desc="encoding nulls", unit="model")}
    voxel_ceiling = isc_ceiling(group_isc_path, subject, prepared.voxel_ijk, prepared.roi_names)[0]
    roi_ceiling = roi_ceiling_on(group_isc_path, subject, prepared.roi_names, rows, data.runs, preshift_trs)
    table = encoding_table(scores, prepared.roi_names, prepared.roi_membership, voxel_ceiling, roi_ceiling)
    write_tsv(table, out_dir / EVALUATE_OUTPUTS["encoding_rois"])
    per_voxel = {f"{field}_{name}": getattr(s, f"voxel_{field}").astype(np.float32)
                 for name, s in scores.items() for field in ("r", "p", "q")}
    save_npz(out_dir / EVALUATE_OUTPUTS["encoding_voxels"], **per_voxel, ceiling=voxel_ceiling.astype(np.float32),
             voxel_ijk=prepared.voxel_ijk, affine=prepared.affine, grid_shape=np.asarray(prepared.grid_shape),
             roi_names=np.asarray(prepared.roi_names), roi_membership=prepared.roi_membership,
             n_trs=np.asarray(len(rows)))
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


def _lesion_statistics(model, data, subject, device):
    """Training mean and std of the measured BOLD and of the encoder's predicted voxels (the lesion fillers)."""
    train = np.flatnonzero((data.labels == BLOCKS.index("train")) & data.bold_valid[subject])
    return {"measured_bold": _statistics(data.bold[subject], train),
            "predicted_bold": _statistics(predict_bold(model, data, subject, "train", device), train)}


def _lesioned_inputs(data, subject, mask, mode, stats, seed, device):
    """The silenced measured BOLD (n_trs, n_voxels) and the middle-layer lesion for one voxel mask."""
    silenced = silence(data.bold[subject], mask, mode, *stats["measured_bold"], seed)
    mean, std = (torch.from_numpy(x).to(device) for x in stats["predicted_bold"])
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
    on_layer = functools.partial(lesion, roi=torch.from_numpy(mask).to(device), mode=mode, mean=mean, std=std,
                                 generator=generator)
    return silenced, on_layer


def _lesions(model, data, subject, targets, baselines, intact, *, delays, mode, device, seed, n_bootstrap,
             block_trs):
    """Tidy lesion effects and the per-TR scores behind them."""
    prepared = data.prepared[subject]
    stats = _lesion_statistics(model, data, subject, device)
    effects, per_tr = [], []
    masks = lesion_masks(prepared.roi_names, prepared.roi_membership)
    for (roi, part), mask in tqdm(masks.items(), desc="lesions", unit="lesion"):
        silenced, on_layer = _lesioned_inputs(data, subject, mask, mode, stats, seed, device)
        lesioned = _decode_all(model, data, subject, targets, baselines, delays, device, silenced, on_layer)
        for (name, source), by_modality in lesioned.items():
            for modality, views in by_modality.items():
                before, after = intact[name, source][modality], score_views(views, targets)
                keys = {"model": name, "input": source, "roi": roi, "part": part, "n_voxels": int(mask.sum()),
                        "modality": modality}
                effects += [{**keys, **row} for row in lesion_effects(before, after, n_bootstrap=n_bootstrap,
                                                                      seed=seed, block_trs=block_trs)]
                per_tr += [pd.DataFrame({**keys, "metric": metric, "tr": targets.rows, "intact": before[metric][1],
                                         "lesioned": after[metric][1]}) for metric in before]
    return correct_lesion_tests(pd.DataFrame(effects)), pd.concat(per_tr, ignore_index=True)


def _decoding_summary(table):
    out = {}
    headline = table[~table["metric"].str.contains("_cb")]
    for row in headline.to_dict("records"):
        key = f"{row['model']}/{row['input']}"
        out.setdefault(key, {}).setdefault(row["modality"], {})[row["metric"]] = {
            k: json_number(row[k]) for k in ("score", "chance", "baseline", "ceiling", "null_mean", "p")}
    return out


def _lesion_summary(table):
    out = {}
    for row in table[table["metric"] == HEADLINE_METRIC].to_dict("records"):
        key = f"{row['model']}/{row['input']}"
        name = row["roi"] if row["part"] == "roi" else f"{row['roi']} (complement)"
        out.setdefault(key, {}).setdefault(row["modality"], {})[name] = {
            "change": json_number(row["change"]), "ci": [json_number(row["ci_low"]), json_number(row["ci_high"])],
            "significant": bool(row["significant"])}
    return out


def run_evaluate(subject, *, features_dir, aligned_paths, prepared_paths, model_path, baselines_path, group_isc_path,
                 out_dir, modalities, preshift_trs=0, seed=0, n_permutations=1000, n_bootstrap=1000,
                 bootstrap_block_trs=5, lesion_mode="mean", n_examples=8, device=None, sound_label=None):
    """Score one subject's encoding, decoding and lesions on the test block.

    Parameters
    ----------
    subject : str
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
    out_dir : path
        Output folder; files are named in :data:`EVALUATE_OUTPUTS`.
    modalities : sequence of str
        As trained.
    preshift_trs : int, default=0
        TRs the stored BOLD is shifted earlier (Sherlock: 3); must match training.
    seed : int, default=0
        Seeds the nulls, bootstraps and noise lesions.
    n_permutations : int, default=1000
        Phase-randomised encoding predictions per model; circular shifts of decoded sequences
        (at most n_trs - 1).
    n_bootstrap : int, default=1000
        Bootstrap resamples of the test TRs for lesion confidence intervals.
    bootstrap_block_trs : int, default=5
        Moving-block length of the bootstrap, in TRs (keeps BOLD autocorrelation in the resamples).
    lesion_mode : {"zero", "mean", "noise"}, default="mean"
        Replacement of silenced voxels (training statistics; see :func:`giblet.models.lesion`).
    n_examples : int, default=8
        Test TRs whose thumbnails go to ``examples.npz``.
    device : str, optional
        ``None``: CUDA when available.
    sound_label : str, optional
        Annotation label column of sound classes (``evaluate.sound_classes``): decoded sound is
        also scored by balanced sound-class accuracy.

    Returns
    -------
    dict of str to Path
        Keys of :data:`EVALUATE_OUTPUTS`.
    """
    _check_lesion_mode(lesion_mode)
    return _evaluate(subject, features_dir, aligned_paths, prepared_paths, model_path, baselines_path,
                     group_isc_path, out_dir, modalities, preshift_trs, seed, n_permutations, n_bootstrap,
                     bootstrap_block_trs, lesion_mode, n_examples, device, sound_label)


def _evaluate(subject, features_dir, aligned_paths, prepared_paths, model_path, baselines_path, group_isc_path,
              out_dir, modalities, preshift_trs, seed, n_permutations, n_bootstrap, bootstrap_block_trs, lesion_mode,
              n_examples, device, sound_label):
    started = time.perf_counter()
    out_dir, features_dir, device = Path(out_dir), Path(features_dir), resolve_device(device)
    model, saved = load_model(model_path, device)
    if saved.get("preshift_trs", 0) != preshift_trs:
        raise ValueError(f"{model_path} was trained with preshift_trs={saved.get('preshift_trs')}, evaluation asks "
                         f"for {preshift_trs}; set fmri.preshift_trs as in training")
    data = load_movie_data(features_dir, [subject_prepared_path(prepared_paths, subject)], modalities, preshift_trs,
                           audio_descriptor=saved.get("audio_descriptor", "audio_logmel_tr.npz"))
    all_baselines = joblib.load(baselines_path)
    if subject not in all_baselines:
        raise ValueError(f"{baselines_path} has no ridge baselines for {subject!r} (has {sorted(all_baselines)}); "
                         "retrain with this subject")
    baselines = all_baselines[subject]
    out_dir.mkdir(parents=True, exist_ok=True)
    codec_status = CodeStream.load(features_dir / "codes.npz").codec_status if "audio" in modalities else None

    encoding = _encoding(model, data, subject, aligned_paths, baselines, group_isc_path, preshift_trs, device,
                         out_dir, n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap,
                         block_trs=bootstrap_block_trs)

    codebook_encoding = None
    if "audio" in modalities:
        codebook_encoding = _codebook_encoding(data, subject, features_dir, model.config.encoder_delays_trs)
        write_tsv(codebook_encoding, out_dir / EVALUATE_OUTPUTS["codebook_encoding"])

    delays = model.config.decoder_delays_trs
    rows = _test_design(data, subject, data.bold[subject], delays)[2]
    targets = decoding_targets(data, features_dir, rows, model.audio_head if "audio" in modalities else None,
                               sound_label)
    views = _decode_all(model, data, subject, targets, baselines, delays, device)
    decoding = pd.DataFrame([row for (name, source), v in tqdm(views.items(), desc="decoding nulls", unit="model")
                             for row in decoding_rows(name, source, v, targets, n_permutations=n_permutations,
                                                      seed=seed, n_bootstrap=n_bootstrap,
                                                      block_trs=bootstrap_block_trs)])
    write_tsv(decoding, out_dir / EVALUATE_OUTPUTS["decoding"])
    _examples(views, targets, n_examples, out_dir)

    intact = {key: {m: score_views(v, targets) for m, v in by_modality.items()} for key, by_modality in views.items()}
    lesions, per_tr = _lesions(model, data, subject, targets, baselines, intact, delays=delays, mode=lesion_mode,
                               device=device, seed=seed, n_bootstrap=n_bootstrap, block_trs=bootstrap_block_trs)
    write_tsv(lesions, out_dir / EVALUATE_OUTPUTS["lesions"])
    write_tsv(per_tr, out_dir / EVALUATE_OUTPUTS["lesions_per_tr"])

    seconds = time.perf_counter() - started
    write_json(out_dir / EVALUATE_OUTPUTS["summary"], {
        "subject": subject, "codec_status": codec_status, "modalities": list(modalities),
        "n_decoding_trs": int(len(rows)), "lesion_mode": lesion_mode, "headline_metric": HEADLINE_METRIC,
        "seed": seed, "n_permutations": n_permutations, "n_bootstrap": n_bootstrap,
        "bootstrap_block_trs": bootstrap_block_trs, "encoding": encoding, "decoding": _decoding_summary(decoding),
        "lesions": _lesion_summary(lesions), "seconds": round(seconds, 1),
        **({} if codebook_encoding is None else {"codebook_encoding": {
            f"{row.features}/{row.roi}": json_number(row.r) for row in codebook_encoding.itertuples()}}),
    })
    log.info("%s: evaluated %d test TRs in %.1f s", subject, len(rows), seconds)
    return {name: out_dir / file for name, file in evaluate_outputs(modalities).items()}


def _sampled_codes(model, outputs, mask, seed):
    """Codes of every real slot drawn from the code model at the decoded descriptor: (n_trs, n_codebooks, width) int64."""
    with torch.no_grad():
        return sample_codes(model.code_log_probs(outputs["audio"]), mask, seed)


def _test_piece(data):
    """``(first, stop)`` scan TRs of the longest piece of the test block (the same for every subject)."""
    return max(data.pieces("test"), key=lambda piece: piece[1] - piece[0])


def _audio_segments(data, excerpt_s):
    """Scan TRs of the longest test piece (``"test"``) and of its first ``excerpt_s`` (``"excerpt"``)."""
    first, stop = _test_piece(data)
    n_excerpt = min(stop - first, math.ceil(excerpt_s / data.tr_s - 1e-9))
    return {"test": np.arange(first, stop), "excerpt": np.arange(first, first + n_excerpt)}


def _segment_wav(out_dir, segment, name):
    """Where a segment's WAV goes (``excerpt/`` for the excerpt) and its key among the returned paths."""
    folder, key = (out_dir, name) if segment == "test" else (out_dir / "excerpt", f"excerpt/{name}")
    return folder / f"{name}.wav", key


def _write_segment_wav(out_dir, segment, name, wave, rate, rows, tr_s, meta):
    path, key = _segment_wav(out_dir, segment, name)
    return key, write_wav(path, wave, rate, **meta, source=name, start_s=rows[0] * tr_s,
                          trs=[int(rows[0]), int(rows[-1]) + 1])


def run_audio_references(*, features_dir, prepared_path, out_dir, preshift_trs=0, stimulus_path=None,
                         start_offset_s=0.0, excerpt_s=30.0, device=None):
    """The sounds every subject's decoded WAVs are scored against, made once for all subjects.

    Writes to ``out_dir``, for the longest piece of the test block and for its first ``excerpt_s``
    seconds (under ``excerpt/``): ``codec_resynthesis.wav`` (the true codes through the frozen codec;
    the ceiling) and, when the stimulus is given, ``original.wav``. Every WAV lasts exactly its TRs
    (``n_trs * tr_s``) and has a JSON sidecar with the codec status; ``references.json`` records the
    TR ranges. The test block is the split's, shared by all subjects.

    Parameters
    ----------
    features_dir : path
        Holds ``codes.npz`` and ``codec.json`` (+ untrained weights) of ``extract-audio``.
    prepared_path : path
        One subject's ``prepare-fmri`` file (for the split).
    out_dir : path
    preshift_trs : int, default=0
    stimulus_path : path, optional
        The movie (``stimulus.movie``), for the original-sound reference.
    start_offset_s : float, default=0.0
        Stimulus time of the first fMRI frame, in seconds.
    excerpt_s : float, default=30.0
        Length of the excerpt decoded for every lesion, in seconds (rounded up to whole TRs).
    device : str, optional

    Returns
    -------
    dict of str to Path
        ``"summary"`` and every WAV by name (excerpt WAVs as ``"excerpt/<name>"``).
    """
    out_dir, features_dir, device = Path(out_dir), Path(features_dir), resolve_device(device)
    data = load_movie_data(features_dir, [prepared_path], ("audio",), preshift_trs)
    codec = load_stage_codec(features_dir / "codec.json", device)
    codes, mask = data.stimulus["audio_codes"], data.stimulus["audio_mask"]
    rate, meta = codec.sample_rate_hz, {"codec_status": codec.status, "codec_id": codec.model_id}
    original = None
    if stimulus_path is not None:
        original = load_audio(stimulus_path, rate, start_offset_s=start_offset_s, n_trs=data.n_trs, tr_s=data.tr_s)
    segments = _audio_segments(data, excerpt_s)
    paths = {}
    for segment, rows in segments.items():
        waves = {"codec_resynthesis": trs_waveform(codec, codes[rows], mask[rows], first_tr=int(rows[0]),
                                                   tr_s=data.tr_s)}
        if original is not None:
            waves["original"] = original[round(rows[0] * data.tr_s * rate) : round((rows[-1] + 1) * data.tr_s * rate)]
        for name, wave in waves.items():
            key, paths[key] = _write_segment_wav(out_dir, segment, name, wave, rate, rows, data.tr_s, meta)
    paths["summary"] = write_json(out_dir / AUDIO_REFERENCE_OUTPUTS["summary"], {
        **meta, **{f"{segment}_trs": [int(rows[0]), int(rows[-1]) + 1] for segment, rows in segments.items()},
        "tr_s": data.tr_s, "sample_rate_hz": rate, "original_reference": original is not None,
    })
    log.info("audio references of TRs %s written to %s (codec: %s)", segments["test"][[0, -1]], out_dir, codec.status)
    return paths


def _read_references(references_dir, data, rate):
    """The segments' TRs and reference WAVs of :func:`run_audio_references`, checked against this subject's split."""
    references_dir = Path(references_dir)
    summary = json.loads((references_dir / AUDIO_REFERENCE_OUTPUTS["summary"]).read_text())
    segments = {segment: np.arange(*summary[f"{segment}_trs"]) for segment in ("test", "excerpt")}
    test = _test_piece(data)
    if summary["test_trs"] != list(test) or summary["sample_rate_hz"] != rate:
        raise ValueError(f"{references_dir}: references of TRs {summary['test_trs']} at {summary['sample_rate_hz']} Hz, "
                         f"but this subject's test block is TRs {list(test)} at {rate} Hz; rerun audio-references "
                         "with the same config and features")
    names = AUDIO_REFERENCES if summary["original_reference"] else AUDIO_REFERENCES[:1]
    waves = {segment: {name: wavfile.read(_segment_wav(references_dir, segment, name)[0])[1] for name in names}
             for segment in segments}
    return segments, waves


def run_decode_audio_eval(subject, *, features_dir, prepared_paths, model_path, references_dir, out_dir,
                          preshift_trs=0, lesion_mode="mean", lesion_inputs=LESION_INPUTS, seed=0, device=None):
    """Decode the test block's sound through the frozen codec and score it against the shared references.

    Writes to ``out_dir``, for the longest piece of the test block: ``decoded_measured_bold.wav``
    (codes decoded from measured BOLD) and copies of the references of :func:`run_audio_references`
    (``codec_resynthesis.wav``, the ceiling, and ``original.wav``); the same for the excerpt under
    ``excerpt/``, with ``reconstructed_predicted_bold.wav`` (the autoencoder's reconstruction) and
    ``lesion-<roi>-<part>_<input>.wav`` for every named ROI and its complement silenced in the
    measured or the predicted BOLD. Every WAV lasts exactly its TRs
    (``n_trs * tr_s``) and has a JSON sidecar with the codec status. ``waveform_scores.tsv`` scores
    every decoded WAV against every reference; ``waveforms.json`` records the TR ranges and codec status.

    Parameters
    ----------
    subject : str
    features_dir : path
        Holds ``codes.npz`` and ``codec.json`` (+ untrained weights) of ``extract-audio``.
    prepared_paths : sequence of path
        ``prepare-fmri`` files; the subject's is picked by its ``subject`` entry.
    model_path : path
        The ``train`` stage's ``autoencoder.pt`` (with an audio head).
    references_dir : path
        The ``audio-references`` folder (same features and split).
    out_dir : path
    preshift_trs : int, default=0
    lesion_mode : {"zero", "mean", "noise"}, default="mean"
    lesion_inputs : sequence of {"measured_bold", "predicted_bold"}, default=LESION_INPUTS (both)
        Where lesions are applied for the excerpt WAVs; each is 2 x n_rois codec decodes of
        the excerpt (the slow part on a CPU).
    seed : int, default=0
    device : str, optional

    Returns
    -------
    dict of str to Path
        ``"scores"``, ``"summary"`` and every WAV by name (excerpt WAVs as ``"excerpt/<name>"``).
    """
    _check_lesion_mode(lesion_mode)
    unknown = set(lesion_inputs) - set(LESION_INPUTS)
    if unknown:
        raise ValueError(f"decode_audio.lesion_inputs must be among {list(LESION_INPUTS)}, got {sorted(unknown)}")
    started = time.perf_counter()
    out_dir, features_dir, device = Path(out_dir), Path(features_dir), resolve_device(device)
    model, saved = load_model(model_path, device)
    if "audio" not in model.config.modalities:
        raise ValueError(f"{model_path} has no audio head (modalities {list(model.config.modalities)}); add audio "
                         "to the config's modalities and retrain before decode-audio")
    data = load_movie_data(features_dir, [subject_prepared_path(prepared_paths, subject)], model.config.modalities,
                           preshift_trs, audio_descriptor=saved.get("audio_descriptor", "audio_logmel_tr.npz"))
    codec = load_stage_codec(features_dir / "codec.json", device)
    rate, meta = codec.sample_rate_hz, {"codec_status": codec.status, "codec_id": codec.model_id, "subject": subject}
    segments, references = _read_references(references_dir, data, rate)
    mask = data.stimulus["audio_mask"]
    stats = _lesion_statistics(model, data, subject, device)
    masks = lesion_masks(data.prepared[subject].roi_names, data.prepared[subject].roi_membership)
    paths, scores = {}, []
    for segment, rows in segments.items():
        slots = mask[rows]
        estimates = {
            "decoded_measured_bold": _sampled_codes(model, decoder_outputs(model, data, subject, rows, device=device),
                                                   slots, seed),
        }
        if segment == "excerpt":
            estimates["reconstructed_predicted_bold"] = _sampled_codes(model, decoder_outputs(
                model, data, subject, rows, source="predicted_bold", device=device), slots, seed)
            for (roi, part), voxels in masks.items():
                silenced, on_layer = _lesioned_inputs(data, subject, voxels, lesion_mode, stats, seed, device)
                lesioned = {"measured_bold": {"bold": silenced}, "predicted_bold": {"lesion": on_layer}}
                for source in lesion_inputs:
                    estimates[f"lesion-{roi}-{part}_{source}"] = _sampled_codes(model, decoder_outputs(
                        model, data, subject, rows, source=source, device=device, **lesioned[source]), slots, seed)
        waves = {name: trs_waveform(codec, c, mask[rows], first_tr=int(rows[0]), tr_s=data.tr_s)
                 for name, c in tqdm(estimates.items(), desc=f"decode {segment} audio", unit="wav")}
        for name, wave in {**references[segment], **waves}.items():
            key, paths[key] = _write_segment_wav(out_dir, segment, name, wave, rate, rows, data.tr_s, meta)
        scores += [{"segment": segment, **row} for row in score_audio_pairs(waves, references[segment], rate)]
    paths["scores"] = write_tsv(pd.DataFrame(scores), out_dir / DECODE_AUDIO_OUTPUTS["scores"])
    paths["summary"] = write_json(out_dir / DECODE_AUDIO_OUTPUTS["summary"], {
        **meta, **{f"{segment}_trs": [int(rows[0]), int(rows[-1]) + 1] for segment, rows in segments.items()},
        "tr_s": data.tr_s, "sample_rate_hz": rate, "lesion_mode": lesion_mode, "seed": seed,
        "original_reference": "original" in references["test"], "seconds": round(time.perf_counter() - started, 1),
    })
    log.info("%s: decoded %d WAVs (codec: %s)", subject, len(paths) - 2, codec.status)
    return paths
