"""Spectral descriptors of the stimulus sound: log-mel per codec frame, log-mel and band envelope per TR.

They describe the *original* sound (the waveform the codec encodes), not its resynthesis.

Clock
-----
Frame ``k`` covers ``[k, k + 1) / frame_rate_hz`` seconds from the first fMRI frame, as in
:mod:`giblet.audio.codes` (``frame_rate_hz = sample_rate_hz / hop_length``, 75 Hz at 24 kHz).
Its spectrum comes from a Hann window of ``n_fft`` samples centred on the frame's centre
(zeros outside the scan), so a sound also leaks into the frame before its onset (1024 samples
at hop 320: -8 dB of a steady sound's level one frame early, -58 dB two frames early, nothing earlier).

Per TR, a frame counts in the TR that contains its centre (:func:`~giblet.audio.codes.tr_frame_spans`),
the rule that gives codes their TR (:func:`~giblet.audio.codes.codes_by_tr`): a TR's descriptor
summarises exactly the frames whose codes it holds. Boundaries are exact fractions, so a 1.5 s TR
at 75 Hz holds 112 and 113 frames in turn and nothing drifts. (``giblet align`` instead splits a
straddling frame between two TRs by time; the two differ by at most one frame in 112.)

Units
-----
dB re digital full scale: ``10 * log10(P + 10 ** (floor_db / 10))``, where ``P`` is the
window-weighted mean square of the samples in the band. The bands are Slaney-scale mel triangles
of peak 1 (transformers' ``mel_filter_bank``, the scale librosa uses by default), which sum to 1
between the first and last centres (103 Hz to 10.8 kHz at 24 kHz), so band powers add up to the
total there: a full-scale sine has ``P = 1/2``, -3 dB, shared by the one or two bands around its
frequency. The envelope's broad bands partition all frequencies. The additive floor keeps silence
at ``floor_db`` instead of ``-inf``; it is absolute, not relative to the loudest sound, so the same
sound gets the same descriptor in any file.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from giblet.audio.codes import tr_frame_spans
from giblet.features import FeatureTable
from giblet.text.tr_grid import tr_run_ids

__all__ = ["audio_descriptors", "frame_tr_means", "sounding_frames", "N_MELS", "FLOOR_DB", "ENVELOPE_EDGES_HZ",
           "SILENCE_BELOW_PEAK_DB"]

N_MELS = 32
FLOOR_DB = -90.0  # per band: about a sine one 16-bit step high; dither, codec noise and digital silence read it
ENVELOPE_EDGES_HZ = (0.0, 250.0, 1000.0, 4000.0)  # broad bands [0, 250), ..., [4000 Hz, Nyquist]
SILENCE_BELOW_PEAK_DB = 50.0  # a frame this far below the film's loudest frame is silence
_CHUNK_FRAMES = 4096  # frames transformed at once (16 MB at n_fft=1024)


def _filters(sample_rate_hz, n_fft, n_mels):
    """Mel triangles then broad-band indicators over the rfft bins: (n_fft // 2 + 1, n_mels + n_bands), float32."""
    from transformers.audio_utils import mel_filter_bank  # here: transformers takes ~1 s to import

    nyquist_hz = sample_rate_hz / 2
    mel = mel_filter_bank(n_fft // 2 + 1, n_mels, 0.0, nyquist_hz, sample_rate_hz, norm=None, mel_scale="slaney")
    freqs_hz = np.fft.rfftfreq(n_fft, 1 / sample_rate_hz)
    band = np.searchsorted(ENVELOPE_EDGES_HZ, freqs_hz, side="right") - 1
    broad = band[:, None] == np.arange(len(ENVELOPE_EDGES_HZ))
    return np.concatenate([mel, broad], axis=1).astype(np.float32)


def _band_powers(waveform, hop_length, n_fft, filters):
    """Mean-square power per frame and filter: (ceil(n_samples / hop_length), n_filters), float32.

    The one-sided power spectrum is scaled so that its bins add up to the window-weighted
    mean square of the samples (Parseval).
    """
    n_frames = -(-len(waveform) // hop_length)
    left = (n_fft - hop_length) // 2  # window k starts here before frame k
    padded = np.zeros((n_frames - 1) * hop_length + n_fft, dtype=np.float32)
    padded[left : left + len(waveform)] = waveform  # fits: left + n_frames * hop_length <= len(padded)
    windows = sliding_window_view(padded, n_fft)[::hop_length]
    taper = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    scale = np.full(n_fft // 2 + 1, 2.0 / (n_fft * np.sum(taper.astype(np.float64) ** 2)), dtype=np.float32)
    scale[[0, -1]] /= 2  # DC and Nyquist appear once in the full spectrum
    powers = np.empty((n_frames, filters.shape[1]), dtype=np.float32)
    for start in range(0, n_frames, _CHUNK_FRAMES):
        spectrum = scipy.fft.rfft(windows[start : start + _CHUNK_FRAMES] * taper, axis=1)
        powers[start : start + _CHUNK_FRAMES] = (np.abs(spectrum) ** 2 * scale) @ filters
    return powers


def _db(power, floor_db):
    """Power in dB, floored at ``floor_db`` (in float32 the floor's own power rounds: silence read -80.00001 dB)."""
    return np.maximum(10 * np.log10(power + 10 ** (floor_db / 10)), np.float32(floor_db)).astype(np.float32)


def frame_tr_means(values, tr_s, frame_rate_hz, n_trs):
    """Mean of frame values over each TR's frames (each frame in the TR containing its centre).

    Parameters
    ----------
    values : ndarray, shape (n_frames, n_features), float
        Frame ``k`` covers ``[k, k + 1) / frame_rate_hz`` seconds from the first fMRI frame.
    tr_s : float
        Repetition time, in seconds.
    frame_rate_hz : float
        Frame rate, in hertz.
    n_trs : int

    Returns
    -------
    ndarray, shape (n_trs, n_features), float64
        Row ``t`` averages frames ``tr_frame_spans(n_trs, tr_s, frame_rate_hz)[t]``.
    """
    spans = tr_frame_spans(n_trs, tr_s, frame_rate_hz)
    if spans[-1, 1] > len(values):
        raise ValueError(
            f"{n_trs} TRs of {tr_s} s need {spans[-1, 1]} frames at {frame_rate_hz} Hz but values has "
            f"{len(values)}; give audio that covers the scan"
        )
    cumulative = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0, dtype=np.float64)])
    return (cumulative[spans[:, 1]] - cumulative[spans[:, 0]]) / (spans[:, 1] - spans[:, 0])[:, None]


def sounding_frames(log_mel_db, below_peak_db=SILENCE_BELOW_PEAK_DB):
    """Which frames sound: their level (the power summed over mel bands) within ``below_peak_db`` of the loudest frame's.

    Parameters
    ----------
    log_mel_db : ndarray, shape (n_frames, n_mels), float
        Per-frame log-mel in dB (``audio_logmel_frames.npz``).
    below_peak_db : float, default=SILENCE_BELOW_PEAK_DB
        Frames quieter than the loudest by more than this are silence (on the demo: its silences
        and hiss lie 55-75 dB below the peak, its speech, music and noise within 45 dB).

    Returns
    -------
    ndarray, shape (n_frames,), bool
    """
    power = np.power(10.0, np.asarray(log_mel_db, dtype=np.float64) / 10.0).sum(axis=1)
    level_db = 10.0 * np.log10(power)
    return level_db > level_db.max() - below_peak_db


def audio_descriptors(waveform, sample_rate_hz, hop_length, timing, *, frame_runs=None, n_mels=N_MELS, n_fft=1024,
                      floor_db=FLOOR_DB):
    """Log-mel spectrogram per codec frame, and log-mel and band envelope per TR.

    Parameters
    ----------
    waveform : ndarray, shape (n_samples,), float32
        Mono sound at ``sample_rate_hz``, sample 0 at the first fMRI frame (what
        :func:`~giblet.audio.load.load_audio` returns), covering ``timing.n_trs * timing.tr_s`` seconds.
    sample_rate_hz : int
        Sample rate, in hertz (the codec's, 24000).
    hop_length : int
        Samples per codec frame (320 at 24 kHz: 75 Hz frames).
    timing : giblet.timing.ScanTiming
        The scan's TRs and runs (which label the per-TR tables' ``runs``); ``start_offset_s`` is not used.
    frame_runs : ndarray of int, shape (n_frames,), optional
        Run of each frame, ``n_frames = ceil(n_samples / hop_length)``.
    n_mels : int, default=32
        Slaney mel bands from 0 Hz to Nyquist.
    n_fft : int, default=1024
        Window and FFT length, in samples (42.7 ms at 24 kHz).
    floor_db : float, default=-90.0
        Additive power floor, in dB re full scale (see the module docstring).

    Returns
    -------
    dict of str to FeatureTable
        ``"logmel_frames"``: (n_frames, n_mels) float32 dB at frame start times, names
        ``mel{i}_{centre}hz``. ``"logmel_tr"``: (n_trs, n_mels), the mean of each TR's frames,
        same names, TR start times. ``"envelope_tr"``: (n_trs, n_bands + 2) dB,
        ``band_{lo}_{hi}hz_db`` = the mean power of each broad band of ``ENVELOPE_EDGES_HZ`` over
        the TR in dB (log of mean, not mean of log), ``level_db`` = the same for all
        frequencies, ``level_sd_db`` = the standard deviation over the TR's frames of the
        frame level in dB (how much the loudness fluctuates). ``meta`` gives the settings, units
        and ``band_centres_hz``.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or n_fft < hop_length:
        raise ValueError(f"need a mono waveform (n_samples,) and n_fft >= hop_length, got waveform "
                         f"{waveform.shape}, n_fft={n_fft}, hop_length={hop_length}")
    tr_s, n_trs = timing.tr_s, timing.n_trs
    tr_runs = tr_run_ids(n_trs, timing.run_n_trs)
    frame_rate_hz = sample_rate_hz / hop_length
    nyquist_hz = sample_rate_hz / 2
    powers = _band_powers(waveform, hop_length, n_fft, _filters(sample_rate_hz, n_fft, n_mels))
    mel_power, broad_power = powers[:, :n_mels], powers[:, n_mels:].astype(np.float64)
    total_power = broad_power.sum(axis=1, keepdims=True)

    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    mels = np.linspace(hertz_to_mel(0.0, "slaney"), hertz_to_mel(nyquist_hz, "slaney"), n_mels + 2)
    centres_hz = mel_to_hertz(mels, "slaney")[1:-1]
    meta = {"view": "log_mel", "source": "original sound, before the codec", "units": "dB re full scale",
            "floor_db": floor_db, "sample_rate_hz": sample_rate_hz, "hop_length": hop_length, "n_fft": n_fft,
            "frame_rate_hz": frame_rate_hz, "mel_scale": "slaney", "band_centres_hz": centres_hz.round(1).tolist()}
    tr_meta = {**meta, "tr_s": tr_s, "tr_frames": "frames whose centre lies in the TR (as codes_by_tr)"}
    mel_names = tuple(f"mel{i:02d}_{c:.0f}hz" for i, c in enumerate(centres_hz))
    log_mel = _db(mel_power, floor_db)
    frame_level_db = _db(total_power, floor_db).astype(np.float64)
    tr_times_s = np.arange(n_trs) * tr_s

    def tr_mean(values):
        return frame_tr_means(values, tr_s, frame_rate_hz, n_trs)

    level_sd_db = np.sqrt(np.maximum(tr_mean(frame_level_db**2) - tr_mean(frame_level_db) ** 2, 0))
    edges = [*ENVELOPE_EDGES_HZ, nyquist_hz]
    envelope_names = tuple(f"band_{lo:.0f}_{hi:.0f}hz_db" for lo, hi in zip(edges[:-1], edges[1:]))
    envelope = np.concatenate([_db(tr_mean(broad_power), floor_db), _db(tr_mean(total_power), floor_db),
                               level_sd_db.astype(np.float32)], axis=1)
    return {
        "logmel_frames": FeatureTable(log_mel, np.arange(len(log_mel)) / frame_rate_hz, mel_names, "continuous",
                                      frame_runs, meta),
        "logmel_tr": FeatureTable(tr_mean(log_mel).astype(np.float32), tr_times_s, mel_names, "continuous",
                                  tr_runs, tr_meta),
        "envelope_tr": FeatureTable(envelope, tr_times_s, (*envelope_names, "level_db", "level_sd_db"),
                                    "continuous", tr_runs, {**tr_meta, "view": "band_envelope",
                                                            "envelope_edges_hz": edges}),
    }
