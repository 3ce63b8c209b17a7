"""Clips of a person for tuning, read from files: .npy, folders of meshes, and Alembic caches
(through Blender's bpy module, in a subprocess, so that no other layer imports it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ..core.audio import FACE_FPS
from ..core.bootstrap import bootstrap
from ..core.style import TuningError
from ..core.tuning import read_mesh_sequence

# Runs blender/alembic_reader.py with the bpy module, with this folder's code as `talking_head`
# (as blender/worker_client.py starts the worker).
ALEMBIC_BOOTSTRAP = bootstrap("blender.alembic_reader")


def read_clip(path: str | Path, n_vertices: int) -> np.ndarray:
    """(frames, V, 3) of a clip file in any format `talking-head tune --clip` takes."""
    return read_mesh_sequence(path, n_vertices, read_alembic)


def read_alembic(path: str | Path, n_vertices: int, fps: float = FACE_FPS) -> np.ndarray:
    """(frames, V, 3) world positions of the mesh with `n_vertices` vertices in an Alembic file,
    in the file's own (Y-up) coordinates, one frame per 1/fps s over the file's time range.
    Blender's reader (blender/alembic_reader.py) runs in a subprocess with the bpy module."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("bpy") is None:
        raise TuningError(
            f"reading the Alembic clip {Path(path).name} needs Blender's Python module: "
            "pip install bpy (Python 3.11), or convert the clip to .npy"
        )
    root = Path(__file__).resolve().parents[1]  # the package folder
    with tempfile.TemporaryDirectory(prefix="talking_head_abc_") as folder:
        out = Path(folder) / "frames.npy"
        command = [sys.executable, "-c", ALEMBIC_BOOTSTRAP, str(root), str(Path(path).resolve()), str(out), str(n_vertices), str(fps)]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=folder)
        except OSError as exc:
            raise TuningError(f"cannot start {sys.executable} to read {Path(path).name}: {exc}") from None
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
            why = lines[-1] if lines else f"exit code {done.returncode}"
            raise TuningError(f"cannot read the Alembic clip {Path(path).name}: {why.removeprefix('error: ')}")
        return np.load(out, allow_pickle=False)
