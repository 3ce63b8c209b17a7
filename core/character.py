"""Any character, without Blender: which of a mesh's shape keys are ARKit channels, whether a set of
landmark vertices makes a face, and the similarity (scale + rotation + move) that carries the
template's motion into a mesh's own size and orientation.

Two ways to know where a mesh's face is, relative to the template's:
- the template's topology: Procrustes on all vertices (and a mesh that is not a scaled, turned
  copy of the template, within `SHAPE_TOLERANCE`, is refused);
- landmarks (core/face_rig.py LANDMARK_NAMES) on both: their face frames (mouth centre, axes,
  mouth width) give the similarity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arkit import ARKIT_NAMES, TemplateLandmarksError, template_landmarks
from .errors import MeshError
from .face_rig import BIWI_LANDMARKS, LANDMARK_NAMES, face_frame

SHAPE_TOLERANCE = 0.15  # RMS left after the best scale + turn, relative to the head's RMS radius: the corpus's own people are 0.8-2.6% off the template, a sphere of the same vertex count is over 40x it; real faces vary more than the corpus, so the line is drawn well above
GAIN_GROUPS = ("jaw", "lips", "smile", "brows", "eyes")  # panel sliders, in this order
BIWI_VERTICES = 23_370


class LandmarkError(MeshError):
    """Landmark vertices that are missing, repeated, out of range, or do not make a face."""


class ChannelMapError(MeshError):
    """A channel mapping that names a shape key the mesh does not have, or a mesh with no ARKit keys."""


class TemplateShapeError(MeshError):
    """A mesh with the template's vertex count that is not the template's shape."""


# ---------------------------------------------------------------------------------------------
# ARKit channels on a user's shape keys.


def channel_group(channel: str) -> str:
    """The gain slider (GAIN_GROUPS) that scales an ARKit channel."""
    if channel.startswith("jaw") or channel == "mouthClose":
        return "jaw"
    if channel.startswith(("mouthSmile", "mouthFrown", "mouthDimple", "cheekSquint")):
        return "smile"
    if channel.startswith("brow"):
        return "brows"
    if channel.startswith("eye"):
        return "eyes"
    return "lips"


def _plain(name: str) -> str:
    """'ARKit_jawOpen.001' -> 'arkitjawopen': no Blender number suffix, no separators, lower case."""
    return re.sub(r"[^0-9a-z]", "", re.sub(r"\.\d{3,}$", "", name).lower())


def match_arkit_channels(key_names: list[str], mapping: dict[str, str] | None = None) -> dict[str, str]:
    """ARKit channel -> shape key name, for the shape keys `key_names` of one mesh.

    A channel matches a key whose name is the channel's, ignoring case, separators and a ".001"
    suffix, or ends with it ("ARKit_jawOpen", "CC_Base_Body.jawOpen"); an exact match wins over a
    prefixed one, then the first key. `mapping` (channel -> key name) overrides that per channel; an
    empty key name leaves the channel out. Raises ChannelMapError for a mapped key that is not there.
    """
    names = list(key_names)
    plain = [_plain(n) for n in names]
    found: dict[str, str] = {}
    for channel in ARKIT_NAMES:
        wanted = channel.lower()
        exact = [n for n, p in zip(names, plain) if p == wanted]
        prefixed = [n for n, p in zip(names, plain) if p.endswith(wanted)]
        if exact or prefixed:
            found[channel] = (exact or prefixed)[0]
    for channel, key in (mapping or {}).items():
        if channel not in ARKIT_NAMES:
            raise ChannelMapError(f"the channel mapping names '{channel}', which is not an ARKit channel")
        if not key:
            found.pop(channel, None)
        elif key not in names:
            raise ChannelMapError(f"the channel mapping maps {channel} to shape key '{key}', which the mesh does not have")
        else:
            found[channel] = key
    return found


def scale_weights(weights: np.ndarray, gains: dict[str, float] | None = None) -> np.ndarray:
    """(N, 52) ARKit weights times each channel's group gain, clipped to [0, 1]."""
    gains = gains or {}
    factor = np.array([float(gains.get(channel_group(c), 1.0)) for c in ARKIT_NAMES])
    return np.clip(np.asarray(weights, np.float64) * factor[None], 0.0, 1.0)


