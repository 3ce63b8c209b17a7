"""Plain math the Blender layer needs, kept free of `bpy` so it is tested without Blender: the
template's axes in Blender's, model frames on the scene's time line, rotations as quaternions
(slerp, scaling an angle), and the PCA basis of a compact take."""

from __future__ import annotations

import numpy as np

# The template's coordinates are Y-up with the face towards +Z (BIWI); Blender is Z-up and
# looks at a face from -Y. This rotation turns the first into the second: (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
COMPACT_ENERGY = 0.999  # share of a clip's motion energy that a compact take keeps

# ---------------------------------------------------------------------------------------------
# Time: the one place that maps model frames (25 fps) to scene frames.


def model_frame_positions(n_frames: int, model_fps: float, fps: float, start: float) -> np.ndarray:
    """Scene frame (float) at which model frame 0..n-1 happens: start + t * fps / model_fps."""
    return start + np.arange(n_frames, dtype=np.float64) * (fps / model_fps)


def covered_scene_frames(n_frames: int, model_fps: float, fps: float, start: float) -> np.ndarray:
    """The whole scene frames from the clip's first to its last model frame, (M,) int."""
    first = int(np.ceil(start - 1e-6))
    last = int(np.floor(start + (n_frames - 1) * fps / model_fps + 1e-6))
    return np.arange(first, max(first, last) + 1)


def resample_head_motion(
    rotation: np.ndarray, translation: np.ndarray, model_fps: float, fps: float, start: float, amplitude: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head motion at every covered scene frame: frames (M,), rotations (M, 3, 3) by slerp,
    translations (M, 3) by linear interpolation; `amplitude` scales angle and translation."""
    n = rotation.shape[0]
    frames = covered_scene_frames(n, model_fps, fps, start)
    position = np.clip((frames - start) * (model_fps / fps), 0.0, n - 1)  # in model frames
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n - 1)
    weight = position - low
    quats = matrices_to_quaternions(rotation)
    quats = scale_rotation(quats, amplitude)
    rotations = quaternions_to_matrices(slerp(quats[low], quats[high], weight))
    translations = (1 - weight)[:, None] * translation[low] + weight[:, None] * translation[high]
    return frames, rotations, amplitude * translations


# ---------------------------------------------------------------------------------------------
# Rotations as unit quaternions (w, x, y, z), vectorised.


def matrices_to_quaternions(matrices: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 4) unit quaternions with a continuous sign along N."""
    m = np.asarray(matrices, dtype=np.float64)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Four candidate formulas; use for each matrix the one with the largest divisor (stable).
    candidates = np.stack(
        [
            np.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], 1),
            np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], 1),
            np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], 1),
            np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], 1),
        ],
        axis=1,
    )  # (N, 4 candidates, 4)
    best = np.argmax(np.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1), axis=1)
    quats = candidates[np.arange(len(m)), best]
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    quats[quats[:, 0] < 0] *= -1
    for i in range(1, len(quats)):  # q and -q are the same rotation: keep neighbours close
        if np.dot(quats[i], quats[i - 1]) < 0:
            quats[i] = -quats[i]
    return quats


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
        ],
        axis=1,
    )


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions a and b (N, 4) at t (N,)."""
    dot = np.sum(a * b, axis=1)
    b = np.where(dot[:, None] < 0, -b, b)
    dot = np.abs(dot).clip(max=1.0)
    angle = np.arccos(dot)
    small = angle < 1e-6
    sin = np.where(small, 1.0, np.sin(angle))
    wa = np.where(small, 1 - t, np.sin((1 - t) * angle) / sin)
    wb = np.where(small, t, np.sin(t * angle) / sin)
    out = wa[:, None] * a + wb[:, None] * b
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def half_angles_axes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit quaternions (N, 4) -> half their rotation angles (N,) and their unit axes (N, 3)
    (zero for no rotation). The rotation vectors are 2 * half * axis."""
    half = np.arccos(np.clip(q[:, 0], -1, 1))
    return half, q[:, 1:] / np.maximum(np.sin(half), 1e-12)[:, None]


def scale_rotation(q: np.ndarray, amplitude: float | np.ndarray) -> np.ndarray:
    """The same axes, `amplitude` times the angles (q ** amplitude): one number, or one per
    rotation (N,)."""
    if not np.ndim(amplitude):
        if amplitude == 1.0:
            return q
        if amplitude <= 1.0:
            return slerp(np.tile([1.0, 0.0, 0.0, 0.0], (len(q), 1)), q, np.full(len(q), amplitude))
    half, axis = half_angles_axes(q)
    half = half * np.asarray(amplitude, np.float64)
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], axis=1)


def quaternions_to_rotvecs(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (N, 4) -> rotation vectors (N, 3): the axis times the angle, in radians."""
    half, axis = half_angles_axes(q)
    return 2 * half[:, None] * axis


def matrices_to_rotvecs(rotation: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 3) rotation vectors in radians (x nod, y turn, z tilt for a head)."""
    return quaternions_to_rotvecs(matrices_to_quaternions(np.asarray(rotation, np.float64)))


def rotvecs_to_quaternions(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (N, 3) -> unit quaternions (N, 4)."""
    angle = np.linalg.norm(rotvec, axis=1)
    unit = rotvec / np.maximum(angle, 1e-12)[:, None]
    return np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * unit], axis=1)


def scale_rotation_axes(q: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Each component of the rotations' vectors (x, y, z) times its gain (3,): for the few
    degrees a head turns, each axis's angle times its own factor."""
    return rotvecs_to_quaternions(quaternions_to_rotvecs(q) * np.asarray(gains, np.float64))


# ---------------------------------------------------------------------------------------------
# Compact takes.


def compact_basis(displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA (uncentred) of a clip's displacements (N, V, 3): shapes (K, V, 3) and weights (N, K)
    in [-1, 1] with sum_k weights[t, k] * shapes[k] ~ displacement[t], keeping at least
    `COMPACT_ENERGY` of the motion energy."""
    n = displacement.shape[0]
    flat = displacement.reshape(n, -1).astype(np.float64)
    gram = flat @ flat.T  # (N, N): cheaper than an SVD of (N, 3V)
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    energy = np.clip(eigenvalues[order], 0, None)
    if energy.sum() <= 0:
        return np.zeros((1,) + displacement.shape[1:], np.float32), np.zeros((n, 1))
    keep = int(np.searchsorted(np.cumsum(energy) / energy.sum(), COMPACT_ENERGY - 1e-12) + 1)
    keep = min(keep, int(np.count_nonzero(energy > energy[0] * 1e-12)))
    singular = np.sqrt(energy[:keep])
    u = eigenvectors[:, order[:keep]]  # (N, K)
    components = (u.T @ flat) / singular[:, None]  # (K, 3V), orthonormal rows
    coefficients = u * singular  # (N, K)
    scale = np.abs(coefficients).max(axis=0)
    scale[scale == 0] = 1.0
    shapes = (components * scale[:, None]).reshape((keep,) + displacement.shape[1:])
    return shapes.astype(np.float32), coefficients / scale
