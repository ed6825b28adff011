"""Visual scenes of the demo film: moving shapes on scene-specific backgrounds."""

from __future__ import annotations

import numpy as np

__all__ = ["render_frames"]

# scene: (top colour, bottom colour, n objects, speed in widths per second)
_SCENE_STYLE = {
    "room": ((0.85, 0.75, 0.60), (0.65, 0.50, 0.35), 2, 0.05),
    "landscape": ((0.45, 0.65, 0.95), (0.20, 0.55, 0.20), 4, 0.08),
    "street": ((0.55, 0.55, 0.58), (0.30, 0.30, 0.32), 7, 0.45),
    "night": ((0.02, 0.02, 0.08), (0.05, 0.05, 0.12), 5, 0.03),
}
_SHAPE_OF_TOPIC = {"people": "ellipse", "animals": "triangle", "vehicles": "box"}


def _shape_mask(kind, xx, yy, cx, cy, r):
    dx, dy = xx - cx, yy - cy
    if kind == "ellipse":
        return (dx / r) ** 2 + (dy / (1.4 * r)) ** 2 <= 1
    if kind == "triangle":
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    return (np.abs(dx) <= 1.5 * r) & (np.abs(dy) <= 0.7 * r)


def render_frames(rng, segments, fps, width, height):
    """Yield RGB frames (uint8, shape (height, width, 3)) at ``fps`` for the whole film.

    Frame k is shown at k / fps seconds; its scene is the segment containing that time.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for seg in segments:
        top, bottom, n_obj, speed = _SCENE_STYLE[seg.scene]
        w = yy[..., None] / (height - 1)
        background = (1 - w) * np.array(top) + w * np.array(bottom)
        background *= rng.uniform(0.8, 1.2)  # shot-to-shot luminance change
        shape = _SHAPE_OF_TOPIC[seg.topic]
        pos = rng.uniform([0, 0.15 * height], [width, 0.85 * height], size=(n_obj, 2))
        vel = rng.normal(0, speed * width, size=(n_obj, 2)) * [1.0, 0.3]
        radius = rng.uniform(0.05, 0.12, size=n_obj) * height * (2.5 if seg.scene == "room" else 1)
        colour = rng.uniform(0, 1, size=(n_obj, 3))
        if seg.scene == "night":
            colour = 0.7 + 0.3 * colour  # lights in the dark
        first = int(np.ceil(seg.onset_s * fps - 1e-9))
        last = int(np.ceil(seg.offset_s * fps - 1e-9))
        for k in range(first, last):
            t = k / fps - seg.onset_s
            frame = background.copy()
            centres = (pos + vel * t) % [width, height]
            flicker = 1.0 if seg.scene != "night" else 0.6 + 0.4 * np.sin(7 * t + np.arange(n_obj))
            for (cx, cy), r, c, f in zip(centres, radius, colour, np.broadcast_to(flicker, n_obj)):
                frame[_shape_mask(shape, xx, yy, cx, cy, r)] = c * f
            yield (np.clip(frame, 0, 1) * 255).astype(np.uint8)
