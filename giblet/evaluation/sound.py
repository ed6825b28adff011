"""The sound stages: ``audio-references`` (the codec's resynthesis and the original sound of the test
block, shared by all subjects) and ``decode-audio`` (one subject's decoded and lesioned sound through
the frozen codec, scored against them)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.io import wavfile
from tqdm.auto import tqdm

from giblet.audio.code_sampling import sample_codes
from giblet.audio.load import load_audio
from giblet.audio.metrics import score_audio_pairs
from giblet.audio.stage import load_stage_codec
from giblet.compute import resolve_device
from giblet.evaluation._tables import write_tsv
from giblet.evaluation.decoding import decoder_outputs
from giblet.evaluation.lesions import lesion_masks, lesion_statistics, lesioned_inputs
from giblet.evaluation.waveforms import trs_waveform, write_wav
from giblet.fmri.prepared import subject_prepared_path
from giblet.io import write_json
from giblet.outputs import AUDIO_REFERENCE_OUTPUTS, AUDIO_REFERENCES, DECODE_AUDIO_OUTPUTS
from giblet.training.data import load_movie_data
from giblet.training.stage import load_model

__all__ = ["run_audio_references", "run_decode_audio_eval"]

log = logging.getLogger(__name__)


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


def run_decode_audio_eval(subject, *, features_dir, prepared_paths, model_path, references_dir, out_dir, config):
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
    config : EvaluateConfig
        Its ``preshift_trs``, ``lesion_mode``, ``lesion_inputs`` (where lesions are applied for the
        excerpt WAVs; each is 2 x n_rois codec decodes of the excerpt, the slow part on a CPU),
        ``seed`` (the sampled codes) and ``device``.

    Returns
    -------
    dict of str to Path
        ``"scores"``, ``"summary"`` and every WAV by name (excerpt WAVs as ``"excerpt/<name>"``).
    """
    started = time.perf_counter()
    out_dir, features_dir, device = Path(out_dir), Path(features_dir), resolve_device(config.device)
    preshift_trs, seed = config.preshift_trs, config.seed
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
    stats = lesion_statistics(model, data, subject, device)
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
                silenced, on_layer = lesioned_inputs(data, subject, voxels, config.lesion_mode, stats, seed, device)
                lesioned = {"measured_bold": {"bold": silenced}, "predicted_bold": {"lesion": on_layer}}
                for source in config.lesion_inputs:
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
        "tr_s": data.tr_s, "sample_rate_hz": rate, "lesion_mode": config.lesion_mode, "seed": seed,
        "original_reference": "original" in references["test"], "seconds": round(time.perf_counter() - started, 1),
    })
    log.info("%s: decoded %d WAVs (codec: %s)", subject, len(paths) - 2, codec.status)
    return paths
