"""Head-motion ground truth: per-frame rotation (N, 3, 3) and translation (N, 3).

Nods on stressed syllables (the loudest, longest vowels), bigger for high-arousal emotions, on
top of slow drift, sway and a habitual tilt; stochastic across takes (the take's rng)."""

from __future__ import annotations

import numpy as np

from .phones import VOWELS


def _smooth_noise(rng: np.random.Generator, n: int, cutoff_frames: float) -> np.ndarray:
    noise = rng.standard_normal(n + 64)
    width = max(1.0, cutoff_frames)
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    smooth = np.convolve(noise, kernel / np.sqrt(np.sum(kernel**2)), mode="same")[32 : 32 + n]
    return smooth


def euler_to_matrix(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Radians -> (N, 3, 3) proper rotations R = Ry(yaw) Rx(pitch) Rz(roll) (x left, y up, z forward)."""
    cp, sp, cy, sy, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(pitch), np.zeros_like(pitch)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return ry @ rx @ rz


def head_motion(phones, level: np.ndarray, times: np.ndarray, arousal: float, emotion: str, style, rng: np.random.Generator):
    """-> rotation (N, 3, 3) float32, translation (N, 3) float32, nod times (list of s)."""
    n = len(times)
    amp = style.head_amplitude * (0.5 + arousal)
    pitch = np.radians(1.2) * amp * _smooth_noise(rng, n, 12)
    yaw = np.radians(2.0) * style.sway * (0.6 + arousal) * _smooth_noise(rng, n, 20)
    roll = np.radians(style.tilt_bias_degrees) + np.radians(0.8) * amp * _smooth_noise(rng, n, 16)
    # Nods: the stressed syllables are the vowels with the most energy x duration.
    vowels = [(s, e) for p, s, e in phones if p in VOWELS]
    nods = []
    if vowels:
        frame = np.clip(((np.array([(s + e) / 2 for s, e in vowels])) * 25).astype(int), 0, n - 1)
        strength = level[frame] * np.array([e - s for s, e in vowels])
        threshold = np.quantile(strength, 1 - style.nod_rate * 0.6)
        for (s, _), k in zip(vowels, strength):
            if k >= threshold and (not nods or s - nods[-1] > 0.35):
                nods.append(s)
                size = np.radians(rng.uniform(1.5, 3.5)) * amp
                t = times - s + 0.05
                bump = np.where(t > 0, (t / 0.15) * np.exp(1 - t / 0.15), 0.0)  # peaks 0.1 s after onset
                pitch += size * bump
                yaw += 0.3 * size * bump * rng.choice([-1, 1])
    if emotion == "sad":
        pitch += np.radians(4.0)  # head down
    elif emotion == "surprised":
        pitch -= np.radians(3.0) * np.clip(times / 0.5, 0, 1)  # head back at the onset
    elif emotion == "angry":
        pitch += np.radians(1.5)
    rotation = euler_to_matrix(pitch, yaw, roll).astype(np.float32)
    translation = np.stack(
        [0.01 * amp * _smooth_noise(rng, n, 25), 0.004 * amp * _smooth_noise(rng, n, 20), 0.02 * pitch + 0.006 * amp * _smooth_noise(rng, n, 25)],
        -1,
    ).astype(np.float32)
    return rotation, translation, nods
