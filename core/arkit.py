"""Apple's 52 ARKit blendshapes for any face mesh the rig knows, and a solver from animation to weights.

The model animates every vertex of its template; most face pipelines (Live Link Face, MetaHuman,
VRM avatars, game engines) take the 52 ARKit channels instead. `arkit_shapes` builds the 52
displacements at weight 1 from the project's face rig (core/face_rig.py), the rig that makes the
training corpus' faces, so the basis spans the model's motion: each rig control is one ARKit
shape or the exact sum of a left/right pair. What the rig lacks (eyelids, eye rotation, cheek puff,
jaw sideways and forward, lip roll and shrug, ...) is added here in the rig's face frame, so the
shapes come out in the mesh's own units and orientation. `ArkitSolver` turns an animation into
weights in [0, 1] by bounded least squares with a small temporal smoothness term.
"""

from __future__ import annotations

import numpy as np

from .errors import TalkingHeadError
from .face_rig import BIWI_LANDMARKS, CONTROL_INDEX, CONTROLS, LANDMARK_NAMES, FaceRig, face_frame, vertex_normals
from .template_head import REGION_NAMES, RIGID_REGIONS, load_template_head

# Apple's ARFaceAnchor.BlendShapeLocation, in Apple's order. "Left" is the face's own left.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
ARKIT_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}

# Shapes that are all zeros on every mesh, and why (for the README).
ZERO_SHAPES = {
    "tongueOut": "the heads have no tongue, and the training corpus never shows one",
}
# Shapes that are zero when the mesh has no separate eyeballs (no vertex_region with "eyes"/"iris",
# e.g. BIWI): looking around is a rotation of the eyeballs.
EYE_LOOK_SHAPES = tuple(f"eyeLook{d}{s}" for s in ("Left", "Right") for d in ("Down", "In", "Out", "Up"))

# Rig control -> the ARKit shapes whose sum is exactly that control's basis (jaw and lip seal aside).
RIG_CONTROL_SHAPES = {
    "jaw_open": ("jawOpen",), "lip_close": ("mouthClose",), "lip_pucker": ("mouthPucker",),
    "lip_stretch": ("mouthStretchLeft", "mouthStretchRight"), "lip_press": ("mouthPressLeft", "mouthPressRight"),
    "lower_lip_tuck": ("mouthRollLower",), "upper_lip_raise": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "corner_up_left": ("mouthSmileLeft",), "corner_up_right": ("mouthSmileRight",),
    "corner_down_left": ("mouthFrownLeft",), "corner_down_right": ("mouthFrownRight",),
    "cheek_raise": ("cheekSquintLeft", "cheekSquintRight"), "brow_raise_inner": ("browInnerUp",),
    "brow_raise_outer": ("browOuterUpLeft", "browOuterUpRight"), "brow_furrow": ("browDownLeft", "browDownRight"),
    "nose_wrinkle": ("noseSneerLeft", "noseSneerRight"), "eye_widen": ("eyeWideLeft", "eyeWideRight"),
    "eye_squint": ("eyeSquintLeft", "eyeSquintRight"),
}
assert set(RIG_CONTROL_SHAPES) == set(CONTROLS)

JAW_HINGE = (0.0, 0.5, -3.5)  # face_rig's jaw hinge, local units (mouth widths)
JAW_CONDYLE_X = 1.2  # half the distance between the jaw's joints, mouth widths
JAW_SIDEWAYS = 0.12  # chin travel at jawLeft / jawRight = 1, mouth widths
EYE_LOOK_DEGREES = 25.0  # eyeball rotation at eyeLook* = 1
EYELID_HEIGHT = 0.12  # mouth widths from the eye landmark to the upper lid, for meshes without eyeballs
SIDE_WIDTH = 0.08  # mouth widths: how soft the left/right split of symmetric controls is at the midline
ADMM_PENALTY = 0.05  # ArkitSolver's ADMM penalty, relative to each shape's squared norm
BIWI_VERTICES = 23370
TEMPLATE_MATCH_TOLERANCE = 1e-4


class TemplateLandmarksError(TalkingHeadError):
    """A template mesh for which no face landmarks are known, so it has no ARKit basis."""


