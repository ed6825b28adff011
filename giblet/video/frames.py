"""Video frames read with PyAV by presentation timestamp (safe for variable frame rate); damage is an error."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm

__all__ = ["TimedFrame", "iter_frames"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimedFrame:
    """A decoded frame and the interval it is on screen.

    Attributes
    ----------
    onset_s, offset_s : float
        Display interval ``[onset_s, offset_s)``, in seconds of stimulus time (the
        presentation timestamp, not ``index / fps``); ``offset_s`` is the next frame's onset.
    frame : av.VideoFrame
        Convert with ``frame.reformat(width, height, "rgb24").to_ndarray()``.
    """

    onset_s: float
    offset_s: float
    frame: av.VideoFrame


def iter_frames(path, *, progress=True):
    """Decode every frame of the first video stream with its display interval.

    Parameters
    ----------
    path : str or Path
        Any container FFmpeg reads (MP4, M4V, MKV, AVI...).
    progress : bool, default=True
        Show a tqdm bar in seconds of video.

    Yields
    ------
    TimedFrame
        In presentation order. Frames whose timestamp does not increase are skipped
        (logged); the last frame lasts its own duration, or the median frame interval.

    Raises
    ------
    ValueError
        The decoder finds an error in the stream (FFmpeg's ``err_detect=explode``) or
        conceals one in a frame (``is_corrupt``), instead of silently changing the frames.
        Bit flips that still decode to a valid stream cannot be detected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: stimulus video not found; check video.stimulus")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream; pass the movie file, not an audio file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads keep error concealment on, so corrupt frames are flagged
        stream.codec_context.options = {"err_detect": "explode"}  # fail on errors the decoder detects
        duration_s = float(stream.duration * stream.time_base) if stream.duration else None
        intervals, skipped, previous = [], 0, None
        with tqdm(total=duration_s, unit="s", desc=f"decode {path.name}", disable=not progress) as bar:
            frames = container.decode(stream)
            while (frame := _next_frame(path, frames, previous)) is not None:
                if frame.pts is None:
                    raise ValueError(f"{path}: frame without a presentation timestamp; remux the file (ffmpeg -i in -c copy out.mp4)")
                onset_s = float(frame.pts * frame.time_base)
                if frame.is_corrupt:
                    raise _corrupt(path, f"at {onset_s:.2f} s", "the decoder concealed errors in this frame")
                if previous is not None and onset_s <= previous.onset_s:
                    skipped += 1
                    continue
                if previous is not None:
                    intervals.append(onset_s - previous.onset_s)
                    bar.update(intervals[-1])
                    yield TimedFrame(previous.onset_s, onset_s, previous.frame)
                previous = TimedFrame(onset_s, onset_s, frame)
            if previous is None:
                raise ValueError(f"{path}: the video stream has no decodable frames; check the file")
            own = float(previous.frame.duration * previous.frame.time_base) if previous.frame.duration else 0.0
            last_s = own if own > 0 else float(np.median(intervals)) if intervals else 0.0
            yield TimedFrame(previous.onset_s, previous.onset_s + last_s, previous.frame)
    if skipped:
        log.warning("%s: skipped %d frames whose timestamp did not increase", path, skipped)


def _next_frame(path, frames, previous):
    """The next decoded frame (None at the end); a decoding error names the last good frame's time."""
    try:
        return next(frames, None)
    except av.error.FFmpegError as err:
        raise _corrupt(path, f"after {previous.onset_s if previous else 0.0:.2f} s", err) from err


def _corrupt(path, where, detail):
    return ValueError(
        f"{path}: video stream is corrupt {where} ({detail}); features would silently change. "
        "Replace the file with an intact copy (re-download it, or re-encode it from the source)"
    )
