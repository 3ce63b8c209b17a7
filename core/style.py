"""A tuned speaking style (METHOD.md section 9) as a file: plain Python and numpy, no torch, so
that Blender can list and check style files without loading the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import TalkingHeadError

MAX_DURATION_MISMATCH_S = 0.5
MIN_CLIPS = 2  # one clip is held out to stop early


class TuningError(TalkingHeadError):
    """Clips that cannot be used for tuning (too few, wrong vertex count, wrong duration), or a
    style file that cannot be used."""


@dataclass
class Style:
    """A tuned speaking style: weights over the bundle's pivots and the embedding they make."""

    name: str
    bundle: str
    alpha: list[float]
    p: list[float]
    subject: str
    mode: str = "convex"
    clips: list[list[str]] = field(default_factory=list)
    error_before: float | None = None
    error_after: float | None = None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Style":
        path = Path(path)
        if not path.is_file():
            raise TuningError(f"style file not found: {path}")
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise TuningError(f"{path} is not a Talking Head style file ({exc})") from None

    def check(self, d_model: int, subjects: list[str], where: str | Path = "") -> None:
        """Raise `TuningError` unless this style fits a bundle with these embedding size and subjects."""
        label = f"style {where or self.name!r}"
        if len(self.p) != d_model:
            raise TuningError(f"{label} was tuned for another bundle ({len(self.p)}-d embedding, this bundle's is {d_model}-d)")
        if self.subject not in subjects:
            raise TuningError(f"{label} speaks like subject {self.subject!r}, which this bundle does not have")

    @staticmethod
    def interpolate(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        """p_new = w p_i + (1 - w) p_j (section 9); w = 1 gives a and w = 0 gives b exactly."""
        return (w * np.asarray(a, np.float32) + (1 - w) * np.asarray(b, np.float32)).astype(np.float32)
