"""Turn corpus clips into training examples: cached features plus displacement targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.audio import load_audio
from .dataset import Clip, Corpus
from .features import FeatureCache
from ..core.model import FaceMotion, interpolate_frames
from .neutral_targets import warp_neutral


@dataclass
class Example:
    """One clip ready for teacher forcing; faces are (N, 3V) displacements from its template."""

    name: str
    subject: int
    context: torch.Tensor  # (kN, Dc)
    emotion: torch.Tensor  # (kN, De)
    target: FaceMotion  # without the batch dimension
    has_pose: bool


def neutral_displacement(corpus: Corpus, clip: Clip, vertices: np.ndarray, cache: Path) -> np.ndarray:
    """Neutral target of a clip (N, V, 3): given, the clip itself (neutral take) or DTW-warped."""
    if not clip.emotional:
        return vertices
    given = corpus.neutral_target(clip.name)
    if given is not None and len(given) == len(vertices):
        return given
    stored = cache / "dtw" / f"{clip.name}.npy"
    if stored.is_file():
        return np.load(stored)
    if clip.neutral_take not in corpus.clips:
        return vertices  # nothing to warp from: the emotional face is the best neutral guess
    warped = warp_neutral(
        load_audio(corpus.wav_path(clip.name)),
        load_audio(corpus.wav_path(clip.neutral_take)),
        corpus.vertices(clip.neutral_take),
        len(vertices),
    )
    stored.parent.mkdir(parents=True, exist_ok=True)
    np.save(stored, warped)
    return warped


def build_examples(corpus: Corpus, clips: list[Clip], features: FeatureCache, subjects: list[str], k: int, cache: Path, progress: bool = True) -> list[Example]:
    examples = []
    for clip in tqdm(clips, desc="features", unit="clip", disable=not progress, leave=False):
        vertices = corpus.vertices(clip.name)
        template = corpus.template(clip.subject)
        n = len(vertices)
        neutral = neutral_displacement(corpus, clip, vertices, cache)
        feats = features.get(corpus.wav_path(clip.name))
        poses = corpus.poses(clip.name)
        if poses is None or len(poses[0]) != n:
            rotation, translation, has_pose = np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)), np.zeros((n, 3), np.float32), False
        else:
            (rotation, translation), has_pose = poses, True
        examples.append(
            Example(
                name=clip.name,
                subject=subjects.index(clip.subject) if clip.subject in subjects else 0,
                context=interpolate_frames(feats["context"].unsqueeze(0), k * n)[0],
                emotion=interpolate_frames(feats["emotion"].unsqueeze(0), k * n)[0],
                target=FaceMotion(
                    neutral=torch.from_numpy((neutral - template).reshape(n, -1)),
                    emotional=torch.from_numpy((vertices - template).reshape(n, -1)),
                    rotation=torch.from_numpy(rotation),
                    translation=torch.from_numpy(translation),
                ),
                has_pose=has_pose,
            )
        )
    return examples


def crop(example: Example, frames: int, k: int, rng: np.random.Generator) -> Example:
    """A random window of at most `frames` frames (the positional range)."""
    n = example.target.emotional.shape[0]
    if n <= frames:
        return example
    s = int(rng.integers(0, n - frames + 1))
    t = example.target
    return Example(
        example.name,
        example.subject,
        example.context[k * s : k * (s + frames)],
        example.emotion[k * s : k * (s + frames)],
        FaceMotion(t.neutral[s : s + frames], t.emotional[s : s + frames], t.rotation[s : s + frames], t.translation[s : s + frames]),
        example.has_pose,
    )
