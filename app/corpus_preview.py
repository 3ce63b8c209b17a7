"""Look at corpus faces: render frames with Blender's Cycles (CPU) into a PNG grid or an MP4.

`bpy` is imported inside the functions only; nothing else in app/ needs Blender.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..core.errors import TalkingHeadError
from ..core.geometry import Y_UP_TO_Z_UP

class PreviewError(TalkingHeadError):
    """A preview that cannot be made (unknown clip, no ffmpeg for mp4, ...)."""


def render_frames(
    frames: np.ndarray,
    faces: np.ndarray,
    out_dir: Path,
    vertex_region: np.ndarray | None = None,
    region_names: tuple[str, ...] = ("skin",),
    size: int = 320,
    samples: int = 16,
    yaw_degrees: float = 18.0,
    frame_box: np.ndarray | None = None,
) -> list[Path]:
    """Render each (V, 3) frame of `frames` (n, V, 3) to out_dir/frame_XXXX.png in a fresh scene,
    through blender/preview.py (its camera, lights and render settings); returns the paths.
    `vertex_region` (V,) indexes `region_names` (one material each); `frame_box` (m, 3) are the
    points to frame (default: the face of the project's head, else every vertex of every frame)."""
    import bpy

    from ..blender import head_look, preview, session

    frames = _to_blender(np.asarray(frames, np.float32))  # (n, V, 3)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    obj = session.mesh_object("face", frames[0], np.asarray(faces), scene.collection)
    if head_look.project_head(len(frames[0]), faces) is not None:
        head_look.close_neck(obj.data, up=2)
    region_of_vertex = np.zeros(len(frames[0]), int) if vertex_region is None else np.asarray(vertex_region, int)
    head_look.set_region_materials(obj.data, region_of_vertex, tuple(region_names))
    focus = preview.face_points(obj, frames) if frame_box is None else _to_blender(np.asarray(frame_box, np.float32))
    paths = []
    with preview.stage(scene, obj, focus, size, samples, yaw_degrees=yaw_degrees) as render:
        for i, frame in enumerate(frames):
            obj.data.vertices.foreach_set("co", np.ascontiguousarray(frame, np.float32).ravel())
            obj.data.update()
            paths.append(render(out_dir / f"frame_{i:04d}.png"))
    return paths


def _to_blender(points: np.ndarray) -> np.ndarray:
    """Corpus coordinates (y up, face looking along +z) -> Blender's (z up, face looking along -y)."""
    return points @ Y_UP_TO_Z_UP.T


def grid_image(paths: list[Path], out: Path, columns: int | None = None, labels: list[str] | None = None) -> Path:
    """Paste rendered frames into one PNG, left to right then top to bottom, with optional labels."""
    from PIL import Image, ImageDraw

    images = [Image.open(p).convert("RGB") for p in paths]
    columns = columns or min(len(images), 6)
    rows = (len(images) + columns - 1) // columns
    w, h = images[0].size
    sheet = Image.new("RGB", (columns * w, rows * h), (40, 44, 52))
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        x, y = (i % columns) * w, (i // columns) * h
        sheet.paste(image, (x, y))
        if labels and i < len(labels) and labels[i]:
            draw.rectangle([x + 4, y + 4, x + 8 + 7 * len(labels[i]), y + 20], fill=(0, 0, 0))
            draw.text((x + 7, y + 6), labels[i], fill=(255, 255, 255))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def posed(frames: np.ndarray, rotations: np.ndarray, translations: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """Put the global head pose back on (METHOD.md section 6): v = R (y - P) + P + tau."""
    return np.einsum("nij,nvj->nvi", rotations, frames - pivot) + pivot + translations[:, None, :]


def preview_clip(corpus_dir: Path, clip: str, out: Path, frames: int = 8, size: int = 256, samples: int = 12, with_pose: bool = True) -> Path:
    """Render a corpus clip: PNG = a grid of `frames` evenly spaced frames; MP4 = every frame (ffmpeg)."""
    import json

    from ..core.mesh_io import read_mesh

    corpus_dir = Path(corpus_dir)
    kind, name = ("neutral", clip[len("neutral/"):]) if clip.startswith("neutral/") else ("vertices_npy", clip)
    path = corpus_dir / kind / f"{name}.npy"
    if not path.is_file():
        raise PreviewError(f"no clip {clip!r} in {corpus_dir} (expected {path}); clips look like F2_e01 or F2_01")
    info = json.loads((corpus_dir / "corpus.json").read_text())
    mesh = read_mesh(corpus_dir / info["template_mesh"])
    faces = mesh.faces
    region = None
    names: tuple[str, ...] = ("skin",)
    if "vertex_region_runs" in info:
        from ..training.corpus.head_mesh import _run_length_decode

        region = _run_length_decode(info["vertex_region_runs"])
        names = tuple(info["regions"])
    sequence = np.load(path).reshape(-1, mesh.n_vertices, 3)
    if with_pose and (corpus_dir / "poses" / f"{name}.npz").is_file():
        pose = np.load(corpus_dir / "poses" / f"{name}.npz")
        sequence = posed(sequence, pose["rotation"], pose["translation"], np.asarray(info["pivot"], np.float32))
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".mp4"):
        raise PreviewError(f"preview output must end in .png (a grid of frames) or .mp4, not {suffix!r}")
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise PreviewError("mp4 preview needs ffmpeg on PATH (run scripts/install-speech-tools.sh), or write a .png")
    picks = np.linspace(0, len(sequence) - 1, min(frames, len(sequence))).round().astype(int) if suffix == ".png" else np.arange(len(sequence))
    with tempfile.TemporaryDirectory() as tmp:
        # Framed like `bake --preview`: the project's head on its face (brows to chin), another topology whole.
        paths = render_frames(sequence[picks], faces, Path(tmp), region, names, size=size, samples=samples)
        if suffix == ".png":
            return grid_image(paths, out, columns=min(len(paths), 4), labels=[f"{clip} frame {i}" for i in picks])
        out.parent.mkdir(parents=True, exist_ok=True)
        wav = corpus_dir / "wav" / f"{name}.wav"
        command = ["ffmpeg", "-y", "-loglevel", "error", "-framerate", "25", "-i", str(Path(tmp) / "frame_%04d.png")]
        if wav.is_file():
            command += ["-i", str(wav), "-c:a", "aac", "-shortest"]
        command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)]
        subprocess.run(command, check=True)
        return out
