"""`Animation`: what a run of the model produces, as plain arrays that cross process boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import FACE_FPS
from .errors import TalkingHeadError
from .mesh_io import write_mesh
from .outputs import FrameFiles, atomic_path, write_frame_files

ARRAY_FIELDS = ("vertices", "neutral", "emotional", "rotation", "translation", "emotion_probs")


@dataclass
class Animation:
    """One clip's animation at `fps` (25), all float32.

    vertices (N, V, 3): final faces with head motion, v_t = R_t (ye_t - P) + P + tau_t;
    neutral, emotional (N, V, 3): Gn's and Ge's faces, without head motion;
    rotation (N, 3, 3) and translation (N, 3): head motion about `pivot` (3,);
    emotion_probs (N, C) with `emotion_labels` (C names): what the emotion encoder heard;
    arkit_weights (N, 52) in [0, 1] with `arkit_names` (core/arkit.py ARKIT_NAMES): the face
    without head motion as Apple's ARKit channels, or None when the template has no landmarks.
    """

    vertices: np.ndarray
    neutral: np.ndarray
    emotional: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    emotion_probs: np.ndarray
    emotion_labels: list[str]
    pivot: np.ndarray
    fps: int = FACE_FPS
    faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))
    arkit_weights: np.ndarray | None = None
    arkit_names: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    def save_npz(self, path: str | Path) -> None:
        """Written under a temporary name and renamed into place (core/outputs.py): `path` holds
        the earlier file or this one, whole, whatever happens to the run."""
        arkit = {}
        if self.arkit_weights is not None:
            arkit = {"arkit_weights": self.arkit_weights.astype(np.float32, copy=False), "arkit_names": np.asarray(self.arkit_names, dtype=str)}
        with atomic_path(path) as temporary, open(temporary, "wb") as f:
            np.savez_compressed(
                f,
                **{name: getattr(self, name).astype(np.float32, copy=False) for name in ARRAY_FIELDS},
                emotion_labels=np.asarray(self.emotion_labels, dtype=str),
                pivot=self.pivot.astype(np.float32),
                fps=np.int32(self.fps),
                faces=self.faces.astype(np.int32),
                **arkit,
            )

    @classmethod
    def load_npz(cls, path: str | Path) -> "Animation":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ARRAY_FIELDS}
                return cls(
                    **arrays,
                    emotion_labels=[str(x) for x in data["emotion_labels"]],
                    pivot=data["pivot"],
                    fps=int(data["fps"]),
                    faces=data["faces"],
                    arkit_weights=data["arkit_weights"] if "arkit_weights" in data else None,
                    arkit_names=[str(x) for x in data["arkit_names"]] if "arkit_names" in data else [],
                )
        except (OSError, KeyError, ValueError) as exc:
            raise TalkingHeadError(f"not a Talking Head animation file ({exc}): {path}") from None

    def write_frames(self, target: str | Path, mesh_format: str = "ply") -> list[Path]:
        """One mesh per frame. `target` is a folder, or OUT.ply / OUT.obj naming OUT_00000.ply, ...
        Written into a temporary folder and moved in; an earlier take's extra frames there are
        removed (core/outputs.py write_frame_files)."""
        files = FrameFiles.of(target, mesh_format)
        return write_frame_files(files, self.n_frames, lambda path, i: write_mesh(path, self.vertices[i], self.faces))
