"""Write the demo film as an MP4 (H.264 video + AAC audio) with PyAV."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from giblet.io import atomic_path

__all__ = ["write_movie"]


def write_movie(path, frames, fps, width, height, audio, sample_rate_hz):
    """Encode ``frames`` (iterable of uint8 RGB arrays) and mono ``audio`` to ``path``.

    Single-threaded, bit-exact encoding so that the same inputs give the same bytes.
    """
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
            video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.options = {"crf": "23", "preset": "veryfast", "threads": "1", "bitexact": "1"}
            video.codec_context.flags |= av.codec.context.Flags.bitexact
            sound = container.add_stream("aac", rate=sample_rate_hz, layout="mono")
            sound.bit_rate = 48000
            sound.options = {"aac_coder": "fast"}  # ffmpeg's default two-loop search takes twice as long
            sound.codec_context.flags |= av.codec.context.Flags.bitexact
            for image in frames:
                container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(video.encode())
            block = 1024 * 64
            for start in range(0, len(audio), block):
                chunk = np.ascontiguousarray(audio[None, start : start + block], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = sample_rate_hz
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate_hz)
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path
