"""The ``extract-audio`` stage (stimulus -> codes and views) and its inverse (codes -> WAV)."""

from __future__ import annotations

import json
import glob
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from transformers import EncodecModel

from giblet.config import from_section
from giblet.audio.codec import CODEC_FALLBACKS, PRETRAINED_STATUS, CodecUnavailableError, EncodecCodec
from giblet.audio.codes import CodeStream, tr_frame_spans
from giblet.audio.descriptors import audio_descriptors
from giblet.audio.load import load_audio
from giblet.audio.views import code_histograms, pooled_embeddings, quantized_latent
from giblet.io import atomic_path, save_npz, write_json
from giblet.outputs import AUDIO_OUTPUTS, UNTRAINED_CODEC_DIR
from giblet.text.tr_grid import tr_run_ids

__all__ = ["CodecConfig", "run_extract_audio", "load_stage_codec", "run_decode_audio"]

logger = logging.getLogger(__name__)

DIGITAL_SILENCE_PEAK = 2.0**-15  # |sample| below one 16-bit step (-90 dBFS) is digital silence


@dataclass(frozen=True)
class CodecConfig:
    """The frozen EnCodec codec of ``extract-audio`` (the config's ``codec`` section).

    Attributes
    ----------
    model : str, default="facebook/encodec_24khz"
        Hub id or local directory of EnCodec weights.
    bandwidth_kbps : float, default=6.0
        Codec bandwidth; 6 kbps = 8 codebooks.
    fallback : {None, "untrained"}, default=None
        What to do when the weights cannot be loaded (None: fail).
    fit_max_frames : int, default=20000
        Frames used to adapt an untrained codec: latent statistics and k-means.
    chunk_s, context_s : float, default=60.0, 3.0
        Encoder/decoder chunk and left-context lengths, in seconds.
    """

    model: str = "facebook/encodec_24khz"
    bandwidth_kbps: float = 6.0
    fallback: str | None = None
    fit_max_frames: int = 20_000
    chunk_s: float = 60.0
    context_s: float = 3.0

    def __post_init__(self):
        if self.fallback not in (None, *CODEC_FALLBACKS):
            raise ValueError(f"codec.fallback must be null or one of {list(CODEC_FALLBACKS)}, got {self.fallback!r}")

    @classmethod
    def from_dict(cls, section):
        """The codec from the ``codec`` section of a validated config (unknown keys are an error)."""
        return from_section(cls, "codec", section)


def _load_codec(config, seed, device):
    codec_kwargs = {"bandwidth_kbps": config.bandwidth_kbps, "device": device, "chunk_s": config.chunk_s,
                    "context_s": config.context_s}
    try:
        return EncodecCodec.from_pretrained(config.model, **codec_kwargs)
    except CodecUnavailableError as err:
        if config.fallback is None:
            raise
        logger.warning("%s; codec.fallback=%s: using the untrained codec (%s)", err, config.fallback,
                       "waveforms are not perceptually meaningful")
        return EncodecCodec.untrained(seed=seed, **codec_kwargs)


def _silent_frames(path, waveform, hop_length):
    """Which codec frames are digitally silent; a wholly silent soundtrack is an error.

    Returns
    -------
    ndarray, shape (ceil(n_samples / hop_length),), bool
    """
    peaks = np.maximum.reduceat(np.abs(waveform), np.arange(0, len(waveform), hop_length))
    if peaks.max() < DIGITAL_SILENCE_PEAK:
        raise ValueError(
            f"{path}: audio stream is digitally silent (peak |sample| {peaks.max():.2g} < {DIGITAL_SILENCE_PEAK:.2g} "
            "over the whole scan), so its codes would be noise; check the file's audio track "
            f"(ffmpeg -i {path} -af volumedetect -f null -) or drop 'audio' from modalities"
        )
    return peaks < DIGITAL_SILENCE_PEAK


