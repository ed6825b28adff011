"""Decoded codes back to sound: exact-length WAVs through the frozen codec.

A stretch of TRs ``[first_tr, first_tr + n_trs)`` lasts exactly ``n_trs * tr_s`` seconds. Its
frames are those whose centre lies in it (112 or 113 per 1.5 s TR at 75 Hz, see
:mod:`giblet.audio.codes`), so the decoded frames can start or end half a frame off the TR
grid; :func:`trs_waveform` cuts (or zero-pads) the decoded sound to the stretch's exact samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

from giblet.audio.codes import stream_from_trs
from giblet.io import atomic_path, write_json

__all__ = ["trs_waveform", "write_wav"]


def trs_waveform(codec, codes, mask, *, first_tr, tr_s):
    """Decode per-TR codes to exactly the stretch's duration.

    Parameters
    ----------
    codec : giblet.audio.EncodecCodec
        The frozen codec that made the true codes (``load_stage_codec``).
    codes : ndarray, shape (n_trs, n_codebooks, width), int
        Code indices per TR slot (true, decoded or lesioned); slots where ``mask`` is False are ignored.
    mask : ndarray, shape (n_trs, width), bool
        ``codes_by_tr``'s mask of these TRs.
    first_tr : int
        Scan index of ``codes[0]`` (from the first fMRI frame of the first run).
    tr_s : float
        Repetition time, in seconds.

    Returns
    -------
    ndarray, shape (round(n_trs * tr_s * sample_rate_hz),), float32
        At ``codec.sample_rate_hz``; sample 0 is heard at ``first_tr * tr_s`` seconds.
    """
    codes = np.where(np.asarray(mask)[:, None, :], codes, 0)
    stream = stream_from_trs(codes, mask, tr_s=tr_s, frame_rate_hz=codec.frame_rate_hz, first_tr=first_tr)
    decoded = codec.decode(stream)
    rate = codec.sample_rate_hz
    start, n_samples = round(first_tr * tr_s * rate), round(len(codes) * tr_s * rate)
    offset = stream.first_frame * codec.hop_length - start  # decoded sample 0 relative to the stretch's start
    out = np.zeros(n_samples, dtype=np.float32)
    lo, hi = max(offset, 0), min(offset + len(decoded), n_samples)
    out[lo:hi] = decoded[lo - offset : hi - offset]
    return out


def write_wav(path, waveform, sample_rate_hz, **meta):
    """Write a float32 WAV atomically, with a JSON sidecar (same stem) holding ``meta`` and the length."""
    path = Path(path)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, int(sample_rate_hz), np.asarray(waveform, dtype=np.float32))
    write_json(path.with_suffix(".json"), {**meta, "sample_rate_hz": int(sample_rate_hz),
                                           "n_samples": int(len(waveform)),
                                           "duration_s": len(waveform) / sample_rate_hz})
    return path
