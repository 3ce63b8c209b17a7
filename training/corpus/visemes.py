"""Phones -> mouth controls with coarticulation (Cohen-Massaro dominance functions).

Each phone has, per articulatory control, a target and a dominance. The control at time t is the
dominance-weighted mean of the targets of all phones, each phone's dominance decaying
exponentially with the distance from its centre: D_i(t) = alpha_i exp(-|t - c_i| / tau_i).
Bilabials dominate lip closure, labiodentals the lower-lip tuck, rounded vowels the pucker, so
those shapes are reached while the others blend with their neighbours (no step functions).
"""

from __future__ import annotations

import numpy as np

from .phones import VOWELS
from ...core.face_rig import CONTROL_INDEX

VISEME_CONTROLS = ("jaw_open", "lip_close", "lip_pucker", "lip_stretch", "lip_press", "lower_lip_tuck", "upper_lip_raise")

# phone -> {control: target}; controls not named have target 0.
_TARGETS: dict[str, dict[str, float]] = {
    "aa": {"jaw_open": 0.80}, "ae": {"jaw_open": 0.65, "lip_stretch": 0.35}, "ah": {"jaw_open": 0.55},
    "ao": {"jaw_open": 0.65, "lip_pucker": 0.40}, "aw": {"jaw_open": 0.65, "lip_pucker": 0.30},
    "ay": {"jaw_open": 0.65, "lip_stretch": 0.20}, "eh": {"jaw_open": 0.45, "lip_stretch": 0.35},
    "er": {"jaw_open": 0.30, "lip_pucker": 0.45}, "ey": {"jaw_open": 0.38, "lip_stretch": 0.45},
    "ih": {"jaw_open": 0.30, "lip_stretch": 0.35}, "iy": {"jaw_open": 0.18, "lip_stretch": 0.65},
    "ow": {"jaw_open": 0.42, "lip_pucker": 0.75}, "oy": {"jaw_open": 0.45, "lip_pucker": 0.55},
    "uh": {"jaw_open": 0.28, "lip_pucker": 0.55}, "uw": {"jaw_open": 0.15, "lip_pucker": 1.0},
    "ax": {"jaw_open": 0.32}, "axr": {"jaw_open": 0.30, "lip_pucker": 0.35},
    "p": {"jaw_open": 0.06, "lip_close": 1.0, "lip_press": 0.35},
    "b": {"jaw_open": 0.06, "lip_close": 1.0, "lip_press": 0.30},
    "m": {"jaw_open": 0.05, "lip_close": 1.0, "lip_press": 0.25},
    "f": {"jaw_open": 0.12, "lower_lip_tuck": 1.0, "upper_lip_raise": 0.30},
    "v": {"jaw_open": 0.12, "lower_lip_tuck": 1.0, "upper_lip_raise": 0.25},
    "th": {"jaw_open": 0.22}, "dh": {"jaw_open": 0.20},
    "s": {"jaw_open": 0.10, "lip_stretch": 0.35}, "z": {"jaw_open": 0.10, "lip_stretch": 0.30},
    "sh": {"jaw_open": 0.14, "lip_pucker": 0.65, "upper_lip_raise": 0.2}, "zh": {"jaw_open": 0.14, "lip_pucker": 0.60},
    "ch": {"jaw_open": 0.14, "lip_pucker": 0.60, "upper_lip_raise": 0.2}, "jh": {"jaw_open": 0.14, "lip_pucker": 0.55},
    "t": {"jaw_open": 0.18}, "d": {"jaw_open": 0.18}, "n": {"jaw_open": 0.18}, "l": {"jaw_open": 0.25},
    "k": {"jaw_open": 0.25}, "g": {"jaw_open": 0.25}, "ng": {"jaw_open": 0.22}, "hh": {"jaw_open": 0.35},
    "r": {"jaw_open": 0.20, "lip_pucker": 0.45}, "w": {"jaw_open": 0.12, "lip_pucker": 0.95},
    "y": {"jaw_open": 0.15, "lip_stretch": 0.40}, "pau": {},
}
# Contacts (closure, tuck) are reached inside their phone and released fast: their dominance
# decays on a shorter time scale than the other controls'.
_SHARPNESS = np.array([0.25 if c in ("lip_close", "lower_lip_tuck") else 1.0 for c in ("jaw_open", "lip_close", "lip_pucker", "lip_stretch", "lip_press", "lower_lip_tuck", "upper_lip_raise")])
# phone -> {control: dominance}; default 1.0 for vowels, 0.25 for consonants' lip shape.
_DOMINANCE: dict[str, dict[str, float]] = {
    **{p: {"lip_close": 12.0, "jaw_open": 2.0, "lip_press": 3.0} for p in ("p", "b", "m")},
    **{p: {"lower_lip_tuck": 10.0, "jaw_open": 1.5, "upper_lip_raise": 2.0} for p in ("f", "v")},
    **{p: {"lip_pucker": 4.0} for p in ("w", "uw", "ow", "sh", "zh", "ch", "jh", "r")},
    "hh": {"jaw_open": 0.1},
    "pau": {c: 0.6 for c in VISEME_CONTROLS},
}


def phone_targets(phone: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, dominances) over VISEME_CONTROLS for one phone (ARPAbet, lower case)."""
    targets = _TARGETS.get(phone, {"jaw_open": 0.2})
    vowel = phone in VOWELS
    dominance = {c: (1.0 if vowel else 0.25) for c in VISEME_CONTROLS}
    if not vowel:
        dominance["jaw_open"] = 0.7
    for c in targets:
        dominance[c] = max(dominance[c], 1.0)
    dominance.update(_DOMINANCE.get(phone, {}))
    return (
        np.array([targets.get(c, 0.0) for c in VISEME_CONTROLS]),
        np.array([dominance[c] for c in VISEME_CONTROLS]),
    )


def viseme_controls(phones: list[tuple[str, float, float]], times: np.ndarray, n_controls: int) -> np.ndarray:
    """Coarticulated mouth controls at `times` (seconds) -> (len(times), n_controls) in rig order."""
    times = np.asarray(times, np.float64)
    numerator = np.zeros((len(times), len(VISEME_CONTROLS)))
    denominator = np.full((len(times), len(VISEME_CONTROLS)), 1e-6)
    for phone, start, end in phones:
        target, alpha = phone_targets(phone)
        centre, duration = (start + end) / 2, max(end - start, 0.01)
        tau = 0.025 + 0.35 * duration  # seconds; long phones spread further
        inside = np.abs(times - centre) <= duration / 2
        distance = np.maximum(np.abs(times - centre) - duration / 2, 0.0)
        weight = np.exp(-distance[:, None] / (tau * _SHARPNESS[None, :])) * alpha[None, :]
        weight = np.where(inside[:, None], weight * 1.5, weight)  # a phone rules its own segment
        numerator += weight * target[None, :]
        denominator += weight
    controls = np.zeros((len(times), n_controls))
    values = numerator / denominator
    for j, name in enumerate(VISEME_CONTROLS):
        controls[:, CONTROL_INDEX[name]] = values[:, j]
    return controls
