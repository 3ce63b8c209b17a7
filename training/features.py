"""Encoder features computed once per audio file and cached on disk.

The encoders are frozen, so training never needs to run wav2vec2 twice on the same file.
Cache entries are keyed by the encoders' identity (a hash of their weights and configs) and
the audio file's content hash, stored as safetensors at the encoders' own frame rate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..core.audio import load_audio
from ..core.encoders import ContextEncoder, EmotionEncoder


def encoder_key(context: ContextEncoder, emotion: EmotionEncoder) -> str:
    """A short hash naming this pair of encoders: their weights (a re-saved copy keeps its key)."""
    digest = hashlib.sha256()
    for encoder in (context, emotion):
        for name, tensor in sorted(encoder.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        digest.update(encoder.precision.encode())
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]


class FeatureCache:
    """`get(wav)` -> {"context": (M, Dc), "emotion": (M, De), "emotion_logits": (M, C)}."""

    def __init__(self, folder: str | Path, context: ContextEncoder, emotion: EmotionEncoder) -> None:
        self.context, self.emotion = context, emotion
        self.folder = Path(folder) / encoder_key(context, emotion)
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, wav: str | Path) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file, save_file

        path = self.folder / f"{file_hash(Path(wav))}.safetensors"
        if path.is_file():
            return load_file(str(path))
        samples = load_audio(wav)
        emotion = self.emotion.encode(samples)
        features = {
            "context": self.context.encode(samples).contiguous(),
            "emotion": emotion.hidden.contiguous(),
            "emotion_logits": emotion.logits.contiguous(),
        }
        tmp = path.with_suffix(".tmp")
        save_file(features, str(tmp))
        tmp.replace(path)  # atomic: an interrupted run never leaves half a file
        return features
