"""Emotions: a prosody profile applied at synthesis and a matching facial expression whose
intensity follows the utterance (onset ramp, loudness, release after the last word)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.audio import FACE_FPS, SAMPLE_RATE
from ...core.face_rig import CONTROL_INDEX
from .speech import Prosody

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")


@dataclass(frozen=True)
class Emotion:
    name: str
    prosody: Prosody
    expression: dict[str, float]  # rig control -> value at full intensity
    arousal: float  # 0..1, scales head motion


EMOTION_PROFILES = {
    "neutral": Emotion("neutral", Prosody(0.0, 1.0, 1.0, 0.0), {}, 0.3),
    "happy": Emotion("happy", Prosody(2.5, 1.4, 1.08, 2.0),
                     {"corner_up_left": 0.9, "corner_up_right": 0.9, "cheek_raise": 0.8, "eye_squint": 0.45,
                      "lip_stretch": 0.2, "brow_raise_outer": 0.15}, 0.7),
    "sad": Emotion("sad", Prosody(-2.0, 0.6, 0.85, -5.0),
                   {"brow_raise_inner": 0.95, "corner_down_left": 0.8, "corner_down_right": 0.8, "brow_furrow": 0.3,
                    "eye_squint": 0.15}, 0.2),
    "angry": Emotion("angry", Prosody(1.0, 1.3, 1.1, 5.0),
                     {"brow_furrow": 1.0, "lip_press": 0.55, "nose_wrinkle": 0.6, "eye_squint": 0.35,
                      "upper_lip_raise": 0.15, "corner_down_left": 0.2, "corner_down_right": 0.2}, 0.9),
    "surprised": Emotion("surprised", Prosody(4.0, 1.6, 0.95, 3.0),
                         {"brow_raise_inner": 0.9, "brow_raise_outer": 1.0, "eye_widen": 1.0, "jaw_open": 0.12}, 0.8),
}


def expression_vector(emotion: str, n_controls: int) -> np.ndarray:
    vector = np.zeros(n_controls)
    for name, value in EMOTION_PROFILES[emotion].expression.items():
        vector[CONTROL_INDEX[name]] = value
    return vector


def loudness(samples: np.ndarray, n_frames: int, fps: int = FACE_FPS) -> np.ndarray:
    """Per-frame RMS level normalised to [0, 1] over the clip. (n_frames,)"""
    hop = SAMPLE_RATE // fps
    padded = np.pad(samples, (0, max(0, n_frames * hop - len(samples))))[: n_frames * hop]
    rms = np.sqrt(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1) + 1e-10)
    db = 20 * np.log10(rms)
    return np.clip((db - (db.max() - 40)) / 40, 0, 1)


def intensity_track(phones: list[tuple[str, float, float]], level: np.ndarray, level_scale: float, times: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Expression intensity per frame: rises over 0.4 s from speech onset, follows loudness,
    relaxes 0.6 s after the last word; `level_scale` is the take's overall strength. (N,)"""
    speech = [(s, e) for p, s, e in phones if p != "pau"]
    onset = speech[0][0] if speech else 0.0
    offset = speech[-1][1] if speech else times[-1]
    ramp = np.clip((times - onset + 0.15) / 0.4, 0, 1) * np.clip(1 - (times - offset) / 0.6, 0.35, 1)
    smooth = np.convolve(level, np.ones(7) / 7, mode="same")
    wobble = 1 + 0.08 * np.sin(2 * np.pi * (times * rng.uniform(0.2, 0.5) + rng.random()))
    return np.clip(level_scale * ramp * (0.7 + 0.3 * smooth) * wobble, 0, 1.2)