def _gauss(q: np.ndarray, centre, radii) -> np.ndarray:
    d = (q - np.asarray(centre, float)) / np.asarray(radii, float)
    return np.exp(-0.5 * np.sum(d * d, axis=-1))


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """Right-handed rotation about local axis 0 (x), 1 (y) or 2 (z)."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def arkit_shapes(
    vertices: np.ndarray,
    faces: np.ndarray,
    landmarks: dict[str, int],
    vertex_region: np.ndarray | None = None,
    region_names: tuple[str, ...] = REGION_NAMES,
) -> np.ndarray:
    """(52, V, 3) float32: each ARKit shape's displacement at weight 1, in the mesh's units and axes.

    `landmarks` are the rig's (face_rig.LANDMARK_NAMES); `vertex_region` (V,) indexes `region_names`
    and marks eyeballs, teeth and mouth cavity: the rig moves those with the jaw only, as the corpus
    does, and the eyeballs turn for the eyeLook* shapes (zero without it).
    """
    rest = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    rigid = eyeball = None
    if vertex_region is not None:
        region = np.asarray(vertex_region)
        rigid = np.isin(region, [region_names.index(r) for r in RIGID_REGIONS if r in region_names])
        eyeball = np.isin(region, [region_names.index(r) for r in ("eyes", "iris") if r in region_names])
    rig = FaceRig(rest, faces, landmarks, rigid)
    frame = rig.frame
    q = frame.local(rest)  # (V, 3) in mouth widths: x the face's left, y up, z forward
    qs = {k: q[v] for k, v in landmarks.items()}
    x = q[:, 0]
    flex = 1.0 - rig.rigid.astype(np.float64)
    n_local = vertex_normals(rest, faces) @ frame.axes.T
    local_bases = rig.bases @ frame.axes.T / frame.unit  # (C, V, 3) the rig's linear bases, local units

    def basis(control: str) -> np.ndarray:
        return local_bases[CONTROL_INDEX[control]]

    def weight_map(control: str, direction) -> np.ndarray:
        """A rig control's scalar weight map, read back from its basis (weight * constant direction)."""
        return np.linalg.norm(basis(control), axis=1) / np.linalg.norm(direction)

    # Weight maps of the rig's regions (face_rig.FaceRig.__init__ gives each control's direction).
    lips_upper = weight_map("upper_lip_raise", (0.0, 0.12, 0.02))
    lips_lower = weight_map("lower_lip_tuck", (0.0, 0.10, -0.16))
    lips = lips_upper + lips_lower
    upper_part = np.where(lips > 1e-9, lips_upper / np.maximum(lips, 1e-9), (q[:, 1] > 0).astype(np.float64))
    mouth = basis("lip_pucker")[:, 2] / 0.22
    corner = {s: weight_map(f"corner_up_{s}", (0.08, 0.16, -0.06)) for s in ("left", "right")}
    jaw = rig.jaw_rest_weight + rig.jaw_lip_weight
    side = {"left": 1.0 / (1.0 + np.exp(-np.clip(x / SIDE_WIDTH, -50, 50)))}
    side["right"] = 1.0 - side["left"]  # left + right = 1: a split pair sums to the symmetric control
    sign = {"left": 1.0, "right": -1.0}

    shapes = np.zeros((len(ARKIT_NAMES), len(q), 3))

    def put(name: str, displacement: np.ndarray) -> None:
        shapes[ARKIT_INDEX[name]] = displacement

    def vec(weight: np.ndarray, direction) -> np.ndarray:
        return weight[:, None] * np.asarray(direction, float)

    # Rig controls, one shape each or split left/right.
    for control, names in RIG_CONTROL_SHAPES.items():
        if control in ("jaw_open", "lip_close"):
            continue
        if len(names) == 1:
            put(names[0], basis(control))
        else:
            for name in names:
                put(name, basis(control) * side["left" if name.endswith("Left") else "right"][:, None])
    # The jaw is a rotation (exact at weight 1); mouthClose is ARKit's lip seal against an open jaw.
    open_jaw = np.zeros((2, len(CONTROLS)))
    open_jaw[:, CONTROL_INDEX["jaw_open"]] = 1.0
    open_jaw[1, CONTROL_INDEX["lip_close"]] = 1.0
    posed = rig.pose(open_jaw).astype(np.float64) @ frame.axes.T / frame.unit  # local units
    rest_local = rest @ frame.axes.T / frame.unit
    put("jawOpen", posed[0] - rest_local)
    put("mouthClose", posed[1] - posed[0])
    # The jaw slides forward and a little down; sideways it turns about the condyle on that side
    # (x = +-JAW_CONDYLE_X at the hinge), so the other side comes forward (not a mirror of the other).
    put("jawForward", vec(jaw, (0.0, -0.03, 0.10)))
    for s in ("left", "right"):
        angle = sign[s] * JAW_SIDEWAYS / (qs["chin"][2] - JAW_HINGE[2])  # the chin moves JAW_SIDEWAYS
        arm = q - np.array([sign[s] * JAW_CONDYLE_X, JAW_HINGE[1], JAW_HINGE[2]])
        put(f"jaw{s.title()}", jaw[:, None] * angle * np.stack([arm[:, 2], np.zeros_like(x), -arm[:, 0]], -1))
        # Both lips move to that side; that side's half of the mouth also draws back, most at the corner.
        put(f"mouth{s.title()}", vec(mouth, (sign[s] * 0.15, 0.0, 0.0)) + vec(mouth * side[s] * np.abs(x), (0.0, 0.0, -0.10)))

    # Lips: funnel, roll and shrug, lower lip down, dimples.
    put("mouthFunnel", np.stack([-0.15 * x * mouth, 0.05 * lips_upper - 0.06 * lips_lower, 0.10 * mouth], -1))
    put("mouthRollUpper", vec(lips_upper**2, (0.0, -0.08, -0.14)))
    chin = _gauss(q, qs["chin"] + (0.0, 0.3, 0.0), (0.5, 0.35, 0.6)) * flex
    put("mouthShrugLower", vec(mouth * (1 - upper_part), (0.0, 0.06, 0.06)) + vec(chin, (0.0, 0.05, 0.02)))
    put("mouthShrugUpper", vec(mouth * upper_part, (0.0, 0.05, 0.06)))
    for s in ("left", "right"):
        put(f"mouthLowerDown{s.title()}", vec(lips_lower * side[s], (0.0, -0.12, 0.02)))
        put(f"mouthDimple{s.title()}", vec(corner[s], (sign[s] * 0.06, 0.0, -0.08)))

    # Cheeks puff out along the skin's normal.
    cheeks = sum(_gauss(q, qs[f"mouth_corner_{s}"] + (sign[s] * 0.35, 0.3, -0.45), (0.35, 0.4, 0.6)) for s in sign) * flex
    put("cheekPuff", 0.10 * cheeks[:, None] * n_local)

    # Eyelids: the upper lid comes down over the eye (blink); eyeballs turn (look). With eyeballs
    # known, the lids are placed from the ball (centre, radius); else from the eye landmark.
    for s in ("left", "right"):
        ball = None
        if eyeball is not None:
            ball = eyeball & ((x > 0) if s == "left" else (x < 0))
            ball = ball if ball.any() else None
        eye, lid = qs[f"eye_{s}"], EYELID_HEIGHT
        if ball is not None:
            eye = q[ball].mean(axis=0)
            lid = 1.15 * float(np.linalg.norm(q[ball] - eye, axis=1).max())
        upper_lid = _gauss(q, eye + (0.0, lid, 0.0), (0.32, 0.6 * lid, 0.8)) * flex
        lower_lid = _gauss(q, eye - (0.0, 0.8 * lid, 0.0), (0.30, 0.4 * lid, 0.8)) * flex
        put(f"eyeBlink{s.title()}", vec(upper_lid, (0.0, -1.3 * lid, 0.2 * lid)) + vec(lower_lid, (0.0, 0.25 * lid, 0.0)))
        if ball is None:
            continue
        arm = q[ball] - eye
        toward_left = "Out" if s == "left" else "In"  # the gaze turning toward the face's left
        toward_right = "In" if s == "left" else "Out"
        for name, axis, degrees in (
            (f"eyeLook{toward_left}", 1, EYE_LOOK_DEGREES),  # +y rotation turns +z (forward) toward +x
            (f"eyeLook{toward_right}", 1, -EYE_LOOK_DEGREES),
            ("eyeLookDown", 0, EYE_LOOK_DEGREES),  # +x rotation turns +z toward -y
            ("eyeLookUp", 0, -EYE_LOOK_DEGREES),
        ):
            displacement = np.zeros_like(q)
            displacement[ball] = arm @ _rotation(axis, degrees).T - arm
            put(f"{name}{s.title()}", displacement)

    world = frame.world_vectors(shapes.reshape(-1, 3)).reshape(shapes.shape)
    return world.astype(np.float32)


