"""The balance of head motion between its axes: nod (x), turn (y) and tilt (z).

Why: the demo bundle's Gh tilts the head about as much as it nods (1.1-1.5 degrees on each,
std over time), where the corpus's heads nod three times as much as they tilt (README, Head
motion). How much the head moves overall is set elsewhere (the heard emotion's amplitude, a
directed emotion's gains, both fitted on the corpus's head amplitude); this sets only how that
motion is shared between the axes: each rotation-vector component times a factor b_i, chosen so
that on the corpus's training takes Gh's per-axis spread takes the ground truth's proportions
while its overall size (the norm over axes) stays what it was:

    b_i = (g_i / |g|) / (m_i / |m|),    g, m: per-axis std over time of the truth's and Gh's rotation vectors

(training/head_balance.py measures g and m; config.json `head_axis_balance` holds b; an axis
the corpus never turns about gets 0). A bundle without it keeps Gh's motion as it is.

Smoothing: Gh's head shakes from frame to frame (the std of its steps is 0.7-0.8 of its std over
time; the corpus's 0.1-0.3). config.json `head_smoothing_s` (0: off) passes the rotation vectors
and translation through a causal exponential average of that time constant, last of all, the
same for a take and a stream (which carries the filter's state from block to block); the fit
measures Gh smoothed and gives the amplitude the smoothing takes back in the balance. One time
constant per rotation axis (a list of 3: nod, turn, tilt; the translation takes the nod's),
because the corpus's heads turn and tilt more slowly than they nod (steps 0.14 and 0.07 of the
spread against the nod's 0.28), so one constant left the turn and tilt shaking (README, Head motion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import ModelConfig
from .geometry import matrices_to_quaternions, matrices_to_rotvecs, quaternions_to_matrices, rotvecs_to_quaternions, scale_rotation_axes


def axis_balance(truth_std: Sequence[float], model_std: Sequence[float]) -> np.ndarray:
    """(3,) factors b that give per-axis spreads `model_std` the proportions of `truth_std` at
    the same norm: b_i = (g_i / |g|) / (m_i / |m|)."""
    g, m = np.asarray(truth_std, np.float64), np.asarray(model_std, np.float64)
    if g.shape != (3,) or m.shape != (3,) or not (g >= 0).all() or not g.any() or not (m > 0).all():
        raise ValueError("axis_balance needs 3 spreads on each side (x, y, z): the model's positive, the truth's not all zero")
    return (g / np.linalg.norm(g)) / (m / np.linalg.norm(m))


def balance_head_motion(rotation: np.ndarray, balance: Sequence[float] | None) -> np.ndarray:
    """(N, 3, 3) rotations with their angle about each axis times `balance` (3,); unchanged when None."""
    if balance is None or len(rotation) == 0:
        return rotation
    q = matrices_to_quaternions(np.asarray(rotation, np.float64))
    return quaternions_to_matrices(scale_rotation_axes(q, np.asarray(balance, np.float64))).astype(rotation.dtype)


def smoothing_weight(seconds: float | Sequence[float], fps: float) -> float | np.ndarray:
    """The weight of each new frame in an exponential average of time constant `seconds` (1: none);
    for 3 constants (nod, turn, tilt), (3,) weights."""
    if isinstance(seconds, (list, tuple, np.ndarray)):
        return np.array([smoothing_weight(float(s), fps) for s in seconds])
    return 1.0 if seconds <= 0 else float(1.0 - np.exp(-1.0 / (seconds * fps)))


def smooth_head_motion(rotation: np.ndarray, translation: np.ndarray, weight: float | np.ndarray,
                       last: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(N, 3, 3) rotations and (N, 3) translations through a causal exponential average,
    y_t = y_(t-1) + weight (x_t - y_(t-1)), on the rotation vectors. `weight`: one for all, or
    (3,) one per rotation axis (the translation takes the first's). `last`: the previous frame's
    filtered (rotation vector, translation), from the block before (a stream); without it the
    first frame starts the average. -> rotation, translation, the new `last`"""
    weights = np.broadcast_to(np.asarray(weight, np.float64), (3,))
    if (weights >= 1.0).all() or len(rotation) == 0:
        return rotation, translation, last
    weights = np.concatenate([weights, np.full(3, weights[0])])  # (6,): rotation axes, then translation
    rotvec = matrices_to_rotvecs(rotation)
    x = np.concatenate([rotvec, np.asarray(translation, np.float64)], axis=1)  # (N, 6)
    y = np.empty_like(x)
    previous = x[0] if last is None else np.concatenate(last)
    for t in range(len(x)):  # a plain loop: scipy.signal's filter costs a second of import in every animate
        previous = previous + weights * (x[t] - previous)
        y[t] = previous
    out = quaternions_to_matrices(rotvecs_to_quaternions(y[:, :3])).astype(rotation.dtype)
    return out, y[:, 3:].astype(translation.dtype), (y[-1, :3].copy(), y[-1, 3:].copy())


def finish_head_motion(rotation: np.ndarray, translation: np.ndarray, config: ModelConfig,
                       last: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The bundle's last steps on head motion, after the emotion's amplitude: the balance between
    the axes, then the smoothing (`last`: a stream's previous block's). -> rotation, translation, last"""
    rotation = balance_head_motion(rotation, config.head_axis_balance)
    return smooth_head_motion(rotation, translation, smoothing_weight(config.head_smoothing_s, config.fps), last)


__all__ = ["axis_balance", "balance_head_motion", "finish_head_motion", "smooth_head_motion", "smoothing_weight"]
