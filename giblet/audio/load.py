"""Audio loading: any container's audio track as mono samples on the fMRI clock."""

from __future__ import annotations

import logging
import math

import av
import numpy as np
import soxr

__all__ = ["load_audio", "resample"]

logger = logging.getLogger(__name__)

_SOXR_QUALITY = "VHQ"


def resample(waveform, from_hz, to_hz):
    """Resample a mono waveform with soxr's very-high-quality filter.

    Parameters
    ----------
    waveform : ndarray, shape (n_samples,), float
    from_hz, to_hz : float
        Input and output sample rates, in hertz.

    Returns
    -------
    ndarray, shape (about n_samples * to_hz / from_hz,), float32
        ``waveform`` itself (as float32) when the rates are equal.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if from_hz == to_hz:
        return waveform
    return soxr.resample(waveform, from_hz, to_hz, quality=_SOXR_QUALITY)


def _open(path):
    try:
        container = av.open(str(path))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: no such file; check stimulus.path") from err
    except av.error.FFmpegError as err:
        raise ValueError(
            f"{path}: cannot read as audio or video ({err}); "
            "give an MP4/M4V/MKV/MOV container or a WAV/FLAC/MP3 file"
        ) from err
    if not container.streams.audio:
        container.close()
        raise ValueError(
            f"{path}: has no audio stream (streams: {[s.type for s in container.streams]}); "
            "give a stimulus file with a sound track"
        )
    return container


def _decode_mono(path, sample_rate_hz):
    """Decode the first audio stream: mono float32 at ``sample_rate_hz`` and its start time in s."""
    with _open(path) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")  # keeps rate and channels
        resampler = soxr.ResampleStream(stream.rate, sample_rate_hz, 1, dtype="float32", quality=_SOXR_QUALITY)
        # times are relative to the container's start (the first video frame of a movie)
        container_start_s = (container.start_time or 0) / av.time_base
        chunks, start_s = [], None
        try:
            for frame in container.decode(stream):
                if start_s is None:
                    start_s = float(frame.pts * frame.time_base) - container_start_s if frame.pts is not None else 0.0
                for planar in to_float.resample(frame):
                    mono = planar.to_ndarray().mean(axis=0, dtype=np.float32)
                    chunks.append(resampler.resample_chunk(mono))
        except av.error.FFmpegError as err:
            raise ValueError(f"{path}: audio stream is corrupt ({err}); re-encode or replace the file") from err
        chunks.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    if start_s is None:
        raise ValueError(f"{path}: audio stream holds no samples; give a stimulus file with a sound track")
    return np.concatenate(chunks), start_s


def load_audio(path, sample_rate_hz, *, start_offset_s=0.0, n_trs=None, tr_s=None):
    """Load a stimulus's sound as mono samples whose sample 0 is the first fMRI frame.

    Any container or audio file FFmpeg reads (MP4/M4V/MKV/MOV, WAV/FLAC/MP3) is
    decoded with PyAV; channels are averaged (amplitude-preserving downmix) and the
    result resampled with soxr (very high quality). The audio's start relative to the
    container's start (first decoded frame's timestamp; encoder delay already removed)
    is honoured, so sample ``i`` of the output is heard at stimulus time
    ``start_offset_s + i / sample_rate_hz``. A negative offset (scan
    starts before the sound) is filled with silence.

    Parameters
    ----------
    path : str or Path
        Stimulus file.
    sample_rate_hz : int
        Output sample rate, in hertz (the codec's rate, e.g. 24000).
    start_offset_s : float, default=0.0
        Stimulus time of the first fMRI frame, in seconds (config ``stimulus.start_offset_s``).
    n_trs : int, optional
        Number of TRs of the scan (all runs). When given, the output is cut to
        exactly ``round(n_trs * tr_s * sample_rate_hz)`` samples and audio that ends
        before the scan is an error.
    tr_s : float, optional
        Repetition time, in seconds; required with ``n_trs``.

    Returns
    -------
    ndarray, shape (n_samples,), float32
        Mono waveform, time from the first fMRI frame.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unreadable file, no audio stream, or audio shorter than the scan
        (the message says by how many seconds and TRs).
    """
    if n_trs is not None and tr_s is None:
        raise ValueError("load_audio: n_trs needs tr_s (repetition time, in seconds)")
    waveform, stream_start_s = _decode_mono(path, sample_rate_hz)
    skip = round((start_offset_s - stream_start_s) * sample_rate_hz)
    waveform = waveform[skip:] if skip >= 0 else np.concatenate([np.zeros(-skip, np.float32), waveform])
    logger.info("%s: %.3f s of audio at %d Hz from stimulus time %.3f s", path, len(waveform) / sample_rate_hz,
                sample_rate_hz, start_offset_s)
    if n_trs is None:
        return waveform
    n_samples = round(n_trs * tr_s * sample_rate_hz)
    missing_s = (n_samples - len(waveform)) / sample_rate_hz
    if missing_s > 0:
        raise ValueError(
            f"{path}: audio after stimulus.start_offset_s={start_offset_s} s lasts "
            f"{len(waveform) / sample_rate_hz:.3f} s "
            f"but the scan lasts {n_trs} TRs x {tr_s} s = {n_trs * tr_s:.3f} s: {missing_s:.3f} s "
            f"({math.ceil(missing_s / tr_s)} TRs) short; lower stimulus.start_offset_s, crop the scan, "
            "or give the full stimulus file"
        )
    return waveform[:n_samples]
