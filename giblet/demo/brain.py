"""Simulated subjects: voxels driven by the rendered stimulus through a causal HRF."""

from __future__ import annotations

import numpy as np
from scipy import signal, stats

from giblet.demo.segments import SCENES, TOPICS

__all__ = ["ROI_DRIVERS", "FINE_DT_S", "stimulus_drives", "subject_hrf", "roi_masks", "simulate_subject"]

FINE_DT_S = 0.1  # resolution of the simulated neural drive, in seconds
ROI_DRIVERS = {  # ROI name -> modality whose features drive it (None: noise only)
    "auditory": "audio",
    "visual": "video",
    "semantic": "annotations",
    "pmc": "events",
    "noise": None,
}
_ROI_SPHERES = {  # name -> list of (centre in voxels, radius in voxels), for a 20x24x20 grid
    "auditory": [((4, 12, 8), 2.3), ((15, 12, 8), 2.3)],
    "visual": [((9.5, 3, 10), 2.8)],
    "semantic": [((5, 17, 12), 2.3)],
    "pmc": [((9.5, 7, 14), 2.6)],
    "noise": [((9.5, 19, 8), 2.6)],
}
_AUDIO_BANDS_HZ = (100, 400, 1000, 2500, 8000)
HEARING_THRESHOLD_DBFS = -50.0  # white noise this far below full scale counts as silence


def _hold(values, times_s, n_fine):
    """Sample-and-hold ``values`` (given at ``times_s``) onto the fine grid."""
    fine_t = np.arange(n_fine) * FINE_DT_S
    idx = np.searchsorted(times_s, fine_t + 1e-9, side="right") - 1
    return values[np.clip(idx, 0, len(values) - 1)]


def audio_band_energy(audio, sample_rate_hz):
    """Log energy in a few frequency bands above a hearing threshold, one row per FINE_DT_S window.

    Each band's power gets the power of white noise at ``HEARING_THRESHOLD_DBFS`` added before
    the log, so silence, pauses and empty bands all sit at the threshold (as for a listener)
    instead of at the log of a numerical zero, which would dominate the drive.
    """
    hop = int(round(FINE_DT_S * sample_rate_hz))
    n = len(audio) // hop
    freqs, _, spec = signal.stft(audio[: n * hop], fs=sample_rate_hz, nperseg=hop, noverlap=0,
                                 boundary=None, padded=False)
    power = np.abs(spec) ** 2
    window = signal.get_window("hann", hop)
    # expected |STFT|^2 per bin of white noise at the threshold (scipy's "spectrum" scaling)
    threshold_per_bin = 10 ** (HEARING_THRESHOLD_DBFS / 10) * (window**2).sum() / window.sum() ** 2
    bands = []
    for lo, hi in zip(_AUDIO_BANDS_HZ[:-1], _AUDIO_BANDS_HZ[1:]):
        in_band = (freqs >= lo) & (freqs < hi)
        bands.append(np.log(power[in_band].sum(axis=0) + threshold_per_bin * in_band.sum()))
    return np.stack(bands, axis=1)


def frame_features(frame, previous):
    """Luminance, contrast, warmth and motion energy of one RGB uint8 frame."""
    rgb = frame.astype(np.float32) / 255
    lum = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    motion = 0.0 if previous is None else float(np.abs(rgb - previous.astype(np.float32) / 255).mean())
    return np.array([lum.mean(), lum.std(), (rgb[..., 0] - rgb[..., 2]).mean(), motion])


def stimulus_drives(segments, band_energy, frame_feats, fps, duration_s):
    """Neural drive of every modality on the fine grid, z-scored over the film.

    Returns
    -------
    dict of str -> ndarray, shape (n_fine, n_features)
        Row i is the drive during [i, i+1) * FINE_DT_S seconds.
    """
    n_fine = int(round(duration_s / FINE_DT_S))
    fine_t = np.arange(n_fine) * FINE_DT_S
    seg_of = np.searchsorted([s.onset_s for s in segments], fine_t + 1e-9, side="right") - 1
    onehot = []
    for attr, levels in (("scene", SCENES), ("topic", TOPICS)):  # the sound drives the auditory ROI only
        codes = np.array([levels.index(getattr(s, attr)) for s in segments])[seg_of]
        onehot.append(np.eye(len(levels))[codes])
    boundary = np.zeros(n_fine)
    boundary[np.round([s.onset_s / FINE_DT_S for s in segments[1:]]).astype(int)] = 1.0
    state = np.array([s.narrative_state for s in segments])[seg_of]
    drives = {
        "audio": band_energy[:n_fine],
        "video": _hold(frame_feats, np.arange(len(frame_feats)) / fps, n_fine),
        "annotations": np.concatenate(onehot, axis=1),
        "events": np.stack([state, boundary], axis=1),
    }
    return {k: _zscore(v) for k, v in drives.items()}


