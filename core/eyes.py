"""Blinks and gaze: a seeded procedural layer on top of the model's faces.

The model learnt mouths, brows and heads from a corpus whose eyes hardly move, so its faces stare.
This layer adds what animators expect within seconds:

- Blinks, a random process (per-frame hazard) seeded from the take's seed: none within
  `MIN_BLINK_GAP_S` of the last one, one at the latest `MAX_BLINK_GAP_S` after it; in between about
  `REST_BLINKS_PER_MINUTE` in pauses and `SPEAKING_BLINKS_PER_MINUTE` while speaking, and likely
  just after a phrase ends (the first `PHRASE_END_S` of a pause). Pauses are read from the sound's
  energy per 25 fps frame. Each blink closes the lids (a smooth step of 0.06-0.10 s), holds them
  shut briefly and opens them more slowly (0.10-0.18 s): 0.18-0.33 s in all, never more than
  `MAX_BLINK_S`, peak weight 0.92-1 on a frame. Both eyes blink together.
- Gaze: the eyes hold a direction for 0.5-3 s, then jump (a saccade of one frame or two) to
  another within a few degrees, mostly sideways; they look down a little while the lids close.

`eye_motion` draws both from the seed alone (numpy's default_rng on a key of its own, apart from the
head-motion noise of core/model.py `head_noise`): same seed, same blinks and gaze. `add_eyes` puts
them on the faces without head motion (core/pipeline.py then turns the head and solves the ARKit
channels, so every output agrees) through the template's ARKit shapes (core/arkit.py): the blink
as eyeBlinkLeft + eyeBlinkRight, the gaze as the eight eyeLook shapes at `EYE_LOOK_DEGREES` per
unit (the eyeballs' rotation in those shapes, zero on templates without eyeballs; the unit
core/live_link.py `eye_angles` reads the CSV's eye yaw/pitch with). A template without face
landmarks has no eyelid shapes: the layer is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .animation import CHUNK_FRAMES
from .arkit import ARKIT_INDEX, EYE_LOOK_DEGREES
from .audio import FACE_FPS, SAMPLE_RATE

EYES_STREAM = 0x45594553  # "EYES": the random stream's key, [seed, EYES_STREAM, part] (head noise uses [seed, block])
SKIPPED = "blinks and gaze need face landmarks on the bundle's template (its ARKit eyelid shapes); skipped: "

# Pauses: frames more than PAUSE_DB below the speech level (90th percentile of frame energy) for at
# least MIN_PAUSE_S.
PAUSE_DB = 25.0
MIN_PAUSE_S = 0.2
# Blinks (human rates: about 15-20 a minute at rest, fewer while speaking, more at phrase ends).
REST_BLINKS_PER_MINUTE = 20.0  # hazard after the refractory gap, in pauses
SPEAKING_BLINKS_PER_MINUTE = 12.0  # while speaking
PHRASE_END_S = 0.4  # the first part of a pause ...
PHRASE_END_CHANCE = 0.6  # ... has about this chance of a blink (when the refractory gap allows one)
MIN_BLINK_GAP_S = 1.5  # from one blink's peak to the next
MAX_BLINK_GAP_S = 5.5
CLOSE_S = (0.06, 0.10)  # lids closing, uniform range
SHUT_S = (0.02, 0.05)  # held shut
OPEN_S = (0.10, 0.18)  # opening
MAX_BLINK_S = 0.35  # close + shut + open never longer
PEAK_WEIGHT = (0.92, 1.0)
BLINK_LOOK_DOWN_DEGREES = 2.0  # the eyes dip this much at a full blink
# Gaze: fixations of FIXATION_S, then a saccade of SACCADE_S to a new direction.
FIXATION_S = (0.5, 3.0)
SACCADE_S = 0.04
CENTRE_CHANCE = 0.4  # a saccade back near straight ahead
YAW_DEGREES = (4.0, 8.0)  # standard deviation, limit: mostly horizontal
PITCH_DEGREES = (1.5, 4.0)


@dataclass
class EyeMotion:
    """One take's blinks and gaze at `fps`: blink (N,) weight 0-1, both eyes; gaze (N, 2) yaw and
    pitch in radians, both eyes, Live Link's signs (yaw > 0 toward the face's right, pitch > 0
    down); blinks: (start, peak, end) seconds of each blink."""

    blink: np.ndarray
    gaze: np.ndarray
    blinks: list[tuple[float, float, float]]
    fps: int = FACE_FPS


def speech_pauses(samples: np.ndarray, n_frames: int, fps: int = FACE_FPS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) bool: the frames in a pause of the speech (16 kHz `samples`), from the energy per frame."""
    hop = rate / fps
    x = np.asarray(samples, np.float64)
    energy = np.empty(n_frames)
    for i in range(n_frames):
        part = x[int(round(i * hop)) : int(round((i + 1) * hop))]
        energy[i] = np.mean(part * part) if len(part) else 0.0
    db = 10.0 * np.log10(energy + 1e-12)
    level = np.percentile(db, 90) if n_frames else 0.0
    quiet = (db < level - PAUSE_DB) | (energy < 1e-9)
    pauses = np.zeros(n_frames, bool)
    shortest = max(1, int(round(MIN_PAUSE_S * fps)))
    start = None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= shortest:
                pauses[start:i] = True
            start = None
    return pauses


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def blink_events(pauses: np.ndarray, fps: int, rng: np.random.Generator) -> list[tuple[float, float, float, float, float]]:
    """Draw the blinks: (peak time s, close s, shut s, open s, peak weight) each. A hazard per frame
    (Poisson within the frame) after a refractory gap, higher in pauses and at phrase ends; the peak
    falls on a frame, and every blink lies wholly inside the take."""
    n = len(pauses)
    dt = 1.0 / fps
    duration = n * dt
    phrase_end = np.zeros(n, bool)
    window = max(1, int(round(PHRASE_END_S * fps)))
    onsets = np.where(pauses[1:] & ~pauses[:-1])[0] + 1
    for i in onsets:
        phrase_end[i : i + window] = True
    rest, speaking = REST_BLINKS_PER_MINUTE / 60.0, SPEAKING_BLINKS_PER_MINUTE / 60.0
    phrase_rate = -np.log(1.0 - PHRASE_END_CHANCE) / PHRASE_END_S
    last = -rng.uniform(1.0, 3.0)  # as if the last blink was just before the take began
    events = []
    for i in range(n):
        t = i * dt
        since = t - last
        if since < MIN_BLINK_GAP_S:
            continue
        rate = (rest if pauses[i] else speaking) + (phrase_rate if phrase_end[i] else 0.0)
        if since < MAX_BLINK_GAP_S and rng.random() >= 1.0 - np.exp(-rate * dt):
            continue
        close, shut = rng.uniform(*CLOSE_S), rng.uniform(*SHUT_S)
        opening = min(rng.uniform(*OPEN_S), MAX_BLINK_S - close - shut)
        peak = rng.uniform(*PEAK_WEIGHT)
        if t - shut / 2 - close < 0.0 or t + shut / 2 + opening > duration - dt:
            continue  # would be cut by the take's start or end
        events.append((t, close, shut, opening, peak))
        last = t
    return events


