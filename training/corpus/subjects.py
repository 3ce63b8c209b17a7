"""The 14 synthetic subjects (BIWI names): a voice plus a personal speaking style, and the splits
of METHOD.md section 10."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...core.face_rig import CONTROL_INDEX, CONTROLS
from .speech import Voice

SEEN = ("F2", "F3", "F4", "M3", "M4", "M5")
UNSEEN = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")
ALL_SUBJECTS = ("F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "M1", "M2", "M3", "M4", "M5", "M6")
TUNING_CLIPS = 6

VOICES = {
    "F1": Voice("espeak", "en-us+f1", 0.0, 1.0),
    "F2": Voice("festival", "slt_hts", 0.0, 1.0),
    "F3": Voice("flite", "slt", 0.0, 1.0),
    "F4": Voice("espeak", "en-us+f3", 1.0, 0.95),
    "F5": Voice("festival", "slt_hts", 2.0, 1.05),
    "F6": Voice("espeak", "en+f2", -1.0, 1.0),
    "F7": Voice("flite", "slt", -1.5, 0.92),
    "F8": Voice("espeak", "en-us+f4", 0.0, 1.08),
    "M1": Voice("flite", "rms", 0.0, 1.0),
    "M2": Voice("espeak", "en-us+m3", 0.0, 1.0),
    "M3": Voice("festival", "kal", 0.0, 1.0),
    "M4": Voice("flite", "awb", 0.0, 1.0),
    "M5": Voice("espeak", "en-us", -2.0, 0.95),
    "M6": Voice("flite", "kal16", -1.0, 1.05),
}


@dataclass(frozen=True)
class SpeakingStyle:
    jaw_gain: float  # how wide the jaw opens
    lip_gain: float  # rounding / stretch amplitude
    corner_gain: float  # mouth-corner movement
    asymmetry: float  # -0.3..0.3: left corner stronger when positive
    expression_gain: float  # emotional expression strength
    head_amplitude: float  # head-motion scale
    nod_rate: float  # fraction of stressed syllables that get a nod
    tilt_bias_degrees: float  # habitual head roll
    sway: float  # slow side-to-side yaw
    identity: dict  # face shape (rig.IDENTITY_PARAMETERS)

    def control_gains(self) -> np.ndarray:
        gains = np.ones(len(CONTROLS))
        gains[CONTROL_INDEX["jaw_open"]] = self.jaw_gain
        for name in ("lip_pucker", "lip_stretch", "lower_lip_tuck", "upper_lip_raise"):
            gains[CONTROL_INDEX[name]] = self.lip_gain
        for side, sign in (("left", 1), ("right", -1)):
            for kind in ("corner_up", "corner_down"):
                gains[CONTROL_INDEX[f"{kind}_{side}"]] = self.corner_gain * (1 + sign * self.asymmetry)
        return gains


def subject_style(name: str) -> SpeakingStyle:
    """Deterministic per subject (independent of the corpus seed: a subject is a person)."""
    rng = np.random.default_rng(sum(ord(c) * 131 ** i for i, c in enumerate(name)))
    return SpeakingStyle(
        jaw_gain=float(rng.uniform(0.75, 1.3)),
        lip_gain=float(rng.uniform(0.7, 1.3)),
        corner_gain=float(rng.uniform(0.6, 1.4)),
        asymmetry=float(rng.uniform(-0.3, 0.3)),
        expression_gain=float(rng.uniform(0.7, 1.25)),
        head_amplitude=float(rng.uniform(0.6, 1.5)),
        nod_rate=float(rng.uniform(0.3, 0.9)),
        tilt_bias_degrees=float(rng.uniform(-4, 4)),
        sway=float(rng.uniform(0.3, 1.2)),
        identity={
            "face_width": float(rng.uniform(-0.06, 0.06)),
            "jaw_width": float(rng.uniform(-0.08, 0.08)),
            "face_length": float(rng.uniform(-0.06, 0.06)),
            "nose_length": float(rng.uniform(-0.15, 0.2)),
            "brow_height": float(rng.uniform(-0.1, 0.1)),
            "lip_fullness": float(rng.uniform(-0.1, 0.15)),
        },
    )


def split_of(subject: str) -> str:
    return "seen" if subject in SEEN else "unseen"


def clip_split(subject: str, sentence: int, emotional: bool) -> str:
    """METHOD.md section 10: seen 1-32 train, 33-36 val, 37-40 test; unseen: 6 emotional tuning clips."""
    if subject in SEEN:
        return "train" if sentence <= 32 else ("val" if sentence <= 36 else "test")
    if sentence <= TUNING_CLIPS:
        return "tuning" if emotional else "unused"
    return "test"


def style_dict(style: SpeakingStyle) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else {a: round(b, 4) for a, b in v.items()}) for k, v in asdict(style).items()}