# --- landmarks for a bundle's template ------------------------------------------------------------

def _valid_face_frame(vertices: np.ndarray, landmarks: dict[str, int]) -> bool:
    """Do these landmarks make a plausible face: a mouth, a face longer than it, a nose in front."""
    if any(n not in landmarks or not 0 <= int(landmarks[n]) < len(vertices) for n in LANDMARK_NAMES):
        return False
    with np.errstate(all="ignore"):
        frame = face_frame(np.asarray(vertices, np.float64), landmarks)
        if not (np.isfinite(frame.axes).all() and np.isfinite(frame.unit) and frame.unit > 0):
            return False
        p = frame.local(np.asarray(vertices, np.float64)[[landmarks[n] for n in LANDMARK_NAMES]])
    at = dict(zip(LANDMARK_NAMES, p))
    return bool(
        at["brow_inner_left"][1] - at["chin"][1] > 1.0
        and at["nose_tip"][2] > 0.1
        and at["eye_left"][0] > 0 > at["eye_right"][0]
    )


def template_landmarks(
    template_vertices: np.ndarray | None,
    n_vertices: int,
    config_landmarks: dict[str, int] | None = None,
) -> tuple[dict[str, int], np.ndarray | None]:
    """(landmarks, vertex_region or None) for a bundle's template mesh.

    The config's landmarks when given; the demo head's (with its regions) when the template is
    core/assets/head.ply; BIWI_LANDMARKS for a 23,370-vertex template they fit; else an error.
    """
    head = load_template_head()
    vertices = None if template_vertices is None else np.asarray(template_vertices, np.float64).reshape(-1, 3)
    is_head = (
        vertices is not None and n_vertices == len(head.vertices) == len(vertices)
        and float(np.max(np.abs(vertices - head.vertices))) <= TEMPLATE_MATCH_TOLERANCE
    )
    if config_landmarks:
        landmarks = {k: int(v) for k, v in config_landmarks.items()}
        if vertices is not None and not _valid_face_frame(vertices, landmarks):
            raise TemplateLandmarksError(
                "the bundle's landmarks do not make a face on its template (need "
                f"{', '.join(LANDMARK_NAMES)}): fix `landmarks` in config.json")
        return landmarks, (head.vertex_region if is_head else None)
    if is_head:
        return dict(head.landmarks), head.vertex_region
    if n_vertices == BIWI_VERTICES and vertices is not None and _valid_face_frame(vertices, BIWI_LANDMARKS):
        return dict(BIWI_LANDMARKS), None
    raise TemplateLandmarksError(
        f"the bundle's template ({n_vertices} vertices) has no face landmarks, so it has no ARKit channels: "
        "add `landmarks` (vertex indices of " + ", ".join(LANDMARK_NAMES) + ") to its config.json")


