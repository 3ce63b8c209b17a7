"""Random-initialised ("trained": false) bundles for tests, smoke runs and timings.

`--encoders base` gives wav2vec2-base-sized encoders (768-d, 12 layers, about 95M parameters
each), so the paper-size model can be timed without downloading a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.bundle import BIWI_SEEN_SUBJECTS, EMOTIONS, ModelBundle
from ..core.config import ModelConfig
from ..core.encoders import quiet_transformers
from ..core.mesh_io import Mesh, read_mesh
from ..core.model import TalkingHeadModel

DEFAULT_VERTICES = 1000


def sphere_mesh(n_vertices: int, radius: float = 0.1) -> Mesh:
    """A closed triangle mesh with exactly `n_vertices` points (Fibonacci sphere + convex hull)."""
    from scipy.spatial import ConvexHull

    if n_vertices < 4:
        raise ValueError("a mesh needs at least 4 vertices")
    i = np.arange(n_vertices) + 0.5
    polar = np.arccos(1 - 2 * i / n_vertices)
    azimuth = np.pi * (1 + 5**0.5) * i
    points = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
    faces = ConvexHull(points).simplices.astype(np.int32)
    return Mesh((points * radius).astype(np.float32), faces)


def encoder_config(size: str, **extra):
    """wav2vec2 configuration: "tiny" (a few hundred thousand parameters) or "base" (paper size)."""
    from transformers import Wav2Vec2Config

    if size == "base":
        return Wav2Vec2Config(**extra)
    if size != "tiny":
        raise ValueError(f"encoder size must be tiny or base, got {size!r}")
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=16,
        **extra,
    )


def save_random_encoders(folder: Path, size: str, labels: list[str] = EMOTIONS, seed: int = 0) -> tuple[Path, Path]:
    """Random wav2vec2 encoders written with `save_pretrained`, as a hub checkpoint would be."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification

    quiet_transformers()
    torch.manual_seed(seed)
    features = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, do_normalize=True, return_attention_mask=False)
    context_dir, emotion_dir = folder / "context", folder / "emotion"
    Wav2Vec2ForCTC(encoder_config(size, vocab_size=32)).save_pretrained(context_dir)
    emotion_cfg = encoder_config(size, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    Wav2Vec2ForSequenceClassification(emotion_cfg).save_pretrained(emotion_dir)
    for path in (context_dir, emotion_dir):
        features.save_pretrained(path)
    return context_dir, emotion_dir


def make_tiny_bundle(
    out: str | Path,
    n_vertices: int | None = None,
    template: str | Path | None = None,
    encoders: str = "tiny",
    subjects: list[str] = BIWI_SEEN_SUBJECTS,
    seed: int = 0,
    **config: object,
) -> ModelBundle:
    """Write an untrained bundle with random generators and random encoders to `out`."""
    out = Path(out)
    mesh = read_mesh(template) if template else sphere_mesh(n_vertices or DEFAULT_VERTICES)
    context_dir, emotion_dir = save_random_encoders(out / "encoders", encoders, seed=seed)
    dim = 768 if encoders == "base" else 32
    cfg = ModelConfig(
        n_vertices=mesh.n_vertices,
        subjects=list(subjects),
        context_dim=dim,
        emotion_dim=dim,
        emotion_labels=list(EMOTIONS),
        context_encoder="encoders/context",
        emotion_encoder="encoders/emotion",
        trained=False,
        description=f"UNTRAINED: random weights ({encoders} encoders), for tests and timings only",
        **config,
    )
    torch.manual_seed(seed)
    bundle = ModelBundle(path=out, config=cfg, model=TalkingHeadModel(cfg).eval(), template=mesh)
    bundle.save(out)
    return bundle
