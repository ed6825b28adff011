"""Clips written by the tests: exact presentation timestamps, optional AAC audio."""

from fractions import Fraction

import av
import numpy as np
import pytest


def _write_clip(path, images, times_s, *, rate=30, audio_s=0.0):
    """Write (height, width, 3) uint8 ``images`` shown at ``times_s`` (ms precision) as lossless H.264."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"crf": "0"}
        audio = container.add_stream("aac", rate=24000) if audio_s else None
        for image, time_s in zip(images, times_s):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = int(round(time_s * 1000)), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            samples = np.zeros((1, int(audio_s * 24000)), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 24000
            container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


@pytest.fixture
def write_clip():
    return _write_clip


@pytest.fixture
def grey():
    """Make a uniform (48, 64, 3) uint8 frame at a level (0-255)."""
    return lambda level: np.full((48, 64, 3), level, np.uint8)