def blink_curve(events, n_frames: int, fps: int) -> np.ndarray:
    """(N,) float32 blink weight: for each event a smooth close, a hold at the peak, a slower open."""
    t = np.arange(n_frames) / fps
    weight = np.zeros(n_frames)
    for peak_time, close, shut, opening, peak in events:
        rise = _smoothstep((t - (peak_time - shut / 2 - close)) / close)
        fall = 1.0 - _smoothstep((t - (peak_time + shut / 2)) / opening)
        weight = np.maximum(weight, peak * np.minimum(rise, fall))
    return weight.astype(np.float32)


def saccades(n_frames: int, fps: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) gaze yaw, pitch (radians): fixations of FIXATION_S joined by short saccades."""
    t = np.arange(n_frames) / fps
    duration = n_frames / fps

    def target() -> np.ndarray:
        if rng.random() < CENTRE_CHANCE:
            yaw, pitch = rng.normal(0.0, 1.0), rng.normal(0.0, 0.5)
        else:
            yaw, pitch = rng.normal(0.0, YAW_DEGREES[0]), rng.normal(0.0, PITCH_DEGREES[0])
        return np.radians([np.clip(yaw, -YAW_DEGREES[1], YAW_DEGREES[1]), np.clip(pitch, -PITCH_DEGREES[1], PITCH_DEGREES[1])])

    gaze = np.zeros((n_frames, 2))
    current = target()
    gaze[:] = current
    jump = rng.uniform(*FIXATION_S)
    while jump < duration:
        following = target()
        step = _smoothstep((t - jump) / SACCADE_S)[:, None]
        gaze = np.where((t >= jump)[:, None], current + (following - current) * step, gaze)
        current = following
        jump += SACCADE_S + rng.uniform(*FIXATION_S)
    return gaze.astype(np.float32)


def eye_motion(samples: np.ndarray, n_frames: int, seed: int, fps: int = FACE_FPS) -> EyeMotion:
    """Blinks and gaze for a take of `n_frames` of the 16 kHz `samples`; same seed, same motion."""
    blink_rng = np.random.default_rng([int(seed), EYES_STREAM, 1])
    gaze_rng = np.random.default_rng([int(seed), EYES_STREAM, 2])
    events = blink_events(speech_pauses(samples, n_frames, fps), fps, blink_rng)
    blink = blink_curve(events, n_frames, fps)
    gaze = saccades(n_frames, fps, gaze_rng)
    gaze[:, 1] += np.radians(BLINK_LOOK_DOWN_DEGREES) * blink
    spans = [(p - s / 2 - c, p, p + s / 2 + o) for p, c, s, o, _ in events]
    return EyeMotion(blink, gaze, spans, fps)


def gaze_channels(gaze: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 2) yaw, pitch (radians, Live Link's signs) -> the eight eyeLook channels (N,) each, in
    [0, 1] at EYE_LOOK_DEGREES per unit: the inverse of core/live_link.py `eye_angles`."""
    k = np.radians(EYE_LOOK_DEGREES)
    yaw, pitch = (np.asarray(gaze, np.float64)[:, j] / k for j in (0, 1))
    right, left = np.clip(yaw, 0, 1), np.clip(-yaw, 0, 1)  # toward the face's right / left
    down, up = np.clip(pitch, 0, 1), np.clip(-pitch, 0, 1)
    return {
        "eyeLookInLeft": right, "eyeLookOutLeft": left, "eyeLookOutRight": right, "eyeLookInRight": left,
        "eyeLookDownLeft": down, "eyeLookDownRight": down, "eyeLookUpLeft": up, "eyeLookUpRight": up,
    }


