"""Waveform similarity metrics for decoded audio.

Every metric takes ``(reference, estimate, sample_rate_hz)``: two mono waveforms of
the same length, shape (n_samples,), at ``sample_rate_hz`` hertz. SI-SDR and STOI
are higher-is-better; the spectral distances are lower-is-better (0 = identical).
"""

from __future__ import annotations

import numpy as np
import pystoi
import torch
from transformers.audio_utils import mel_filter_bank

__all__ = ["si_sdr", "log_mel_distance", "multi_resolution_stft_distance", "stoi", "AUDIO_METRICS", "score_audio"]

_EPS = 1e-8
_STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) as in Parallel WaveGAN


def _check_pair(reference, estimate):
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 1 or reference.shape != estimate.shape:
        raise ValueError(
            f"reference {reference.shape} and estimate {estimate.shape} must be mono waveforms of equal length; "
            "decode both on the same frames (stream_from_trs over the same TRs)"
        )
    return reference, estimate


def _magnitude(waveform, n_fft, hop):
    """|STFT|, shape (n_frames, n_fft // 2 + 1), Hann window, centred frames."""
    spectrum = torch.stft(torch.from_numpy(waveform), n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64),
                          center=True, return_complex=True)
    return spectrum.abs().T.numpy()


def si_sdr(reference, estimate, sample_rate_hz=None):
    """Scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), in dB.

    Both signals are made zero-mean; ``sample_rate_hz`` is unused (uniform signature).

    Returns
    -------
    float
        Higher is better; about +80 dB or more when ``estimate`` is a scaled copy of ``reference``.
    """
    reference, estimate = _check_pair(reference, estimate)
    reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    target = (estimate @ reference) / (reference @ reference + _EPS) * reference
    noise = estimate - target
    return float(10 * np.log10((target @ target + _EPS) / (noise @ noise + _EPS)))


def log_mel_distance(reference, estimate, sample_rate_hz, n_mels=80, n_fft=1024, hop=256):
    """Mean absolute difference of natural-log mel magnitude spectrograms.

    Parameters
    ----------
    reference, estimate : ndarray, shape (n_samples,)
    sample_rate_hz : float
    n_mels : int, default=80
    n_fft, hop : int, default=1024, 256
        STFT size and hop, in samples.

    Returns
    -------
    float
        Lower is better, in nepers (0 = identical).
    """
    reference, estimate = _check_pair(reference, estimate)
    mel = mel_filter_bank(n_fft // 2 + 1, n_mels, 0.0, sample_rate_hz / 2, int(sample_rate_hz), norm="slaney",
                          mel_scale="slaney")
    log_ref, log_est = (np.log(_magnitude(x, n_fft, hop) @ mel + 1e-5) for x in (reference, estimate))
    return float(np.abs(log_ref - log_est).mean())


def multi_resolution_stft_distance(reference, estimate, sample_rate_hz=None):
    """Spectral convergence plus log-magnitude L1, averaged over three STFT resolutions.

    Resolutions (n_fft, hop) are (512, 128), (1024, 256), (2048, 512) samples
    (Yamamoto et al. 2020); ``sample_rate_hz`` is unused (uniform signature).

    Returns
    -------
    float
        Lower is better (0 = identical).
    """
    reference, estimate = _check_pair(reference, estimate)
    total = 0.0
    for n_fft, hop in _STFT_RESOLUTIONS:
        mag_ref, mag_est = _magnitude(reference, n_fft, hop), _magnitude(estimate, n_fft, hop)
        convergence = np.linalg.norm(mag_ref - mag_est) / (np.linalg.norm(mag_ref) + _EPS)
        log_l1 = np.abs(np.log(mag_ref + 1e-5) - np.log(mag_est + 1e-5)).mean()
        total += convergence + log_l1
    return float(total / len(_STFT_RESOLUTIONS))


def stoi(reference, estimate, sample_rate_hz):
    """Short-time objective intelligibility (Taal et al. 2011) via pystoi, in [0, 1]; higher is better."""
    reference, estimate = _check_pair(reference, estimate)
    return float(pystoi.stoi(reference, estimate, sample_rate_hz, extended=False))


AUDIO_METRICS = {
    "si_sdr_db": si_sdr,
    "log_mel_distance": log_mel_distance,
    "mrstft_distance": multi_resolution_stft_distance,
    "stoi": stoi,
}


def score_audio(reference, estimate, sample_rate_hz):
    """All :data:`AUDIO_METRICS` of ``estimate`` against ``reference``, as a dict of floats."""
    return {name: metric(reference, estimate, sample_rate_hz) for name, metric in AUDIO_METRICS.items()}