def arkit_weights(animation) -> np.ndarray:
    """(N, 52) ARKit weights of a run, as the worker solved them (core/pipeline.py: it does
    whenever the bundle's template has face landmarks, which `session.plan_take` checks first)."""
    if animation.arkit_weights is None:
        raise TemplateLandmarksError(
            "the model's run has no ARKit channels: its template has no face landmarks "
            "(add `landmarks` to the bundle's config.json)")
    return np.asarray(animation.arkit_weights, np.float32)


# ---------------------------------------------------------------------------------------------
# Landmarks.


def read_landmarks(source: str | Path) -> dict[str, int]:
    """Landmarks from 'biwi' (BIWI_LANDMARKS) or a JSON file {name: vertex index}."""
    if str(source).lower() == "biwi":
        return dict(BIWI_LANDMARKS)
    path = Path(source)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LandmarkError(f"cannot read landmarks from {path} ({exc}): give a JSON file {{name: vertex index}} or 'biwi'") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        raise LandmarkError(f"{path.name} must map landmark names to vertex indices (whole numbers)")
    unknown = sorted(set(data) - set(LANDMARK_NAMES))
    if unknown:
        raise LandmarkError(f"{path.name} names unknown landmarks {', '.join(unknown)}; the landmarks are {', '.join(LANDMARK_NAMES)}")
    return {k: int(v) for k, v in data.items()}


def check_landmarks(vertices: np.ndarray, landmarks: dict[str, int]) -> dict[str, int]:
    """The landmarks, checked on `vertices` (V, 3); raises LandmarkError naming the problem."""
    missing = [n for n in LANDMARK_NAMES if n not in landmarks or landmarks[n] is None or int(landmarks[n]) < 0]
    if missing:
        raise LandmarkError(f"landmarks not set: {', '.join(missing)} (select one vertex in Edit Mode and press Set)")
    n = len(vertices)
    for name in LANDMARK_NAMES:
        if int(landmarks[name]) >= n:
            raise LandmarkError(f"landmark {name} is vertex {landmarks[name]} but the mesh has only {n:,} vertices")
    seen: dict[int, str] = {}
    for name in LANDMARK_NAMES:
        index = int(landmarks[name])
        if index in seen:
            raise LandmarkError(f"landmarks {seen[index]} and {name} are the same vertex {index}: each needs its own")
        seen[index] = name
    v = np.asarray(vertices, np.float64)
    p = {k: v[int(landmarks[k])] for k in LANDMARK_NAMES}
    points = np.stack(list(p.values()))
    size = float(np.linalg.norm(points - points.mean(axis=0), axis=1).max())
    width = float(np.linalg.norm(p["mouth_corner_left"] - p["mouth_corner_right"]))
    across = p["mouth_corner_left"] - p["mouth_corner_right"]
    up = (p["brow_inner_left"] + p["brow_inner_right"]) / 2 - p["chin"]
    spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    if size <= 0 or width <= 1e-4 * size or np.linalg.norm(np.cross(across, up)) <= 1e-3 * width * np.linalg.norm(up) \
            or spread[1] <= 1e-3 * spread[0]:
        raise LandmarkError("the landmarks do not span a face (they lie on a line or on one point): set them on the face's features")
    frame = face_frame(v, {k: int(landmarks[k]) for k in LANDMARK_NAMES})
    local = {k: frame.local(p[k][None])[0] for k in LANDMARK_NAMES}
    if not (local["eye_left"][0] > 0 > local["eye_right"][0] and local["mouth_corner_left"][0] > 0 > local["mouth_corner_right"][0]):
        raise LandmarkError("the mouth corners and the eyes disagree on left and right: "
                            "'left' is the face's own left (the viewer's right) for every landmark")
    if not (local["brow_inner_left"][1] > local["upper_lip"][1] > local["chin"][1] and local["nose_tip"][2] > 0.1):
        raise LandmarkError("the landmarks do not make a face: the brows must be above the lips, the chin below, "
                            "and the nose tip in front of the mouth")
    return {k: int(landmarks[k]) for k in LANDMARK_NAMES}


def builtin_landmarks(vertices: np.ndarray) -> dict[str, int] | None:
    """BIWI_LANDMARKS for a 23,370-vertex mesh they fit (BIWI's topology), else None."""
    if len(vertices) != BIWI_VERTICES:
        return None
    try:
        return check_landmarks(vertices, BIWI_LANDMARKS)
    except LandmarkError:
        return None


