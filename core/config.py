"""One configuration object holds every hyper-parameter of a model bundle (saved as config.json)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import FACE_FPS
from .errors import BundleError

VARIANTS = ("full", "two-stage", "single-stage", "no-head", "baseline")
# Sizes and counts that must be whole numbers above zero.
_POSITIVE_INTS = ("n_vertices", "context_dim", "emotion_dim", "d_model", "n_layers", "n_heads", "ff_dim", "k", "fps",
                  "max_frames", "contrastive_dim")


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
    # Gh's noise z smoothed over time: a Gaussian of this many audio steps (sigma; 0: i.i.d. per
    # step, as METHOD.md). Per-step noise made the demo's head jitter frame to frame.
    head_noise_sigma: float = 0.0
    # Gh's rotation angles about x (nod), y (turn), z (tilt) times these factors: the corpus's
    # balance between the axes at the size Gh's motion had before smoothing
    # (training/head_balance.py, `talking-head bundle head-balance`); None: as Gh makes them.
    head_axis_balance: list[float] | None = None
    # The mean over the corpus's training takes of the head amplitude the heard emotion gives
    # (core/emotion_direction.py heard_amplitude divides by it; `bundle head-balance` writes it).
    heard_head_amplitude_mean: float | None = None
    # One number per emotion label: the head amplitude of a voice heard wholly as that class,
    # fitted on a corpus whose voices carry their emotion (training/head_balance.py
    # `fit_heard_head_amplitudes`, `talking-head bundle heard-head`); where present it replaces
    # the corpus's class ratios over heard_head_amplitude_mean. None: the ratios.
    heard_head_amplitudes: list[float] | None = None
    # Time constant (seconds) of a causal exponential average on the head motion, last of all
    # (core/head_balance.py); 0: as Gh makes it. A list of 3: one per rotation axis (nod, turn,
    # tilt), the translation taking the nod's.
    head_smoothing_s: float | list[float] = 0.0
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
        """Every value is checked here, so a bundle with a bad config.json is refused on load
        with one line, before anything runs (`k: 0` or `fps: 0` would fail deep in the model
        or animate silently wrong)."""
        for name in _POSITIVE_INTS:
            _check(self, name, _is_int(getattr(self, name)) and getattr(self, name) > 0, "a positive whole number")
        _check(self, "window_overlap", _is_int(self.window_overlap) and 0 < self.window_overlap < self.max_frames,
               f"a whole number between 0 and max_frames ({self.max_frames}), exclusive")
        _check(self, "subjects", isinstance(self.subjects, (list, tuple)) and bool(self.subjects) and all(isinstance(s, str) and s for s in self.subjects),
               "a non-empty list of subject names")
        _check(self, "subjects", len(set(self.subjects)) == len(self.subjects), "a list of distinct names")
        _check(self, "emotion_labels", isinstance(self.emotion_labels, (list, tuple)) and all(isinstance(s, str) for s in self.emotion_labels), "a list of names")
        if self.d_model % self.n_heads:
            raise BundleError("config.json: d_model must be divisible by n_heads")
        _check(self, "encode_window_s", _is_number(self.encode_window_s) and self.encode_window_s > 0, "a positive number of seconds")
        _check(self, "encode_context_s", _is_number(self.encode_context_s) and self.encode_context_s >= 0, "zero or a positive number of seconds")
        _check(self, "dropout", _is_number(self.dropout) and 0 <= self.dropout < 1, "a number in [0, 1)")
        _check(self, "contrastive_temperature", _is_number(self.contrastive_temperature) and self.contrastive_temperature > 0, "a positive number")
        for name in ("lambda_r", "lambda_t", "lambda_con", "lambda_div", "head_noise_sigma"):
            _check(self, name, _is_number(getattr(self, name)) and getattr(self, name) >= 0, "zero or a positive number")
        for name in ("single_stage", "use_contrastive", "use_head", "use_emotion_stage", "trained", "head_trained"):
            _check(self, name, isinstance(getattr(self, name), bool), "true or false")
        _check(self, "head_axis_balance", self.head_axis_balance is None or (isinstance(self.head_axis_balance, (list, tuple)) and len(self.head_axis_balance) == 3
               and all(_is_number(g) and 0 <= g < 100 for g in self.head_axis_balance)), "null or a list of 3 numbers from 0 to 100 (x, y, z)")
        _check(self, "heard_head_amplitude_mean", self.heard_head_amplitude_mean is None or (
            _is_number(self.heard_head_amplitude_mean) and 0.1 <= self.heard_head_amplitude_mean <= 10), "null or a number from 0.1 to 10")
        _check(self, "heard_head_amplitudes", self.heard_head_amplitudes is None or (
            isinstance(self.heard_head_amplitudes, (list, tuple)) and len(self.heard_head_amplitudes) == len(self.emotion_labels)
            and all(_is_number(a) and 0 <= a <= 10 for a in self.heard_head_amplitudes)),
            f"null or one number from 0 to 10 per emotion label ({len(self.emotion_labels)})")
        smoothing = self.head_smoothing_s if isinstance(self.head_smoothing_s, (list, tuple)) else [self.head_smoothing_s]
        _check(self, "head_smoothing_s", len(smoothing) in (1, 3) and all(_is_number(s) and 0 <= s <= 2 for s in smoothing),
               "a number of seconds from 0 to 2, or a list of 3 (nod, turn, tilt)")
        _check(self, "pivot", self.pivot is None or (isinstance(self.pivot, (list, tuple)) and len(self.pivot) == 3 and all(map(_is_number, self.pivot))),
               "null or a list of 3 numbers")
        _check(self, "landmarks", self.landmarks is None or (isinstance(self.landmarks, dict) and all(
            isinstance(k, str) and _is_int(v) and 0 <= v < self.n_vertices for k, v in self.landmarks.items())),
            f"null or names mapped to vertex indices below n_vertices ({self.n_vertices})")
        for name in ("context_encoder", "emotion_encoder"):
            _check(self, name, isinstance(getattr(self, name), str) and getattr(self, name).strip() != "", "a folder or a hub id")
        _check(self, "description", isinstance(self.description, str), "a string")
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
        try:
            return cls.from_dict(data)
        except BundleError as exc:
            raise BundleError(f"model bundle {path.parent}: {exc}") from None

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


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check(config: ModelConfig, name: str, ok: bool, what: str) -> None:
    if not ok:
        raise BundleError(f"config.json: {name} must be {what}, got {getattr(config, name)!r}")
