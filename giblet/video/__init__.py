"""Video features: frames by timestamp, low-level and learned features, TR thumbnails."""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "frames": ["iter_frames"],
    "lowlevel": ["frame_features"],
    "stage": ["VideoConfig", "run_extract_video"],
})
