"""One configuration object holds every hyper-parameter of a model bundle (saved as config.json)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import FACE_FPS
from .errors import BundleError

VARIANTS = ("full", "two-stage", "single-stage", "no-head", "baseline")


@dataclass
class ModelConfig:
    """Hyper-parameters of the three generators and of the bundle around them.

    Defaults are METHOD.md's: d = 128, Nd = 2 blocks, 4 heads, k = 2 audio steps per frame,
    25 fps, lambda_r = lambda_t = 0.01, lambda_con = 1, lambda_div = 0.01.
    """

    n_vertices: int
    subjects: list[str]
    context_dim: int = 768
    emotion_dim: int = 768
    emotion_labels: list[str] = field(default_factory=list)
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    k: int = 2
    fps: int = FACE_FPS
    # Sinusoidal positions exist up to this many frames; longer clips are decoded in windows.
    max_frames: int = 600
    # When a window is full, decoding restarts with this many most recent frames as its prompt.
    window_overlap: int = 300
    contrastive_dim: int = 128
    contrastive_temperature: float = 0.07
    lambda_r: float = 0.01
    lambda_t: float = 0.01
    lambda_con: float = 1.0
    lambda_div: float = 0.01
    # Ablation switches (METHOD.md section 7): drop Ln, drop Lcon, drop the head synthesizer,
    # or drop the emotion stage altogether (the FaceFormer-style baseline).
    single_stage: bool = False
    use_contrastive: bool = True
    use_head: bool = True
    use_emotion_stage: bool = True
    # Head pivot P, in template coordinates; None means the template centroid.
    pivot: list[float] | None = None
    # Face landmarks of the template (core/face_rig.py LANDMARK_NAMES -> vertex index), for its
    # ARKit channels; None: known for the project's head and BIWI's template (core/arkit.py).
    landmarks: dict[str, int] | None = None
    # Encoder sources: a folder relative to the bundle, an absolute folder, or a hub id.
    context_encoder: str = "encoders/context"
    emotion_encoder: str = "encoders/emotion"
    # Seconds of audio per encoder window, and context added on each side of it.
    encode_window_s: float = 20.0
    encode_context_s: float = 2.0
    trained: bool = False
    head_trained: bool = False
    variant: str = "full"
    description: str = ""

    def __post_init__(self) -> None:
        if self.n_vertices <= 0:
            raise BundleError(f"config.json: n_vertices must be positive, got {self.n_vertices}")
        if not self.subjects:
            raise BundleError("config.json: the bundle lists no subjects")
        if self.d_model % self.n_heads:
            raise BundleError("config.json: d_model must be divisible by n_heads")
        if not 0 < self.window_overlap < self.max_frames:
            raise BundleError("config.json: window_overlap must lie between 0 and max_frames")
        if self.variant not in VARIANTS:
            raise BundleError(f"config.json: unknown variant {self.variant!r}; use one of {VARIANTS}")

    @classmethod
    def for_variant(cls, variant: str, **kwargs: Any) -> "ModelConfig":
        """The ablation switches that a training variant name stands for."""
        switches = {
            "full": {},
            "two-stage": {"use_contrastive": False},
            "single-stage": {"single_stage": True, "use_contrastive": False},
            "no-head": {"use_head": False},
            "baseline": {"use_emotion_stage": False, "use_contrastive": False, "use_head": False},
        }
        if variant not in switches:
            raise BundleError(f"unknown variant {variant!r}; use one of {VARIANTS}")
        return cls(variant=variant, **{**kwargs, **switches[variant]})

    def to_dict(self) -> dict[str, Any]:
        return {"format": "talking-head-bundle", "format_version": 1, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names - {"format", "format_version"}
        if unknown:
            raise BundleError(f"config.json has unknown keys {sorted(unknown)}; is it from a newer version?")
        missing = {"n_vertices", "subjects"} - set(data)
        if missing:
            raise BundleError(f"config.json lacks required keys {sorted(missing)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise BundleError(f"config.json is malformed: {exc}") from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise BundleError(f"{path.name} must hold a JSON object")
        return cls.from_dict(data)

    def head_pivot(self, template_vertices: Any) -> Any:
        """Head pivot P (3,), the one rule for it: the configured pivot, else the template's centroid."""
        import numpy as np

        if self.pivot is not None:
            return np.asarray(self.pivot, dtype=np.float32)
        return np.asarray(template_vertices).mean(axis=0).astype(np.float32)

    def subject_index(self, name: str) -> int:
        from .errors import SubjectError

        if name not in self.subjects:
            raise SubjectError(f"subject {name!r} is not in this bundle; choose one of: {', '.join(self.subjects)}")
        return self.subjects.index(name)
