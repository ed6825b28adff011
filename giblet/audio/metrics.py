"""Waveform similarity metrics for decoded audio.

Every metric takes ``(reference, estimate, sample_rate_hz)``: two mono waveforms of
the same length, shape (n_samples,), at ``sample_rate_hz`` hertz. SI-SDR and STOI
are higher-is-better; the spectral distances are lower-is-better (0 = identical).
"""

from __future__ import annotations

import numpy as np
import pystoi
import pystoi.utils
import torch
from transformers.audio_utils import mel_filter_bank

__all__ = ["si_sdr", "log_mel_distance", "multi_resolution_stft_distance", "stoi", "AUDIO_METRICS", "score_audio",
           "score_audio_pairs"]

_EPS = 1e-8
_STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) as in Parallel WaveGAN
_STOI_RATE_HZ = 10_000  # pystoi resamples to it


def _check_pair(reference, estimate):
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 1 or reference.shape != estimate.shape:
        raise ValueError(
            f"reference {reference.shape} and estimate {estimate.shape} must be mono waveforms of equal length; "
            "decode both on the same frames (stream_from_trs over the same TRs)"
        )
    return reference, estimate


class _Signal:
    """A waveform (float64) and what the metrics derive from it, each computed once however many pairs it is in."""

    def __init__(self, waveform):
        self.waveform = waveform
        self._derived = {}

    def _once(self, key, compute):
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def magnitude(self, n_fft, hop):
        """|STFT|, shape (n_frames, n_fft // 2 + 1), Hann window, centred frames; the transform in float32
        (twice as fast; a relative error of ~1e-7 on distances of ~1e-1), the magnitudes returned in float64."""
        def compute():
            window = torch.hann_window(n_fft, dtype=torch.float32)
            spectrum = torch.stft(torch.from_numpy(self.waveform.astype(np.float32)), n_fft, hop, window=window,
                                  center=True, return_complex=True)
            return spectrum.abs().T.numpy().astype(np.float64)
        return self._once(("magnitude", n_fft, hop), compute)

    def log_magnitude(self, n_fft, hop):
        return self._once(("log_magnitude", n_fft, hop), lambda: np.log(self.magnitude(n_fft, hop) + 1e-5))

    def log_mel(self, sample_rate_hz, n_mels, n_fft, hop):
        def compute():
            mel = mel_filter_bank(n_fft // 2 + 1, n_mels, 0.0, sample_rate_hz / 2, int(sample_rate_hz),
                                  norm="slaney", mel_scale="slaney")
            return np.log(self.magnitude(n_fft, hop) @ mel + 1e-5)
        return self._once(("log_mel", sample_rate_hz, n_mels, n_fft, hop), compute)

    def at_stoi_rate(self, sample_rate_hz):
        """The waveform resampled as pystoi does (its own filter) to its 10 kHz."""
        return self._once(("stoi", sample_rate_hz),
                          lambda: pystoi.utils.resample_oct(self.waveform, _STOI_RATE_HZ, sample_rate_hz))


def _signals(reference, estimate):
    return tuple(_Signal(x) for x in _check_pair(reference, estimate))


def _si_sdr(reference, estimate, sample_rate_hz=None):
    reference, estimate = reference.waveform - reference.waveform.mean(), estimate.waveform - estimate.waveform.mean()
    target = (estimate @ reference) / (reference @ reference + _EPS) * reference
    noise = estimate - target
    return float(10 * np.log10((target @ target + _EPS) / (noise @ noise + _EPS)))


def _log_mel(reference, estimate, sample_rate_hz, n_mels=80, n_fft=1024, hop=256):
    log_ref, log_est = (x.log_mel(sample_rate_hz, n_mels, n_fft, hop) for x in (reference, estimate))
    return float(np.abs(log_ref - log_est).mean())


def _mrstft(reference, estimate, sample_rate_hz=None):
    total = 0.0
    for n_fft, hop in _STFT_RESOLUTIONS:
        mag_ref, mag_est = reference.magnitude(n_fft, hop), estimate.magnitude(n_fft, hop)
        convergence = np.linalg.norm(mag_ref - mag_est) / (np.linalg.norm(mag_ref) + _EPS)
        log_l1 = np.abs(reference.log_magnitude(n_fft, hop) - estimate.log_magnitude(n_fft, hop)).mean()
        total += convergence + log_l1
    return float(total / len(_STFT_RESOLUTIONS))


def _stoi(reference, estimate, sample_rate_hz):
    pair = (x.at_stoi_rate(sample_rate_hz) for x in (reference, estimate))
    return float(pystoi.stoi(*pair, _STOI_RATE_HZ, extended=False))


def si_sdr(reference, estimate, sample_rate_hz=None):
    """Scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), in dB.

    Both signals are made zero-mean; ``sample_rate_hz`` is unused (uniform signature).

    Returns
    -------
    float
        Higher is better; about +80 dB or more when ``estimate`` is a scaled copy of ``reference``.
    """
    return _si_sdr(*_signals(reference, estimate))


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
    return _log_mel(*_signals(reference, estimate), sample_rate_hz, n_mels, n_fft, hop)


def multi_resolution_stft_distance(reference, estimate, sample_rate_hz=None):
    """Spectral convergence plus log-magnitude L1, averaged over three STFT resolutions.

    Resolutions (n_fft, hop) are (512, 128), (1024, 256), (2048, 512) samples
    (Yamamoto et al. 2020); ``sample_rate_hz`` is unused (uniform signature).

    Returns
    -------
    float
        Lower is better (0 = identical).
    """
    return _mrstft(*_signals(reference, estimate))


def stoi(reference, estimate, sample_rate_hz):
    """Short-time objective intelligibility (Taal et al. 2011) via pystoi, in [0, 1]; higher is better."""
    return _stoi(*_signals(reference, estimate), sample_rate_hz)


AUDIO_METRICS = {
    "si_sdr_db": si_sdr,
    "log_mel_distance": log_mel_distance,
    "mrstft_distance": multi_resolution_stft_distance,
    "stoi": stoi,
}
_SIGNAL_METRICS = {"si_sdr_db": _si_sdr, "log_mel_distance": _log_mel, "mrstft_distance": _mrstft, "stoi": _stoi}


def score_audio(reference, estimate, sample_rate_hz):
    """All :data:`AUDIO_METRICS` of ``estimate`` against ``reference``, as a dict of floats."""
    reference, estimate = _signals(reference, estimate)
    return {name: metric(reference, estimate, sample_rate_hz) for name, metric in _SIGNAL_METRICS.items()}


def score_audio_pairs(estimates, references, sample_rate_hz):
    """Every estimate against every reference with all :data:`AUDIO_METRICS`.

    Each waveform's spectra are computed once, not once per pair.

    Parameters
    ----------
    estimates, references : dict of str to ndarray, shape (n_samples,)
        Mono waveforms, all of one length (one stretch of TRs).
    sample_rate_hz : int

    Returns
    -------
    list of dict
        Keys ``estimate, reference`` and the metric names of ``AUDIO_METRICS``, estimates in the outer loop.
    """
    if not estimates or not references:
        return []
    first = next(iter(references.values()))
    signals = [{name: _Signal(_check_pair(first, x)[1]) for name, x in group.items()}
               for group in (estimates, references)]
    return [{"estimate": e_name, "reference": r_name,
             **{name: metric(reference, estimate, sample_rate_hz) for name, metric in _SIGNAL_METRICS.items()}}
            for e_name, estimate in signals[0].items() for r_name, reference in signals[1].items()]