# ---------------------------------------------------------------------------------------------
# Template -> mesh.


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation: template coordinates -> a mesh's own."""

    scale: float
    rotation: np.ndarray  # (3, 3), a proper rotation
    translation: np.ndarray  # (3,)

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(1.0, np.eye(3), np.zeros(3))

    def points(self, x: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(x, np.float64) @ self.rotation.T + self.translation

    def vectors(self, d: np.ndarray) -> np.ndarray:
        """Displacements (..., 3): scaled and turned, not moved."""
        return (self.scale * np.asarray(d, np.float64) @ self.rotation.T).astype(np.float32)

    def head_motion(self, rotations: np.ndarray, translations: np.ndarray, pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head motion x -> R_t (x - P) + P + tau_t in template coordinates, as the same motion in
        the mesh's: (rotations (M, 3, 3), offsets (M, 3)) with x' -> R'_t x' + offset_t."""
        r = self.rotation
        turned = np.einsum("ij,mjk,lk->mil", r, rotations, r)  # R R_t R^T
        pivot_m = self.points(np.asarray(pivot, np.float64)[None])[0]
        offsets = pivot_m[None] + self.scale * np.asarray(translations) @ r.T - np.einsum("mij,j->mi", turned, pivot_m)
        return turned, offsets


def procrustes(source: np.ndarray, target: np.ndarray) -> tuple[Similarity, float]:
    """The similarity that best maps `source` (V, 3) onto `target` (V, 3) (Umeyama), and the RMS of
    what is left over relative to the mapped source's size (its RMS radius)."""
    x, y = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(xc.T @ yc)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    flip = np.diag([1.0, 1.0, d])
    rotation = vt.T @ flip @ u.T
    spread = float(np.sum(xc * xc))
    scale = float(np.sum(s * np.diag(flip)) / spread) if spread > 0 else 1.0
    if scale <= 0:
        return Similarity(1.0, np.eye(3), my - mx), float("inf")
    fit = Similarity(scale, rotation, my - scale * rotation @ mx)
    residual = float(np.sqrt(np.mean(np.sum((fit.points(x) - y) ** 2, axis=1))))
    size = scale * float(np.sqrt(spread / len(x)))
    return fit, (residual / size if size > 0 else float("inf"))


def template_fit(template: np.ndarray, rest: np.ndarray, name: str = "the mesh") -> Similarity:
    """Template -> a mesh of its topology (Procrustes on all vertices); TemplateShapeError when the
    mesh is not a scaled and turned copy of the template within SHAPE_TOLERANCE."""
    fit, residual = procrustes(template, rest)
    if residual > SHAPE_TOLERANCE:
        raise TemplateShapeError(
            f"{name} has the template's {len(rest):,} vertices but not its shape ({100 * residual:.0f}% off after the best "
            f"scale and turn, {100 * SHAPE_TOLERANCE:.0f}% allowed): use the template's mesh, or give it ARKit shape keys")
    return fit


def landmark_fit(template: np.ndarray, template_marks: dict[str, int], rest: np.ndarray, marks: dict[str, int]) -> Similarity:
    """Template -> a mesh by their landmarks' face frames (mouth centre, axes, mouth width)."""
    a = face_frame(np.asarray(template, np.float64), template_marks)
    b = face_frame(np.asarray(rest, np.float64), marks)
    scale = b.unit / a.unit
    rotation = b.axes.T @ a.axes  # template axes -> mesh axes (rows: x, y, z of each frame)
    return Similarity(scale, rotation, b.origin - scale * rotation @ a.origin)


def bounds_fit(template: np.ndarray, rest: np.ndarray, turn: np.ndarray) -> Similarity:
    """A guess for a mesh with neither the template's topology nor landmarks: the template turned
    by `turn` (e.g. Y-up -> Z-up), scaled to the mesh's bounding box, centroid on centroid."""
    t, r = np.asarray(template, np.float64), np.asarray(rest, np.float64)
    size_t = float(np.linalg.norm(t.max(axis=0) - t.min(axis=0)))
    size_r = float(np.linalg.norm(r.max(axis=0) - r.min(axis=0)))
    scale = size_r / size_t if size_t > 0 and size_r > 0 else 1.0
    return Similarity(scale, np.asarray(turn, np.float64), r.mean(axis=0) - scale * np.asarray(turn) @ t.mean(axis=0))


def template_face_landmarks(template: np.ndarray) -> dict[str, int] | None:
    """The template's landmarks (core/arkit.py `template_landmarks`), or None when it has none."""
    from .arkit import TemplateLandmarksError

    try:
        return template_landmarks(np.asarray(template), len(template))[0]
    except TemplateLandmarksError:
        return None
