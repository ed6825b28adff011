"""Audio fixtures: a tiny EnCodec, a synthetic soundtrack and clips written by the tests."""

from fractions import Fraction

import av
import numpy as np
import pytest
from transformers import EncodecConfig

from giblet.audio import EncodecCodec

# 75 Hz like the real codec (hop 320 at 24 kHz), 4 filters, 64-code books: 3 codebooks at 1.5 kbps.
TINY_CONFIG = dict(hidden_size=16, num_filters=4, num_lstm_layers=1, codebook_size=64,
                   target_bandwidths=[1.5, 3.0], kernel_size=3, last_kernel_size=3)
TINY_BANDWIDTH_KBPS = 1.5


def make_soundtrack(duration_s, sample_rate_hz=24_000, seed=0):
    """Mono float32 film-like sound: 1 s segments of speech-like, music-like, noise, chirp and quiet."""
    rng = np.random.default_rng(seed)
    n_segment = sample_rate_hz
    t = np.arange(n_segment) / sample_rate_hz
    segments = []
    for i in range(int(np.ceil(duration_s))):
        kind = i % 5
        if kind == 0:  # voiced speech: gliding f0, harmonics, 4 Hz syllables
            f0 = rng.uniform(90, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
            voice = sum(np.sin(k * phase) / k for k in range(1, 12))
            segment = 0.2 * voice * np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None)
        elif kind == 1:  # music: a chord of three notes with harmonics
            notes = 220 * 2 ** (rng.integers(0, 24, 3) / 12)
            segment = 0.1 * sum(np.sin(2 * np.pi * k * f * t) / k for f in notes for k in (1, 2, 3))
        elif kind == 2:  # noise burst
            segment = rng.uniform(0.02, 0.2) * rng.standard_normal(n_segment)
        elif kind == 3:  # chirp
            f_start, f_stop = rng.uniform(100, 4000, 2)
            segment = 0.3 * np.sin(2 * np.pi * (f_start * t + (f_stop - f_start) * t**2 / 2))
        else:  # near silence
            segment = 0.003 * rng.standard_normal(n_segment)
        segments.append(segment)
    return np.concatenate(segments)[: round(duration_s * sample_rate_hz)].astype(np.float32)


def write_clip(path, waveform, sample_rate_hz, *, codec="aac", video=True):
    """Write mono ``waveform`` (or (n_channels, n) array) with PyAV; optional 10 fps H.264 video."""
    data = np.atleast_2d(np.asarray(waveform, dtype=np.float32))
    layout = {1: "mono", 2: "stereo"}[len(data)]
    with av.open(str(path), "w") as container:
        if video:
            stream_v = container.add_stream("libx264", rate=10)
            stream_v.width = stream_v.height = 32
            stream_v.pix_fmt = "yuv420p"
        stream_a = container.add_stream(codec, rate=sample_rate_hz, layout=layout)
        fmt = stream_a.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=sample_rate_hz)
        for start in range(0, data.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start : start + 1024]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate_hz, start, Fraction(1, sample_rate_hz)
            for converted in resampler.resample(frame):
                container.mux(stream_a.encode(converted))
        container.mux(stream_a.encode(None))
        if video:
            for i in range(int(data.shape[1] / sample_rate_hz * 10)):
                image = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i % 256, np.uint8), format="rgb24")
                image.pts = i
                container.mux(stream_v.encode(image))
            container.mux(stream_v.encode(None))
    return path


@pytest.fixture(scope="session")
def tiny_codec():
    """Untrained tiny codec adapted to 10 s of soundtrack; 2 s chunks so joins are exercised."""
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), seed=0, bandwidth_kbps=TINY_BANDWIDTH_KBPS,
                                   device="cpu", chunk_s=2.0, context_s=0.5, crossfade_s=0.2)
    codec.fit_untrained(codec.latents(make_soundtrack(10.0), 24_000), seed=0)
    return codec
