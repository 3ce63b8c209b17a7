"""`Animation`: what a run of the model produces, as plain arrays that cross process boundaries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import FACE_FPS
from .errors import TalkingHeadError
from .mesh_io import write_mesh
from .outputs import FrameFiles, atomic_path, write_frame_files

# Frames per chunk when whole-take (N, V, 3) arrays are transformed (1.7 MB at 4,482 vertices, 9 MB
# at 23,370): each chunk's temporaries reuse the last one's memory instead of fresh pages (at
# 256 frames a paper-size take's head motion took 0.2-0.37 s in a run, 0.1 s alone).
CHUNK_FRAMES = 32

ARRAY_FIELDS = ("vertices", "rotation", "translation", "emotion_probs")
# Gn's and Ge's faces: as large as `vertices` each, so written only on request (`stages=True`).
STAGE_FIELDS = ("neutral", "emotional")
# Per-frame arrays that a take may lack (None): written when present, read when there.
OPTIONAL_FIELDS = ("arkit_weights", "blink_weights", "gaze")


@dataclass
class Animation:
    """One clip's animation at `fps` (25), all float32.

    vertices (N, V, 3): final faces with head motion, v_t = R_t (ye_t - P) + P + tau_t;
    neutral, emotional (N, V, 3): Gn's and Ge's faces, without head motion (`neutral` is None
    when read from a file written without stages; `emotional` is then recovered from vertices);
    rotation (N, 3, 3) and translation (N, 3): head motion about `pivot` (3,);
    emotion_probs (N, C) with `emotion_labels` (C names): what the voice was heard as (the bundle's
    emotion hearing, core/emotion_hearing.py, when it has one; else the emotion encoder's scores);
    arkit_weights (N, 52) in [0, 1] with `arkit_names` (core/arkit.py ARKIT_NAMES): the face
    without head motion as Apple's ARKit channels, or None when the template has no landmarks;
    blink_weights (N,) in [0, 1] and gaze (N, 2) eye yaw, pitch in radians: the blinks and gaze
    core/eyes.py added to the faces and channels, or None when none were.
    """

    vertices: np.ndarray
    neutral: np.ndarray | None
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
    blink_weights: np.ndarray | None = None
    gaze: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    def frames(self, cut: slice) -> "Animation":
        """The frames `cut` of this take (every per-frame array sliced; `neutral` stays None when absent)."""
        per_frame = {name: getattr(self, name)[cut] for name in (*ARRAY_FIELDS, *STAGE_FIELDS) if getattr(self, name) is not None}
        optional = {name: getattr(self, name)[cut] for name in OPTIONAL_FIELDS if getattr(self, name) is not None}
        return dataclasses.replace(self, **per_frame, **optional)

    def save_npz(self, path: str | Path, stages: bool = False) -> None:
        """Write the take as an uncompressed .npz: final `vertices`, head motion, emotion, ARKit, blinks and gaze.

        Uncompressed because zlib on hundreds of MB of float vertex data took seconds and saved
        little (a 10.5 s paper-size take: 8.4 s to write 224 MB compressed, vs 77 MB raw for the
        one array kept). `stages` also writes `neutral` and `emotional` (Gn's and Ge's faces
        without head motion): three times the size; `load_npz` recovers `emotional` anyway.
        Written under a temporary name and renamed into place (core/outputs.py): `path` holds
        the earlier file or this one, whole, whatever happens to the run."""
        arrays = {name: getattr(self, name).astype(np.float32, copy=False) for name in ARRAY_FIELDS}
        if stages:
            if self.neutral is None:
                raise TalkingHeadError("this animation has no neutral stage to write (it was read from a file without stages)")
            arrays.update({name: getattr(self, name).astype(np.float32, copy=False) for name in STAGE_FIELDS})
        arrays.update({name: getattr(self, name).astype(np.float32, copy=False) for name in OPTIONAL_FIELDS if getattr(self, name) is not None})
        if self.arkit_weights is not None:
            arrays["arkit_names"] = np.asarray(self.arkit_names, dtype=str)
        with atomic_path(path) as temporary, open(temporary, "wb") as f:
            np.savez(
                f,
                **arrays,
                emotion_labels=np.asarray(self.emotion_labels, dtype=str),
                pivot=self.pivot.astype(np.float32),
                fps=np.int32(self.fps),
                faces=self.faces.astype(np.int32),
            )

    @classmethod
    def load_npz(cls, path: str | Path) -> "Animation":
        """Read a file `save_npz` wrote (with or without stages, compressed or not)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ARRAY_FIELDS}
                pivot = data["pivot"]
                emotional = data["emotional"] if "emotional" in data else None
                if emotional is None:
                    emotional = remove_head_motion(arrays["vertices"], arrays["rotation"], arrays["translation"], pivot)
                return cls(
                    **arrays,
                    neutral=data["neutral"] if "neutral" in data else None,
                    emotional=emotional,
                    emotion_labels=[str(x) for x in data["emotion_labels"]],
                    pivot=pivot,
                    fps=int(data["fps"]),
                    faces=data["faces"],
                    arkit_names=[str(x) for x in data["arkit_names"]] if "arkit_names" in data else [],
                    **{name: data[name] if name in data else None for name in OPTIONAL_FIELDS},
                )
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise TalkingHeadError(f"not a Talking Head animation file ({exc}): {path}") from None

    def write_frames(self, target: str | Path, mesh_format: str = "ply") -> list[Path]:
        """One mesh per frame. `target` is a folder, or OUT.ply / OUT.obj naming OUT_00000.ply, ...
        Written into a temporary folder and moved in; an earlier take's extra frames there are
        removed (core/outputs.py write_frame_files)."""
        files = FrameFiles.of(target, mesh_format)
        return write_frame_files(files, self.n_frames, lambda path, i: write_mesh(path, self.vertices[i], self.faces))


def add_head_motion(faces: np.ndarray, rotation: np.ndarray, translation: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """The final faces: v_t = R_t (ye_t - P) + P + tau_t (METHOD.md section 6), a chunk of frames
    at a time (no second full-size temporary for a long take); `remove_head_motion` undoes it.
    faces (N, V, 3), rotation (N, 3, 3), translation (N, 3), pivot (3,) -> (N, V, 3)."""
    vertices = np.empty_like(faces)
    turn, shift = rotation.transpose(0, 2, 1), pivot + translation[:, None, :]
    for start in range(0, len(vertices), CHUNK_FRAMES):
        part = slice(start, start + CHUNK_FRAMES)
        np.matmul(faces[part] - pivot, turn[part], out=vertices[part])
        vertices[part] += shift[part]
    return vertices


def remove_head_motion(vertices: np.ndarray, rotation: np.ndarray, translation: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """The face without head motion: ye_t = R_t^T (v_t - P - tau_t) + P, the inverse of
    v_t = R_t (ye_t - P) + P + tau_t (R_t is a proper rotation, so its inverse is R_t^T).
    vertices (N, V, 3), rotation (N, 3, 3), translation (N, 3), pivot (3,) -> (N, V, 3)."""
    face = np.empty(vertices.shape, np.float32)
    for start in range(0, len(vertices), CHUNK_FRAMES):  # a chunk at a time: no second full-size temporary
        part = slice(start, start + CHUNK_FRAMES)
        # Row vectors: (R^T x)^T = x^T R.
        np.matmul(vertices[part] - (pivot + translation[part, None, :]), rotation[part], out=face[part])
    face += pivot
    return face
