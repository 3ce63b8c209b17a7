"""Neutral targets for emotional takes (METHOD.md section 8) by dynamic time warping.

BIWI records each sentence neutrally and emotionally, at different speeds. DTW over MFCCs
of the two audios gives, for each frame of the emotional take, the matching moment of the
neutral take; resampling the neutral vertex sequence there gives a neutral face that keeps
pace with the emotional audio.
"""

from __future__ import annotations

import numpy as np

from ..core.audio import FACE_FPS, SAMPLE_RATE


def mfcc_frames(samples: np.ndarray, fps: int = FACE_FPS) -> np.ndarray:
    """MFCCs (13, frames) with one column per face frame (hop = 1 / fps)."""
    import librosa

    hop = SAMPLE_RATE // fps
    return librosa.feature.mfcc(y=samples, sr=SAMPLE_RATE, n_mfcc=13, hop_length=hop, n_fft=4 * hop)


def warp_path(emotional_audio: np.ndarray, neutral_audio: np.ndarray, fps: int = FACE_FPS) -> tuple[np.ndarray, int]:
    """For each emotional MFCC frame, the matching (fractional) neutral MFCC frame index,
    shape (frames,), and the neutral take's MFCC frame count."""
    import librosa

    x, y = mfcc_frames(emotional_audio, fps), mfcc_frames(neutral_audio, fps)
    _, path = librosa.sequence.dtw(X=x, Y=y, metric="euclidean")
    path = path[::-1]
    positions = np.zeros(x.shape[1])
    counts = np.zeros(x.shape[1])
    np.add.at(positions, path[:, 0], path[:, 1])
    np.add.at(counts, path[:, 0], 1)
    return positions / np.maximum(counts, 1), y.shape[1]


def warp_neutral(
    emotional_audio: np.ndarray, neutral_audio: np.ndarray, neutral_vertices: np.ndarray, n_frames: int, fps: int = FACE_FPS
) -> np.ndarray:
    """Resample `neutral_vertices` (Nn, V, 3) onto the emotional take's `n_frames` frames."""
    index, neutral_frames = warp_path(emotional_audio, neutral_audio, fps)
    # MFCC frames and vertex frames may differ by one at the ends; stretch the map to fit.
    index = np.interp(np.linspace(0, len(index) - 1, n_frames), np.arange(len(index)), index)
    index *= (len(neutral_vertices) - 1) / max(1, neutral_frames - 1)
    index = np.clip(index, 0, len(neutral_vertices) - 1)
    lo = np.floor(index).astype(int)
    hi = np.minimum(lo + 1, len(neutral_vertices) - 1)
    w = (index - lo)[:, None, None]
    return ((1 - w) * neutral_vertices[lo] + w * neutral_vertices[hi]).astype(np.float32)