def eye_channels(motion: EyeMotion) -> dict[str, np.ndarray]:
    """The ten ARKit channels (N,) each of the layer: eyeBlinkLeft/Right and the eyeLook ones."""
    return {"eyeBlinkLeft": motion.blink, "eyeBlinkRight": motion.blink, **gaze_channels(motion.gaze)}


def add_eyes(faces: np.ndarray, shapes: np.ndarray, motion: EyeMotion) -> np.ndarray:
    """Add `motion` to faces without head motion (N, V, 3), in place, and return them. shapes
    (52, V, 3): the template's ARKit shapes (core/arkit.py `template_arkit_shapes`); each face gets
    d_t = sum_c w_tc B_c over the ten eye channels of `eye_channels`. Only the vertices an eye
    shape moves (by more than 1e-4 of the largest eye motion) change."""
    channels = eye_channels(motion)
    basis = np.asarray(shapes, np.float32)[[ARKIT_INDEX[n] for n in channels]]  # (10, V, 3)
    size = np.linalg.norm(basis, axis=2)  # (10, V)
    moved = np.where((size > 1e-4 * max(float(size.max(initial=0.0)), 1e-30)).any(axis=0))[0]
    flat = basis[:, moved].reshape(len(basis), -1)  # (10, V' * 3)
    weights = np.stack(list(channels.values()), -1).astype(np.float32)  # (N, 10)
    for start in range(0, len(faces), CHUNK_FRAMES):
        part = slice(start, start + CHUNK_FRAMES)
        faces[part, moved] += (weights[part] @ flat).reshape(-1, len(moved), 3)  # a matrix product, not einsum's loops
    return faces


def blink_runs(blink: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(first frame, frames) of each run of frames with blink weight above `threshold`: the blinks
    as a viewer counts them (the lids more than half shut)."""
    shut = np.append(np.asarray(blink) > threshold, False)
    runs, start = [], None
    for i, s in enumerate(shut):
        if s and start is None:
            start = i
        elif not s and start is not None:
            runs.append((start, i - start))
            start = None
    return runs