def template_arkit_shapes(vertices: np.ndarray, faces: np.ndarray, config_landmarks: dict[str, int] | None = None) -> np.ndarray:
    """(52, V, 3) ARKit basis of a bundle's template mesh (see `template_landmarks`)."""
    landmarks, region = template_landmarks(vertices, len(vertices), config_landmarks)
    return arkit_shapes(vertices, faces, landmarks, region)


# --- animation -> weights -------------------------------------------------------------------------

# The orthonormal DCT-II and its inverse along axis 0, with numpy's FFT (Makhoul's reordering):
# Blender's own Python, which reads takes and builds shape keys, has numpy but no scipy.


def _frame_index(n: int, ndim: int) -> np.ndarray:
    return np.arange(n).reshape((-1,) + (1,) * (ndim - 1))


def dct_ortho(x: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II of x along its first axis (scipy.fft.dct(x, 2, axis=0, norm="ortho"))."""
    n = x.shape[0]
    v = np.concatenate([x[::2], x[1::2][::-1]], axis=0)
    k = _frame_index(n, x.ndim)
    out = np.real(np.fft.fft(v, axis=0) * np.exp(-1j * np.pi * k / (2 * n))) * np.sqrt(2.0 / n)
    out[0] /= np.sqrt(2.0)
    return out


def idct_ortho(coefficients: np.ndarray) -> np.ndarray:
    """The inverse of `dct_ortho` (the orthonormal DCT-III) along the first axis."""
    n = coefficients.shape[0]
    k = _frame_index(n, coefficients.ndim)
    real = coefficients * np.sqrt(n / 2.0)
    real[0] = coefficients[0] * np.sqrt(n)
    # For a real signal, Im(U_k) = -Re(U_{n-k}) where U = FFT(v) e^{-i pi k / 2n}.
    mirror = np.concatenate([np.zeros_like(real[:1]), real[1:][::-1]], axis=0)
    v = np.real(np.fft.ifft((real - 1j * mirror) * np.exp(1j * np.pi * k / (2 * n)), axis=0))
    x = np.empty_like(v)
    half = (n + 1) // 2
    x[::2], x[1::2] = v[:half], v[half:][::-1]
    return x

# Frames per chunk of the ARKit solve's projection (1.7 MB of float32 at 4,482 vertices): small
# enough that each chunk's temporaries reuse the last one's memory instead of fresh pages.
SOLVE_CHUNK_FRAMES = 32


class ArkitSolver:
    """Per-frame displacements from rest (N, V, 3) -> ARKit weights (N, 52) in [0, 1].

    Minimises sum_t 1/2 ||B w_t - d_t||^2 + lambda/2 sum_t ||w_t - w_{t-1}||^2 with 0 <= w <= 1, where
    B holds the non-zero shapes and lambda = smoothness * (mean squared norm of a shape), so
    `smoothness` does not depend on the mesh's size or units. The smoothness couples frames through
    the path graph's Laplacian, which a DCT-II diagonalises; with the eigenvectors of B^T B, solving
    the unconstrained problem is two DCTs and two small matrix products. The bounds are then
    enforced by ADMM, started from the clipped unconstrained optimum (exact when no bound is
    active), with the same diagonalisation for B^T B + P.
    Only vertices that some shape moves (and `vertices_mask` keeps) enter the solve: motion
    elsewhere cannot be explained and does not change the weights.
    """

    def __init__(self, shapes: np.ndarray, smoothness: float = 0.05, vertices_mask: np.ndarray | None = None,
                 iterations: int = 40, tolerance: float = 1e-4) -> None:
        shapes = np.asarray(shapes, np.float32)
        if shapes.ndim != 3 or shapes.shape[0] != len(ARKIT_NAMES) or shapes.shape[2] != 3:
            raise ValueError(f"shapes must be (52, V, 3), not {shapes.shape}")
        self.shapes = shapes
        self.n_vertices = shapes.shape[1]
        size = np.sqrt(np.einsum("kvc,kvc->kv", shapes, shapes))  # (52, V): |shape| per vertex (3x faster than linalg.norm here)
        self.active_shapes = np.where(size.max(axis=1) > 0)[0]  # all-zero shapes keep weight 0
        moved = size[self.active_shapes].max(axis=0, initial=0.0) > 1e-6 * max(float(size.max(initial=0.0)), 1e-30)
        if vertices_mask is not None:
            moved &= np.asarray(vertices_mask, bool)
        self.vertices = np.where(moved)[0]
        basis = shapes[np.ix_(self.active_shapes, self.vertices)].reshape(len(self.active_shapes), -1).T  # (3V', K), one copy
        self.basis = np.ascontiguousarray(basis, np.float64)  # (3V', K)
        self._basis32 = np.ascontiguousarray(basis, np.float32)  # for B^T d_t: no float64 copy of the frames
        gram = self.basis.T @ self.basis  # (K, K)
        diagonal = np.diag(gram).copy()
        self.smoothness = float(smoothness)
        self.lam = self.smoothness * float(diagonal.mean()) if len(diagonal) else 0.0
        # ADMM penalty per weight, proportional to its shape's squared norm (Jacobi scaling); the
        # factor was tuned on corpus-like animation: 30 iterations come within 0.1 % of the optimum.
        self.penalty = ADMM_PENALTY * diagonal
        self._free = np.linalg.eigh(gram)  # for the unconstrained optimum
        self._admm = np.linalg.eigh(gram + np.diag(self.penalty))
        self.iterations, self.tolerance = iterations, tolerance

    def _solver(self, eig, n: int):
        """target (N, K) -> W solving (M + lam L) W = target, for M = V diag(values) V^T."""
        values, vectors = eig
        if self.lam == 0.0 or n == 1:
            inverse = 1.0 / np.maximum(values, 1e-12 * values.max())
            return lambda target: ((target @ vectors) * inverse) @ vectors.T
        mu = 2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)  # path Laplacian eigenvalues (DCT-II)
        inverse = 1.0 / np.maximum(values[None, :] + self.lam * mu[:, None], 1e-12 * values.max())
        return lambda target: idct_ortho(dct_ortho(target @ vectors) * inverse) @ vectors.T

    def solve(self, displacements: np.ndarray, rest: np.ndarray | None = None) -> np.ndarray:
        """(N, V, 3) displacements from the rest pose -> (N, 52) float32 weights in [0, 1]. With
        `rest` (V, 3), `displacements` are the faces themselves, and their displacements from
        `rest` are taken a few frames at a time (no second (N, V, 3) array)."""
        d = np.asarray(displacements, np.float32)
        if d.ndim != 3 or d.shape[1:] != (self.n_vertices, 3):
            raise ValueError(f"displacements must be (N, {self.n_vertices}, 3), not {d.shape}")
        n = len(d)
        weights = np.zeros((n, len(ARKIT_NAMES)), np.float32)
        if n == 0 or len(self.active_shapes) == 0:
            return weights
        # (N, K) B^T d_t, the one large product: a chunk of frames at a time, so that long clips
        # need no float64 copy of every frame.
        rest_used = None if rest is None else np.asarray(rest, np.float32)[self.vertices]  # (V', 3)
        rhs = np.empty((n, self.basis.shape[1]), np.float64)
        for start in range(0, n, SOLVE_CHUNK_FRAMES):
            used = np.take(d[start:start + SOLVE_CHUNK_FRAMES], self.vertices, axis=1)  # (n', V', 3)
            if rest_used is not None:
                used -= rest_used
            rhs[start:start + SOLVE_CHUNK_FRAMES] = used.reshape(len(used), -1) @ self._basis32
        free = self._solver(self._free, n)(rhs)
        z = np.clip(free, 0.0, 1.0)
        if np.array_equal(z, free):  # no bound active: that is the answer
            weights[:, self.active_shapes] = z
            return weights
        step = self._solver(self._admm, n)
        p = self.penalty
        u = np.zeros_like(z)
        for i in range(self.iterations):
            w = step(rhs + (z - u) * p)
            w_relaxed = 1.6 * w + (1 - 1.6) * z  # over-relaxation (Boyd et al. 2011, 3.4.3)
            z_new = np.clip(w_relaxed + u, 0.0, 1.0)
            u += w_relaxed - z_new
            if i % 5 == 4 and np.max(np.abs(z_new - z)) < self.tolerance and np.max(np.abs(w - z_new)) < self.tolerance:
                z = z_new
                break
            z = z_new
        weights[:, self.active_shapes] = z
        return weights

    def reconstruct(self, weights: np.ndarray) -> np.ndarray:
        """(N, 52) weights -> (N, V, 3) float32 displacements: the ARKit blend of the shapes."""
        w = np.asarray(weights, np.float32)
        return (w @ self.shapes.reshape(len(ARKIT_NAMES), -1)).reshape(len(w), self.n_vertices, 3)
