"""Sound classes of the demo film, synthesised so that audio codes carry information."""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["render_soundtrack", "SOUND_RENDERERS"]

# (F1, F2, F3) in Hz for a few vowels: a source-filter model of voiced speech.
_VOWEL_FORMANTS_HZ = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]]
)
_SCALE_SEMITONES = np.array([0, 2, 4, 5, 7, 9, 11, 12])


def _resonator(x, freq_hz, bandwidth_hz, sample_rate_hz):
    """Two-pole resonance (a formant) at ``freq_hz``."""
    r = np.exp(-np.pi * bandwidth_hz / sample_rate_hz)
    theta = 2 * np.pi * freq_hz / sample_rate_hz
    return signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def _speech(rng, n, sr):
    """Voiced syllables: glottal pulses with a pitch contour through vowel formants."""
    t = np.arange(n) / sr
    f0_hz = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t))
    phase = np.cumsum(f0_hz / sr)
    source = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(sr * rng.uniform(0.12, 0.3))
        chunk = source[pos : pos + length]
        voiced = np.zeros_like(chunk)
        for f, bw in zip(_VOWEL_FORMANTS_HZ[rng.integers(len(_VOWEL_FORMANTS_HZ))], (80, 100, 150)):
            voiced += _resonator(chunk, f, bw, sr)
        out[pos : pos + len(chunk)] = voiced * np.hanning(len(chunk))
        pos += length + int(sr * rng.uniform(0.0, 0.12))  # short pauses between syllables
    return out


def _music(rng, n, sr):
    """Harmonic notes and chords on a scale, with a steady beat."""
    t_beat = 60.0 / rng.uniform(90, 140)
    root_hz = 220.0 * 2 ** (rng.integers(-5, 5) / 12)
    beat_n = int(t_beat * sr)
    out = np.zeros(n)
    env = np.exp(-np.arange(beat_n) / (0.25 * sr))
    tt = np.arange(beat_n) / sr
    for start in range(0, n, beat_n):
        degree = rng.integers(len(_SCALE_SEMITONES) - 4)
        chord = _SCALE_SEMITONES[[degree, degree + 2, degree + 4]] if rng.random() < 0.5 else _SCALE_SEMITONES[[degree]]
        note = np.zeros(beat_n)
        for semitone in chord:
            f = root_hz * 2 ** (semitone / 12)
            for h in range(1, 6):
                note += np.sin(2 * np.pi * f * h * tt) / h**1.5
        seg = (note * env)[: n - start]
        out[start : start + len(seg)] += seg
    return out


def _noise(rng, n, sr):
    """Band-limited noise with a slow swell (rain, wind, traffic)."""
    low = rng.uniform(100, 2000)
    high = min(low * rng.uniform(2, 6), 0.45 * sr)
    sos = signal.butter(4, [low, high], btype="band", fs=sr, output="sos")
    swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * np.arange(n) / sr)
    return signal.sosfilt(sos, rng.standard_normal(n)) * swell


def _silence(rng, n, sr):
    """Room tone: near-silent noise."""
    return 1e-3 * rng.standard_normal(n)


SOUND_RENDERERS = {"speech": _speech, "music": _music, "noise": _noise, "silence": _silence}
_LEVEL_RMS = {"speech": 0.12, "music": 0.10, "noise": 0.08, "silence": 0.001}


def render_soundtrack(rng, segments, sample_rate_hz, duration_s):
    """Render the soundtrack of ``segments`` as mono float32 in [-1, 1].

    Returns
    -------
    ndarray, shape (round(duration_s * sample_rate_hz),), float32
        Sample i plays at i / sample_rate_hz seconds.
    """
    n_total = int(round(duration_s * sample_rate_hz))
    out = np.zeros(n_total)
    fade = int(0.01 * sample_rate_hz)
    ramp = np.linspace(0.0, 1.0, fade)
    for seg in segments:
        start = int(round(seg.onset_s * sample_rate_hz))
        stop = int(round(seg.offset_s * sample_rate_hz))
        x = SOUND_RENDERERS[seg.sound](rng, stop - start, sample_rate_hz)
        x *= _LEVEL_RMS[seg.sound] / (np.sqrt(np.mean(x**2)) + 1e-12)
        x[:fade] *= ramp  # 10 ms fades: no clicks at cuts
        x[-fade:] *= ramp[::-1]
        out[start:stop] = x
    return np.clip(out, -1.0, 1.0).astype(np.float32)
