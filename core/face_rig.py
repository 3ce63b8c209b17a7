"""A procedural face rig driven by a handful of landmark vertices, for any face mesh.

From the landmarks (lip centres, mouth corners, chin, nose tip, brows, eyes) the rig builds a
face frame (x: the face's left, y: up, z: forward; unit = mouth width) and, in that frame,
smooth weight maps for each control. Controls are linear basis shapes except the jaw, which is a
rotation about a hinge behind and above the mouth (exact, as sin/cos bases), and the lip seal,
which holds the lower lip against the jaw (bilabials) by scaling the jaw's effect on the lips.
The same code drives the project's head and the BIWI template (`BIWI_LANDMARKS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONTROLS = (
    "jaw_open", "lip_close", "lip_pucker", "lip_stretch", "lip_press", "lower_lip_tuck",
    "upper_lip_raise", "corner_up_left", "corner_up_right", "corner_down_left", "corner_down_right",
    "cheek_raise", "brow_raise_inner", "brow_raise_outer", "brow_furrow", "nose_wrinkle",
    "eye_widen", "eye_squint",
)
CONTROL_INDEX = {name: i for i, name in enumerate(CONTROLS)}
LANDMARK_NAMES = (
    "upper_lip", "lower_lip", "mouth_corner_left", "mouth_corner_right", "nose_tip", "chin",
    "brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right", "eye_left", "eye_right",
)
IDENTITY_PARAMETERS = ("face_width", "jaw_width", "face_length", "nose_length", "brow_height", "lip_fullness")

# BIWI template (shared/biwi/BIWI.ply, 23,370 vertices): landmark vertex indices, picked on the mesh.
BIWI_LANDMARKS = {
    "upper_lip": 213, "lower_lip": 13228, "mouth_corner_left": 1192, "mouth_corner_right": 13067,
    "nose_tip": 11029, "chin": 17802, "brow_inner_left": 6679, "brow_inner_right": 19158,
    "brow_outer_left": 3149, "brow_outer_right": 12235, "eye_left": 2340, "eye_right": 7899,
}

JAW_MAX_DEGREES = 18.0


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _gauss(q: np.ndarray, centre, radii) -> np.ndarray:
    d = (q - np.asarray(centre, float)) / np.asarray(radii, float)
    return np.exp(-0.5 * np.sum(d * d, axis=-1))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


@dataclass
class FaceFrame:
    origin: np.ndarray  # (3,) mouth centre
    axes: np.ndarray  # (3, 3) rows: x (face's left), y (up), z (forward)
    unit: float  # mouth width

    def local(self, points: np.ndarray) -> np.ndarray:
        return (points - self.origin) @ self.axes.T / self.unit

    def world_vectors(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self.axes * self.unit


def face_frame(vertices: np.ndarray, landmarks: dict[str, int]) -> FaceFrame:
    p = {k: vertices[v].astype(np.float64) for k, v in landmarks.items()}
    origin = (p["upper_lip"] + p["lower_lip"]) / 2
    x = p["mouth_corner_left"] - p["mouth_corner_right"]
    unit = float(np.linalg.norm(x))
    x /= unit
    brow = (p["brow_inner_left"] + p["brow_inner_right"]) / 2
    y = brow - p["chin"]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    if (p["nose_tip"] - origin) @ z < 0:  # the corners were named from the viewer's side
        x, z = -x, -z
    return FaceFrame(origin, np.stack([x, y, z]), unit)


class FaceRig:
    """Controls (CONTROLS, values mostly in [0, 1]) -> vertex positions, for one mesh + landmarks."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int], rigid: np.ndarray | None = None):
        missing = [n for n in LANDMARK_NAMES if n not in landmarks]
        if missing:
            raise ValueError(f"face rig needs landmarks {missing}")
        self.rest = np.asarray(vertices, np.float64)
        self.frame = frame = face_frame(self.rest, landmarks)
        q = frame.local(self.rest)  # (V, 3) in mouth widths
        qs = {k: frame.local(self.rest[v][None])[0] for k, v in landmarks.items()}
        n_local = vertex_normals(self.rest, np.asarray(faces)) @ frame.axes.T
        self.rigid = np.zeros(len(q), bool) if rigid is None else np.asarray(rigid, bool)
        flex = (~self.rigid).astype(np.float64)
        x, y, z = q[:, 0], q[:, 1], q[:, 2]

        # Lip line: a parabola through the lip centre and the corners. Which side a vertex is on is
        # judged a little inside the surface (q - 0.15 n), which splits coincident lip vertices.
        corner_y = (qs["mouth_corner_left"][1] + qs["mouth_corner_right"][1]) / 2
        probe = q - 0.15 * n_local * flex[:, None]
        line = corner_y * np.clip((probe[:, 0] / 0.5) ** 2, 0, 1.5)
        softness = 0.015 + 0.5 * _smoothstep(np.abs(probe[:, 0]), 0.45, 1.3) + 0.3 * _smoothstep(-probe[:, 2], 0.6, 1.5)
        lower = 1.0 / (1.0 + np.exp(np.clip((probe[:, 1] - line) / softness, -50, 50)))
        chin_y = qs["chin"][1]
        gate = _smoothstep(z, -2.6, -1.3) * _smoothstep(y, 2.0 * chin_y, 1.2 * chin_y)
        jaw_weight = lower * gate  # (V,)
        lip_zone = _gauss(q, (0, 0, 0), (0.42, 0.28, 0.6)) * flex
        self.jaw_lip_weight = jaw_weight * lip_zone  # the part of the jaw that the lip seal can hold
        self.jaw_rest_weight = jaw_weight - self.jaw_lip_weight
        hinge = np.array([0.0, 0.5, -3.5])
        arm = q - hinge
        # Rotation about the local x axis by theta (chin down): R p - p = sin(t) (k x p) + (1 - cos(t)) k x (k x p)
        k = np.array([1.0, 0.0, 0.0])
        self.jaw_sin = np.cross(k, arm)  # (V, 3), local units
        self.jaw_cos = np.cross(k, np.cross(k, arm))

        upper = (1 - lower) * flex
        mouth = _gauss(q, (0, 0, 0), (0.55, 0.45, 0.8)) * _smoothstep(z, -1.2, -0.3) * flex
        lips = _gauss(q, (0, 0, 0), (0.45, 0.25, 0.6)) * _smoothstep(z, -1.0, -0.3) * flex
        bases = np.zeros((len(CONTROLS), len(q), 3))

        def put(name, weight, direction):
            bases[CONTROL_INDEX[name]] = weight[:, None] * np.asarray(direction, float)

        put("lip_pucker", mouth, np.stack([-0.32 * x, -0.12 * y, np.full_like(x, 0.22)], -1))
        put("lip_stretch", mouth, np.stack([0.22 * x, np.zeros_like(x), np.full_like(x, -0.05)], -1))
        put("lip_press", lips, np.stack([np.zeros_like(x), 0.06 * (lower - upper), np.full_like(x, -0.06)], -1))
        put("lower_lip_tuck", lips * lower, (0.0, 0.10, -0.16))
        put("upper_lip_raise", lips * upper, (0.0, 0.12, 0.02))
        put("lip_close", lips, (0.0, 0.0, 0.0))  # acts through the jaw (see pose)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            corner = qs[f"mouth_corner_{side}"]
            w = _gauss(q, corner, (0.28, 0.3, 0.8)) * flex
            put(f"corner_up_{side}", w, (sign * 0.08, 0.16, -0.06))
            put(f"corner_down_{side}", w, (sign * 0.02, -0.14, -0.01))
        cheek = sum(
            _gauss(q, qs[f"mouth_corner_{s}"] + (0.3 * sg, 0.75, 0.0), (0.35, 0.3, 0.9)) for s, sg in (("left", 1), ("right", -1))
        ) * flex
        put("cheek_raise", cheek, (0.0, 0.10, 0.05))
        inner = sum(_gauss(q, qs[f"brow_inner_{s}"], (0.3, 0.28, 0.8)) for s in ("left", "right")) * flex
        outer = sum(_gauss(q, qs[f"brow_outer_{s}"], (0.35, 0.3, 0.8)) for s in ("left", "right")) * flex
        brow_x_sign = np.tanh(x / 0.12)  # smooth through the midline (no tear between the brows)
        put("brow_raise_inner", inner, (0.0, 0.14, 0.0))
        put("brow_raise_outer", outer, (0.0, 0.12, 0.0))
        put("brow_furrow", inner, np.stack([-0.08 * brow_x_sign, np.full_like(x, -0.08), np.full_like(x, 0.02)], -1))
        nose_side = _gauss(q, qs["nose_tip"] + (0.0, 0.3, -0.2), (0.35, 0.35, 0.6)) * flex
        put("nose_wrinkle", nose_side, (0.0, 0.06, 0.0))
        eyes_up = sum(_gauss(q, qs[f"eye_{s}"] + (0, 0.15, 0), (0.3, 0.12, 0.8)) for s in ("left", "right")) * flex
        eyes_down = sum(_gauss(q, qs[f"eye_{s}"] + (0, -0.17, 0), (0.3, 0.12, 0.8)) for s in ("left", "right")) * flex
        put("eye_widen", eyes_up, (0.0, 0.07, 0.0))
        put("eye_squint", eyes_down, (0.0, 0.06, 0.01))
        self.bases = frame.world_vectors(bases.reshape(-1, 3)).reshape(bases.shape)  # (C, V, 3) world units
        self.jaw_sin = frame.world_vectors(self.jaw_sin)
        self.jaw_cos = frame.world_vectors(self.jaw_cos)

        # Identity (per-subject face shape), static offsets in world units.
        nose = _gauss(q, qs["nose_tip"], (0.5, 0.6, 0.6)) * flex
        lower_face = _smoothstep(-y, -0.5, 1.0) * _smoothstep(z, -2.6, -1.0)
        brows = _gauss(q, (0, qs["brow_inner_left"][1], qs["brow_inner_left"][2]), (1.2, 0.4, 1.0)) * flex
        identity = np.zeros((len(IDENTITY_PARAMETERS), len(q), 3))
        identity[0] = np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1)
        identity[1] = (lower_face * flex)[:, None] * np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1)
        identity[2] = (lower_face * flex)[:, None] * np.stack([np.zeros_like(x), y, np.zeros_like(x)], -1)
        identity[3] = nose[:, None] * np.array([0.0, 0.0, 0.5])
        identity[4] = brows[:, None] * np.array([0.0, 0.3, 0.0])
        identity[5] = lips[:, None] * np.stack([np.zeros_like(x), np.zeros_like(x), np.full_like(x, 0.3)], -1)
        self.identity = frame.world_vectors(identity.reshape(-1, 3)).reshape(identity.shape)

    @property
    def n_vertices(self) -> int:
        return len(self.rest)

    def identity_offset(self, params: dict[str, float]) -> np.ndarray:
        """(V, 3) static shape offset for a subject: each parameter is a relative change (0.05 = 5 %)."""
        return sum(float(params.get(n, 0.0)) * self.identity[i] for i, n in enumerate(IDENTITY_PARAMETERS))

    def pose(self, controls: np.ndarray) -> np.ndarray:
        """controls: (N, C) in CONTROLS order -> vertices (N, V, 3) float32."""
        controls = np.asarray(controls, np.float64)
        theta = np.radians(JAW_MAX_DEGREES) * controls[:, CONTROL_INDEX["jaw_open"]]
        seal = np.clip(controls[:, CONTROL_INDEX["lip_close"]] + 0.8 * controls[:, CONTROL_INDEX["lower_lip_tuck"]], 0, 1)
        s, c = np.sin(theta), 1 - np.cos(theta)
        lip_hold = 1.0 - seal  # the lip seal keeps the lower lip where the jaw would have taken it from
        jaw = (
            (s[:, None, None] * self.jaw_sin + c[:, None, None] * self.jaw_cos) * self.jaw_rest_weight[None, :, None]
            + ((s * lip_hold)[:, None, None] * self.jaw_sin + (c * lip_hold)[:, None, None] * self.jaw_cos)
            * self.jaw_lip_weight[None, :, None]
        )
        linear = np.tensordot(controls, self.bases, axes=(1, 0))  # (N, V, 3)
        return (self.rest[None] + jaw + linear).astype(np.float32)
