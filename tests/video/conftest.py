"""Clips written by the tests: exact presentation timestamps, optional AAC audio, damaged packets."""

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


@pytest.fixture
def textured_clip(tmp_path, rng):
    """2 s at 15 fps of moving gradients plus noise, (48, 64) pixels: H.264 packets of ~7 kB, no B-frames."""
    y, x = np.mgrid[0:48, 0:64]
    images = [np.clip(np.stack([(4 * x + 6 * i) % 256, (5 * y + 3 * i) % 256, (x + y + 9 * i) % 256], axis=-1)
                      + rng.integers(-30, 30, (48, 64, 3)), 0, 255).astype(np.uint8) for i in range(30)]
    return _write_clip(tmp_path / "clip.mp4", images, np.arange(30) / 15)


def _damage_packet(path, out, index, fill):
    """Copy ``path`` to ``out`` with the second half of video packet ``index`` (decode order) set to ``fill``.

    Returns the packet's presentation time, in seconds.
    """
    with av.open(str(path)) as container:
        packet = [p for p in container.demux(video=0) if p.size][index]
        start, stop = packet.pos + packet.size // 2, packet.pos + packet.size
        time_s = float(packet.pts * packet.time_base)
    data = bytearray(path.read_bytes())
    data[start:stop] = fill * (stop - start)
    out.write_bytes(data)
    return time_s


@pytest.fixture
def damage_packet():
    return _damage_packet
