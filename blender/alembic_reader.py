"""Read an Alembic clip's mesh per frame with the bpy module, for app/clips.py (`talking-head tune --clip`; core never
imports bpy and runs this in a subprocess):

    python -c BOOTSTRAP ROOT CLIP.abc OUT.npy VERTICES [FPS]

It imports the file into an empty scene at FPS (default 25) over the file's time range, takes
the one mesh with VERTICES vertices, and saves its world positions per frame, (frames, V, 3)
float32, back in the file's Y-up coordinates (Blender's importer turns them Z-up; this undoes
it). A problem is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..core.audio import FACE_FPS


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("error: usage: alembic_reader CLIP.abc OUT.npy VERTICES [FPS]", file=sys.stderr)
        return 2
    path, out, n_vertices = Path(argv[0]), Path(argv[1]), int(argv[2])
    fps = float(argv[3]) if len(argv) == 4 else float(FACE_FPS)
    try:
        frames = read_frames(path, n_vertices, fps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    np.save(out, frames)
    return 0


def read_frames(path: Path, n_vertices: int, fps: float = FACE_FPS) -> np.ndarray:
    """(frames, V, 3) world positions of the mesh with `n_vertices` vertices, Y-up."""
    import bpy

    from ..core.geometry import Y_UP_TO_Z_UP

    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = max(1, round(fps)), max(1, round(fps)) / fps
    try:
        result = bpy.ops.wm.alembic_import(filepath=str(path), set_frame_range=True, as_background_job=False)
    except RuntimeError as exc:
        raise ValueError(f"Blender cannot import it ({str(exc).strip().splitlines()[-1]})") from None
    meshes = [obj for obj in scene.objects if obj.type == "MESH"]
    if "FINISHED" not in result or not meshes:
        raise ValueError("it holds no mesh")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    matching = [obj for obj in meshes if len(obj.evaluated_get(depsgraph).data.vertices) == n_vertices]
    if len(matching) != 1:
        found = ", ".join(f"'{obj.name}' ({len(obj.evaluated_get(depsgraph).data.vertices):,} vertices)" for obj in meshes)
        what = "no mesh" if not matching else f"{len(matching)} meshes"
        raise ValueError(f"it holds {what} with the template's {n_vertices:,} vertices: {found}")
    obj = matching[0]
    first, last = scene.frame_start, max(scene.frame_start, scene.frame_end)
    frames = np.empty((last - first + 1, n_vertices, 3), dtype=np.float32)
    co = np.empty(n_vertices * 3, dtype=np.float32)
    for index, frame in enumerate(range(first, last + 1)):
        scene.frame_set(frame)
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.data
        if len(mesh.vertices) != n_vertices:
            raise ValueError(f"'{obj.name}' has {len(mesh.vertices):,} vertices at frame {frame}, not {n_vertices:,}")
        mesh.vertices.foreach_get("co", co)
        matrix = np.array(evaluated.matrix_world, dtype=np.float64)
        world = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        frames[index] = world @ Y_UP_TO_Z_UP  # Blender's Z-up back to the file's Y-up: R^T w
    return frames
