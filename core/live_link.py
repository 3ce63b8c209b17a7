"""ARKit weights as Live Link Face's CSV take: what Unreal (LiveLinkFaceImporter), MetaHuman tools and
many Blender/Maya importers read.

Layout, as Live Link Face exports it (checked against exported takes in public repositories):
`Timecode,BlendShapeCount,` then the 52 ARKit channels with a capital first letter in Unreal's
EARFaceBlendShape order (Apple's order except JawRight before JawLeft and MouthRight before
MouthLeft), then HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
RightEyePitch, RightEyeRoll. BlendShapeCount is 61 (52 + 9). Timecode is HH:MM:SS:FF.fff: FF counts
frames at the timecode's rate (60 in the app's takes, which sample at 30 or 60 fps) and .fff is
the sub-frame fraction; we write FF at the take's own fps and a zero sub-frame.

Angles are in radians (exported takes show eye angles of 0.1-0.3 where the eyeLook channels are
near 0.3-0.5). Signs, inferred from the same takes' eye channels: pitch > 0 looks down, yaw > 0
turns toward the face's right. In template coordinates (x the face's left, y up, z forward), a
head rotation is R = Ry(-yaw) Rx(pitch) Rz(roll), right-handed; roll > 0 tilts the head toward its
right shoulder (this sign is our choice: no exported take we found has a tilted head).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .arkit import ARKIT_INDEX, ARKIT_NAMES, EYE_LOOK_DEGREES
from .errors import TalkingHeadError
from .outputs import atomic_path

# Live Link Face's column order of the 52 channels (Unreal's EARFaceBlendShape).
LIVE_LINK_ORDER = tuple(
    {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}.get(n, n)
    for n in ARKIT_NAMES
)
LIVE_LINK_BLENDSHAPES = tuple(n[0].upper() + n[1:] for n in LIVE_LINK_ORDER)
HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
LIVE_LINK_HEADER = ("Timecode", "BlendShapeCount") + LIVE_LINK_BLENDSHAPES + HEAD_COLUMNS + EYE_COLUMNS
BLENDSHAPE_COUNT = len(LIVE_LINK_BLENDSHAPES) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)  # 61
TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 100, 120)
_TIMECODE = re.compile(r"^(\d+):(\d\d):(\d\d)[:;](\d+)(?:\.(\d+))?$")


class LiveLinkError(TalkingHeadError):
    """A Live Link Face CSV that cannot be written or read."""


class LiveLinkTake(NamedTuple):
    weights: np.ndarray  # (N, 52) in ARKIT_NAMES (Apple's) order
    fps: float | None  # frames per second of the rows, from the timecodes; None if it cannot be told
    head: np.ndarray  # (N, 3) HeadYaw, HeadPitch, HeadRoll, radians
    eyes: np.ndarray  # (N, 6) LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll
    timecodes: list[str]
    seconds: np.ndarray  # (N,) each row's time after the first row's (needs the timecode rate)


# --- angles ----------------------------------------------------------------------------------------

def _rx(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2)


def _ry(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, o, s], -1), np.stack([o, i, o], -1), np.stack([-s, o, c], -1)], -2)


def _rz(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2)


def head_angles(rotation: np.ndarray) -> np.ndarray:
    """(N, 3, 3) head rotations in template coordinates -> (N, 3) Live Link yaw, pitch, roll (radians)."""
    r = np.asarray(rotation, np.float64)
    a = np.arctan2(r[:, 0, 2], r[:, 2, 2])  # R = Ry(a) Rx(b) Rz(c): see the module docstring
    b = np.arcsin(np.clip(-r[:, 1, 2], -1.0, 1.0))
    c = np.arctan2(r[:, 1, 0], r[:, 1, 1])
    return np.stack([-a, b, c], -1)


def rotation_from_head_angles(angles: np.ndarray) -> np.ndarray:
    """(N, 3) Live Link yaw, pitch, roll (radians) -> (N, 3, 3) rotations in template coordinates."""
    yaw, pitch, roll = np.asarray(angles, np.float64).T
    return _ry(-yaw) @ _rx(pitch) @ _rz(roll)


def eye_angles(weights: np.ndarray) -> np.ndarray:
    """(N, 52) ARKit weights -> (N, 6) eye yaw/pitch/roll (radians), from the eyeLook channels at
    EYE_LOOK_DEGREES per unit (the rotation arkit_shapes gives the eyeballs)."""
    w = np.asarray(weights, np.float64)
    k = np.radians(EYE_LOOK_DEGREES)
    col = lambda name: w[:, ARKIT_INDEX[name]]  # noqa: E731
    zero = np.zeros(len(w))
    return np.stack([
        k * (col("eyeLookInLeft") - col("eyeLookOutLeft")), k * (col("eyeLookDownLeft") - col("eyeLookUpLeft")), zero,
        k * (col("eyeLookOutRight") - col("eyeLookInRight")), k * (col("eyeLookDownRight") - col("eyeLookUpRight")), zero,
    ], -1)


# --- timecode --------------------------------------------------------------------------------------

def timecode(frame: int, fps: int) -> str:
    """Frame index -> HH:MM:SS:FF.000 at `fps` frames per second."""
    seconds, ff = divmod(int(frame), fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def _parse_timecodes(codes: list[str]) -> np.ndarray:
    """-> (N, 2): whole seconds since midnight, frame number plus sub-frame fraction."""
    out = np.zeros((len(codes), 2))
    for i, code in enumerate(codes):
        m = _TIMECODE.match(code.strip())
        if not m:
            raise LiveLinkError(f"row {i + 2}: timecode {code!r} is not HH:MM:SS:FF.fff")
        hh, mm, ss, ff, sub = m.groups()
        out[i] = (int(hh) * 3600 + int(mm) * 60 + int(ss), int(ff) + (float("0." + sub) if sub else 0.0))
    return out


# --- files -----------------------------------------------------------------------------------------

def write_live_link_csv(path: str | Path, weights: np.ndarray, fps: float, head_rotation: np.ndarray | None = None,
                        eyes: np.ndarray | None = None, start_frame: int = 0) -> Path:
    """Write a take: weights (N, 52) in ARKit order, head rotations (N, 3, 3) in template coordinates
    (or None: zeros), eye angles (N, 6) in radians (or None: from the eyeLook channels).

    Written next to the target and renamed over it, so readers never see half a file.
    """
    path = Path(path)
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise LiveLinkError(f"weights must be (frames, 52), not {w.shape}")
    n = len(w)
    rate = int(round(fps))
    if rate <= 0 or abs(rate - fps) > 1e-6:
        raise LiveLinkError(f"a Live Link Face take needs a whole number of frames per second, not {fps}")
    head = np.zeros((n, 3)) if head_rotation is None else head_angles(np.asarray(head_rotation).reshape(n, 3, 3))
    eyes = eye_angles(w) if eyes is None else np.asarray(eyes, np.float64).reshape(n, len(EYE_COLUMNS))
    columns = [ARKIT_INDEX[name] for name in LIVE_LINK_ORDER]
    values = np.concatenate([w[:, columns], head, eyes], axis=1)  # (N, 61)
    lines = [",".join(LIVE_LINK_HEADER)]
    for i in range(n):
        lines.append(f"{timecode(start_frame + i, rate)},{BLENDSHAPE_COUNT}," + ",".join(f"{v:.10f}" for v in values[i]))
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:  # core/outputs.py
        f.write("\n".join(lines) + "\n")
    return path


def read_live_link_csv(path: str | Path, timecode_fps: int | None = None) -> LiveLinkTake:
    """Read a Live Link Face take (ours or the app's). Columns are found by name, any case; missing
    channels read as 0. `timecode_fps` is the rate the FF field counts at; by default the smallest
    common rate above the largest FF seen (exact for takes of a second or more)."""
    path = Path(path)
    if not path.is_file():
        raise LiveLinkError(f"Live Link Face CSV not found: {path}")
    rows = [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise LiveLinkError(f"{path.name} is empty")
    header = {name.strip().lower(): i for i, name in enumerate(rows[0])}
    if "timecode" not in header:
        raise LiveLinkError(f"{path.name} is not a Live Link Face CSV: it has no Timecode column")
    body = rows[1:]
    try:
        def column(name: str) -> np.ndarray:
            j = header.get(name.lower())
            if j is None:
                return np.zeros(len(body))
            return np.array([float(r[j]) for r in body])

        weights = np.stack([column(n[0].upper() + n[1:]) for n in ARKIT_NAMES], -1) if body else np.zeros((0, 52))
        head = np.stack([column(n) for n in HEAD_COLUMNS], -1) if body else np.zeros((0, 3))
        eyes = np.stack([column(n) for n in EYE_COLUMNS], -1) if body else np.zeros((0, 6))
    except (ValueError, IndexError) as exc:
        raise LiveLinkError(f"{path.name}: a row has a missing or non-numeric value ({exc})") from None
    codes = [r[header["timecode"]] for r in body]
    parsed = _parse_timecodes(codes)
    rate = timecode_fps
    if rate is None and len(parsed):
        top = float(parsed[:, 1].max())
        rate = next((r for r in TIMECODE_RATES if r > top), None)
    fps, seconds = None, np.zeros(len(parsed))
    if rate:
        position = parsed[:, 0] * rate + parsed[:, 1]  # in timecode frames
        seconds = (position - position[0]) / rate
        steps = np.diff(position)
        if len(steps) and np.median(steps) > 0:
            fps = float(round(rate / np.median(steps), 3))
    return LiveLinkTake(weights.astype(np.float32), fps, head, eyes, codes, seconds)
