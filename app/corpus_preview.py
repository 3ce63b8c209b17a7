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

REGION_COLOURS = {  # linear RGB base colours for head.json regions
    "skin": (0.62, 0.38, 0.28),
    "lips": (0.55, 0.20, 0.18),
    "eyes": (0.80, 0.80, 0.78),
    "iris": (0.05, 0.09, 0.13),
    "teeth": (0.80, 0.77, 0.68),
    "mouth": (0.06, 0.01, 0.01),
}


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
    """Render each (V, 3) frame of `frames` (n, V, 3) to out_dir/frame_XXXX.png; returns the paths."""
    import bpy
    from mathutils import Vector

    frames = _to_blender(np.asarray(frames, np.float32))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs[0].default_value = (0.18, 0.2, 0.23, 1)
    world.node_tree.nodes["Background"].inputs[1].default_value = 0.6
    scene.world = world

    mesh = bpy.data.meshes.new("face")
    mesh.from_pydata(frames[0].tolist(), [], np.asarray(faces).tolist())
    mesh.update()
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    obj = bpy.data.objects.new("face", mesh)
    scene.collection.objects.link(obj)
    region_of_vertex = np.zeros(len(frames[0]), int) if vertex_region is None else np.asarray(vertex_region, int)
    for name in region_names:
        material = bpy.data.materials.new(name)
        material.use_nodes = True
        bsdf = material.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*REGION_COLOURS.get(name, (0.6, 0.6, 0.6)), 1)
        bsdf.inputs["Roughness"].default_value = 0.25 if name in ("eyes", "iris") else 0.55
        if name in ("skin", "lips"):
            bsdf.inputs["Subsurface Weight"].default_value = 0.15
            bsdf.inputs["Subsurface Radius"].default_value = (0.1, 0.04, 0.02)
            bsdf.inputs["Subsurface Scale"].default_value = 0.05
        obj.data.materials.append(material)
    face_region = region_of_vertex[np.asarray(faces)].max(axis=1)  # a face touching the lips is lips
    mesh.polygons.foreach_set("material_index", face_region.tolist())

    # Camera framing from the rest of the face: a box around all frames, looked at from the front.
    box = frames.reshape(-1, 3) if frame_box is None else _to_blender(np.asarray(frame_box, np.float32))
    lo, hi = box.min(0), box.max(0)
    centre = (lo + hi) / 2
    extent = float(max(hi[0] - lo[0], hi[2] - lo[2]))
    camera_data = bpy.data.cameras.new("camera")
    camera_data.lens = 85
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    distance = extent * 85 / 36 * 1.2
    yaw = np.radians(yaw_degrees)
    eye = centre + distance * np.array([np.sin(yaw), -np.cos(yaw), 0.08])
    camera.location = Vector(eye.tolist())
    direction = Vector((centre - eye).tolist())
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()

    def light(name, kind, energy, location, size_=1.0):
        data = bpy.data.lights.new(name, kind)
        data.energy = energy
        if kind == "AREA":
            data.size = size_
        obj_ = bpy.data.objects.new(name, data)
        obj_.location = Vector(location)
        d = Vector((centre - np.asarray(location)).tolist())
        obj_.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(obj_)

    s = distance
    light("key", "AREA", 9.0 * s * s, (centre + [0.7 * s, -0.9 * s, 0.6 * s]).tolist(), 0.6 * s)
    light("fill", "AREA", 3.0 * s * s, (centre + [-0.9 * s, -0.6 * s, 0.1 * s]).tolist(), 0.8 * s)
    light("rim", "AREA", 5.0 * s * s, (centre + [0.0, 0.9 * s, 0.8 * s]).tolist(), 0.6 * s)

    paths = []
    for i, frame in enumerate(frames):
        mesh.vertices.foreach_set("co", np.ascontiguousarray(frame, np.float32).ravel())
        mesh.update()
        path = out_dir / f"frame_{i:04d}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        paths.append(path)
    return paths


def _to_blender(points: np.ndarray) -> np.ndarray:
    """Corpus coordinates (y up, face looking along +z) -> Blender's (z up, face looking along -y)."""
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


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
        box = sequence[0]
        if info.get("template") == "ours":  # frame the face, not the neck below the pivot
            box = box[box[:, 1] > info["pivot"][1]]
        paths = render_frames(sequence[picks], faces, Path(tmp), region, names, size=size, samples=samples, frame_box=box)
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
