"""The demo film's storyline: segments with a scene, a sound and a topic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Segment", "SCENES", "SOUNDS", "TOPICS", "draw_segments", "annotation_table"]

SCENES = ("room", "landscape", "street", "night")
SOUNDS = ("speech", "music", "noise", "silence")
TOPICS = ("people", "animals", "vehicles")

# P(topic | scene). The sound is drawn independently of the scene and topic, so that what the film
# says about its sound reaches the brain only through the auditory drive and the annotations: a
# visual lesion then has no audio to lose, and the lesion analysis has a known answer.
_TOPIC_GIVEN_SCENE = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.6, 0.2],
        [0.2, 0.1, 0.7],
        [0.4, 0.3, 0.3],
    ]
)
_SCENE_WORDS = {
    "room": "in a bright room",
    "landscape": "across green hills",
    "street": "on a busy street",
    "night": "in the dark at night",
}
_SOUND_WORDS = {
    "speech": "someone is talking",
    "music": "music plays",
    "noise": "a loud hiss of noise fills the air",
    "silence": "it is silent",
}
_TOPIC_WORDS = {
    "people": ["a woman", "two men", "a child", "a crowd of people"],
    "animals": ["a dog", "a flock of birds", "a cat", "a horse"],
    "vehicles": ["a red car", "a bus", "a bicycle", "a train"],
}


@dataclass(frozen=True)
class Segment:
    """One shot of the demo film, in seconds of stimulus time."""

    onset_s: float
    offset_s: float
    scene: str
    sound: str
    topic: str
    description: str
    narrative_state: float  # latent "situation" value that drives the PMC-like ROI


def draw_segments(rng, duration_s, min_s=3.0, max_s=20.0):
    """Split ``duration_s`` seconds into shots of ``min_s``–``max_s`` seconds.

    Consecutive shots always change scene or sound, so every boundary is an event.
    """
    bounds = [0.0]
    while duration_s - bounds[-1] > max_s:
        bounds.append(bounds[-1] + float(np.round(rng.uniform(min_s, max_s), 2)))
    if duration_s - bounds[-1] < min_s:  # fold a too-short tail into the previous shot
        bounds.pop()
    bounds.append(float(duration_s))
    segments, prev = [], None
    for onset, offset in zip(bounds[:-1], bounds[1:]):
        while True:
            scene_i = rng.integers(len(SCENES))
            sound_i = rng.integers(len(SOUNDS))
            if prev != (scene_i, sound_i):
                break
        topic_i = rng.choice(len(TOPICS), p=_TOPIC_GIVEN_SCENE[scene_i])
        scene, sound, topic = SCENES[scene_i], SOUNDS[sound_i], TOPICS[topic_i]
        who = _TOPIC_WORDS[topic][rng.integers(len(_TOPIC_WORDS[topic]))]
        description = f"{who.capitalize()} {_SCENE_WORDS[scene]}; {_SOUND_WORDS[sound]}."
        segments.append(
            Segment(onset, offset, scene, sound, topic, description, float(rng.standard_normal()))
        )
        prev = (scene_i, sound_i)
    return segments


def annotation_table(segments):
    """Annotations as a table: onset, offset (s), description, categorical labels."""
    return pd.DataFrame(
        {
            "onset": [s.onset_s for s in segments],
            "offset": [s.offset_s for s in segments],
            "description": [s.description for s in segments],
            "scene": [s.scene for s in segments],
            "sound": [s.sound for s in segments],
            "topic": [s.topic for s in segments],
        }
    )
