"""Video features: frames by timestamp, low-level and learned features, TR thumbnails."""

from giblet.video.frames import iter_frames
from giblet.video.lowlevel import frame_features
from giblet.video.stage import VideoConfig, run_extract_video

__all__ = ["run_extract_video", "VideoConfig", "iter_frames", "frame_features"]
