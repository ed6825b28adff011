"""Video features: frames by timestamp, low-level and learned features, TR thumbnails."""

from giblet.video.frames import TimedFrame, iter_frames
from giblet.video.image_model import ImageEncoder, load_image_model
from giblet.video.lowlevel import FRAME_FEATURE_NAMES, LOWLEVEL_FEATURES, frame_features, luma, motion_energy
from giblet.video.stage import VIDEO_OUTPUTS, VideoConfig, run_extract_video

__all__ = [
    "FRAME_FEATURE_NAMES",
    "ImageEncoder",
    "LOWLEVEL_FEATURES",
    "TimedFrame",
    "VIDEO_OUTPUTS",
    "VideoConfig",
    "frame_features",
    "iter_frames",
    "load_image_model",
    "luma",
    "motion_energy",
    "run_extract_video",
]