def _save_model_dir(model, path):
    """``save_pretrained`` into a temporary directory, then move it onto ``path`` (a killed run's are removed)."""
    for stale in path.parent.glob(f"{glob.escape(f'.{path.name}.partial.')}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial.")
    try:
        model.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_extract_audio(stimulus_path, out_dir, timing, config, *, seed=0, device="auto"):
    """Encode a stimulus's sound to EnCodec codes on the scan's clock and write its views and descriptors.

    The descriptors (:func:`~giblet.audio.descriptors.audio_descriptors`: log-mel and band
    envelope) are of the loaded sound itself, not of the codec's resynthesis, on the same frames and TRs.

    Parameters
    ----------
    stimulus_path : str or Path
        Movie or audio file (``stimulus.path``).
    out_dir : str or Path
        Output directory; files are named in :data:`AUDIO_OUTPUTS`.
    timing : giblet.timing.ScanTiming
        The scan's TRs and runs (which label ``runs`` of the feature tables) and the stimulus
        time of the first fMRI frame (one value); the audio must cover ``n_trs * tr_s`` seconds.
    config : CodecConfig
        The codec (``codec`` section).
    seed : int, default=0
        Seeds the untrained codec's weights and its codebook k-means.
    device : str, default="auto"

    Returns
    -------
    dict of str to Path
        Keys of :data:`AUDIO_OUTPUTS` (and ``"codec_weights"`` for an untrained codec).
    """
    out_dir = Path(out_dir)
    tr_s, n_trs, start_offset_s = timing.tr_s, timing.n_trs, timing.start_offset_s
    tr_runs = tr_run_ids(n_trs, timing.run_n_trs)
    codec = _load_codec(config, seed, device)
    waveform = load_audio(stimulus_path, codec.sample_rate_hz, start_offset_s=start_offset_s, n_trs=n_trs, tr_s=tr_s)
    silent = _silent_frames(stimulus_path, waveform, codec.hop_length)
    latents = codec.latents(waveform, codec.sample_rate_hz)
    paths = {name: out_dir / file for name, file in AUDIO_OUTPUTS.items()}
    if codec.status != PRETRAINED_STATUS:
        latents = codec.fit_untrained(latents, max_frames=config.fit_max_frames, seed=seed)
        paths["codec_weights"] = out_dir / UNTRAINED_CODEC_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_model_dir(codec.model, paths["codec_weights"])
    elif config.fallback is not None:  # the workflow declares the fallback's folder: it holds nothing this time
        shutil.rmtree(out_dir / UNTRAINED_CODEC_DIR, ignore_errors=True)
        (out_dir / UNTRAINED_CODEC_DIR).mkdir(parents=True)
    stream = codec.quantize(latents)
    vectors = codec.codebook_vectors()
    spans = tr_frame_spans(n_trs, tr_s, codec.frame_rate_hz)
    # the run holding each frame's start, as giblet align reads it (a frame can straddle a run boundary)
    run_starts_s = np.flatnonzero(np.diff(tr_runs, prepend=-1)) * tr_s
    frame_runs = np.searchsorted(run_starts_s, stream.times_s, side="right") - 1

    stream.save(paths["codes"], tr_frame_spans=spans, tr_s=np.asarray(tr_s))
    quantized_latent(stream, vectors, runs=frame_runs).save(paths["frames"])
    pooled_embeddings(stream, vectors, tr_s, n_trs, runs=tr_runs).save(paths["pooled"])
    code_histograms(stream, codec.codebook_size, tr_s, n_trs, runs=tr_runs).save(paths["histograms"])
    descriptors = audio_descriptors(waveform, codec.sample_rate_hz, codec.hop_length, timing, frame_runs=frame_runs)
    for name, table in descriptors.items():
        table.save(paths[name])
    save_npz(paths["codebooks"], vectors=vectors, meta=np.asarray(json.dumps(stream.meta, sort_keys=True)))
    write_json(paths["codec"], {
        **codec.describe(),
        "stimulus_path": str(stimulus_path),
        "start_offset_s": start_offset_s,
        "tr_s": tr_s,
        "n_trs": n_trs,
        "n_frames": stream.n_frames,
        "frames_per_tr": tr_s * codec.frame_rate_hz,
        "digital_silence_s": float(silent.sum() / codec.frame_rate_hz),
        "seed": seed,
        "weights_dir": UNTRAINED_CODEC_DIR if "codec_weights" in paths else None,
    })
    logger.info("%s: %d frames x %d codebooks for %d TRs (codec: %s)", out_dir, stream.n_frames,
                stream.n_codebooks, n_trs, codec.status)
    if silent.any():  # films have silences; a long one may also be an audio dropout
        starts, stops = np.flatnonzero(np.diff(np.r_[0, silent, 0])).reshape(-1, 2).T
        longest = np.argmax(stops - starts)
        logger.info("%s: %.1f s of the scan's %.1f s are digitally silent (|sample| < %.2g), the longest stretch "
                    "%.1f s from %.1f s", stimulus_path, silent.sum() / codec.frame_rate_hz, n_trs * tr_s,
                    DIGITAL_SILENCE_PEAK, (stops - starts)[longest] / codec.frame_rate_hz,
                    starts[longest] / codec.frame_rate_hz)
    return paths


def load_stage_codec(codec_json, device="auto"):
    """Rebuild the codec that :func:`run_extract_audio` used, from its ``codec.json``.

    Parameters
    ----------
    codec_json : str or Path
        The stage's ``codec.json``; an untrained codec is read from the weights
        directory beside it.
    device : str, default="auto"

    Returns
    -------
    EncodecCodec
    """
    codec_json = Path(codec_json)
    info = json.loads(codec_json.read_text())
    kwargs = {key: info[key] for key in ("bandwidth_kbps", "chunk_s", "context_s", "crossfade_s")}
    if info["weights_dir"] is None:
        return EncodecCodec.from_pretrained(info["codec_id"], device=device, **kwargs)
    model = EncodecModel.from_pretrained(codec_json.parent / info["weights_dir"])
    return EncodecCodec(model, model_id=info["codec_id"], status=info["codec_status"], device=device, **kwargs)


def run_decode_audio(codes, wav_path, *, codec_json, device="auto"):
    """Decode a code stream to a float32 WAV of exactly ``n_frames * hop_length`` samples.

    Parameters
    ----------
    codes : CodeStream or str or Path
        Codes, or an ``.npz`` written by :meth:`CodeStream.save` (e.g. the stage's ``codes.npz``).
    wav_path : str or Path
        Output WAV; a JSON sidecar (same stem) records the codec status and start time.
    codec_json : str or Path
        ``codec.json`` of the :func:`run_extract_audio` run that made the codes.
    device : str, default="auto"

    Returns
    -------
    Path
        ``wav_path``. Sample 0 is heard at ``stream.times_s[0]`` seconds from the first fMRI frame.
    """
    stream = codes if isinstance(codes, CodeStream) else CodeStream.load(codes)
    codec = load_stage_codec(codec_json, device)
    waveform = codec.decode(stream)
    wav_path = Path(wav_path)
    with atomic_path(wav_path) as tmp:
        wavfile.write(tmp, codec.sample_rate_hz, waveform)
    write_json(wav_path.with_suffix(".json"), {
        **stream.meta,
        "sample_rate_hz": codec.sample_rate_hz,
        "n_samples": len(waveform),
        "start_s": stream.first_frame / stream.frame_rate_hz,
    })
    return wav_path
