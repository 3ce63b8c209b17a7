"""Evaluation metrics of METHOD.md section 11, on (frames, V, 3) vertex arrays."""

from __future__ import annotations

import numpy as np


def lip_vertex_error(prediction: np.ndarray, target: np.ndarray, lip: np.ndarray) -> float:
    """LVE: per frame, the max over lip vertices of the squared L2 error; mean over frames."""
    squared = ((prediction[:, lip] - target[:, lip]) ** 2).sum(-1)
    return float(squared.max(axis=1).mean())


def max_face_error(prediction: np.ndarray, target: np.ndarray) -> float:
    """Same as LVE over all vertices."""
    return float(((prediction - target) ** 2).sum(-1).max(axis=1).mean())


def mean_vertex_error(prediction: np.ndarray, target: np.ndarray) -> float:
    """The plain mean per-vertex L2 distance."""
    return float(np.linalg.norm(prediction - target, axis=-1).mean())


def upper_face_dynamics(vertices: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Per upper-face vertex, std over time of the squared displacement norm; mean over vertices."""
    motion = ((vertices[:, upper] - template[upper]) ** 2).sum(-1)
    return float(motion.std(axis=0).mean())


def face_dynamics_deviation(prediction: np.ndarray, target: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """FDD for one sequence: ground truth's upper-face dynamics minus the prediction's (signed)."""
    return upper_face_dynamics(target, template, upper) - upper_face_dynamics(prediction, template, upper)


def lip_distance(vertices: np.ndarray, upper_lip: int, lower_lip: int) -> np.ndarray:
    """Distance between an upper-lip and a lower-lip vertex over time, (frames,)."""
    return np.linalg.norm(vertices[:, upper_lip] - vertices[:, lower_lip], axis=-1)


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) rotation vector components in degrees (x: pitch/nod, y: yaw, z: roll)."""
    from scipy.spatial.transform import Rotation

    flat = rotation.reshape(-1, 3, 3)
    return np.degrees(Rotation.from_matrix(flat).as_rotvec()).reshape(rotation.shape[:-2] + (3,))


def head_motion_diversity(rotations: np.ndarray, translations: np.ndarray) -> dict[str, list[float]]:
    """Per-axis std over samples of one input, averaged over frames.

    rotations (S, N, 3, 3), translations (S, N, 3) for S samples (seeds) of the same clip.
    """
    angles = rotation_angles(rotations)
    return {
        "rotation_deg": angles.std(axis=0).mean(axis=0).tolist(),
        "translation": translations.std(axis=0).mean(axis=0).tolist(),
    }