def _zscore(values):
    """Z-score columns; a constant column (a label absent from a short film) becomes 0, not NaN."""
    scale = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def subject_hrf(peak_s, duration_s=32.0):
    """Causal double-gamma HRF peaking at ``peak_s`` seconds, sampled every FINE_DT_S, unit sum."""
    t = np.arange(0, duration_s, FINE_DT_S)
    scale = 0.9
    shape = peak_s / scale + 1  # the gamma pdf with this shape and scale peaks at peak_s
    hrf = stats.gamma.pdf(t, shape, scale=scale) - stats.gamma.pdf(t, shape + 10, scale=scale) / 6
    return hrf / hrf.sum()


def roi_masks(brain_mask):
    """Binary ROI masks (spheres inside the brain) on the 20x24x20 demo grid."""
    ijk = np.indices(brain_mask.shape).transpose(1, 2, 3, 0)
    rois = {}
    for name, spheres in _ROI_SPHERES.items():
        inside = np.zeros(brain_mask.shape, bool)
        for centre, radius in spheres:
            inside |= np.linalg.norm(ijk - np.array(centre), axis=-1) <= radius
        rois[name] = inside & brain_mask
    return rois


def _ar1(rng, n_trs, n_voxels, rho):
    noise = rng.standard_normal((n_trs, n_voxels))
    return signal.lfilter([np.sqrt(1 - rho**2)], [1, -rho], noise, axis=0)


def simulate_subject(rng, drives, rois, brain_mask, shared_weights, params, run_n_trs, tr_s):
    """BOLD time series (n_trs, n_brain_voxels) for one subject, runs simulated separately.

    Each driven voxel is ``snr * signal + noise``, in units of the noise standard deviation,
    where ``signal`` is the HRF-convolved drive through shared + individual weights; noise is
    AR(1) with a part shared across a ROI's voxels, plus slow cosine drift.
    """
    hrf = subject_hrf(params["hrf_peak_s"])
    in_brain = np.flatnonzero(brain_mask.ravel())
    n_vox = len(in_brain)
    position = {v: i for i, v in enumerate(in_brain)}
    runs = []
    run_start_s = 0.0
    for n_trs in run_n_trs:
        lo = int(round(run_start_s / FINE_DT_S))
        hi = lo + int(round(n_trs * tr_s / FINE_DT_S))
        frame_idx = np.round(np.arange(n_trs) * tr_s / FINE_DT_S).astype(int)
        y = np.zeros((n_trs, n_vox))
        for name, modality in ROI_DRIVERS.items():
            cols = [position[v] for v in np.flatnonzero(rois[name].ravel())]
            shared_noise = _ar1(rng, n_trs, 1, params["ar1_rho"])
            own_noise = _ar1(rng, n_trs, len(cols), params["ar1_rho"])
            c = params["noise_spatial_corr"]
            y[:, cols] = np.sqrt(c) * shared_noise + np.sqrt(1 - c) * own_noise
            if modality is None:
                continue
            bold = signal.fftconvolve(drives[modality][lo:hi], hrf[:, None], axes=0)[: hi - lo]
            w = shared_weights[name] + params["individual_weight_sd"] * rng.standard_normal(
                shared_weights[name].shape)
            sig = bold[frame_idx] @ w
            sig = (sig - sig.mean(axis=0)) / sig.std(axis=0)
            y[:, cols] += params["snr"] * sig
        rest = np.setdiff1d(np.arange(n_vox), [position[v] for r in rois.values() for v in np.flatnonzero(r.ravel())])
        y[:, rest] = _ar1(rng, n_trs, len(rest), params["ar1_rho"])
        t = np.arange(n_trs)[:, None]
        drift = np.cos(np.pi * t * np.arange(1, 4) / n_trs) @ rng.normal(0, params["drift_sd"], (3, n_vox))
        runs.append(y + drift)
        run_start_s += n_trs * tr_s
    return np.concatenate(runs).astype(np.float32)
