"""A quick picture of a take: a strip of Cycles CPU renders across the clip, in one PNG."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ..core.errors import TalkingHeadError


def render_strip(
    obj: bpy.types.Object,
    out: str | Path,
    frames: list[int],
    size: int = 192,
    samples: int = 8,
    scene: bpy.types.Scene | None = None,
) -> Path:
    """Render `frames` of `obj` (front view, soft light) with Cycles on the CPU and write them
    side by side into `out` (PNG). The camera, light and material it adds are removed again."""
    scene = scene or bpy.context.scene
    out = Path(out).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    added: list = []
    saved = _save_render_settings(scene)
    try:
        camera = _add_camera(scene, obj, frames, added)
        _add_light(scene, camera, added)
        _add_material(obj, added)
        render = scene.render
        render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False
        scene.cycles.max_bounces = 2
        render.resolution_x = render.resolution_y = size
        render.resolution_percentage = 100
        render.film_transparent = False
        render.image_settings.file_format = "PNG"
        scene.camera = camera
        world = scene.world or bpy.data.worlds.new("Talking Head preview")
        if scene.world is None:
            scene.world = world
            added.append(world)
        tiles = []
        with tempfile.TemporaryDirectory(prefix="talking_head_preview_") as folder:
            for index, frame in enumerate(frames):
                scene.frame_set(frame)
                render.filepath = str(Path(folder) / f"frame_{index:03d}.png")
                bpy.ops.render.render(write_still=True, scene=scene.name)
                image = bpy.data.images.load(render.filepath)
                pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
                image.pixels.foreach_get(pixels)
                tiles.append(pixels.reshape(image.size[1], image.size[0], 4))
                bpy.data.images.remove(image)
        strip = np.concatenate(tiles, axis=1)  # (h, w * n, 4), bottom row first as Blender stores it
        image = bpy.data.images.new("Talking Head preview", strip.shape[1], strip.shape[0], alpha=True)
        image.pixels.foreach_set(strip.ravel())
        image.filepath_raw = str(out)
        image.file_format = "PNG"
        image.save()
        bpy.data.images.remove(image)
    except RuntimeError as exc:
        raise TalkingHeadError(f"preview render failed: {exc}") from None
    finally:
        _restore_render_settings(scene, saved)
        for datablock in added:  # objects before their data
            try:
                _remove(datablock)
            except ReferenceError:  # already gone with its owner
                pass
    return out


def spread_frames(start: int, end: int, count: int = 6) -> list[int]:
    """`count` frames evenly across [start, end]."""
    return sorted({int(round(x)) for x in np.linspace(start, end, count)})


def _add_camera(scene, obj, frames, added) -> bpy.types.Object:
    # Frame the head at rest (its mesh without shape keys) as placed at the first frame.
    scene.frame_set(frames[0])
    rest = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)
    matrix = np.array(obj.matrix_world)
    corners = rest @ matrix[:3, :3].T + matrix[:3, 3]
    center = (corners.min(axis=0) + corners.max(axis=0)) / 2
    extent = np.ptp(corners, axis=0)
    data = bpy.data.cameras.new("Talking Head preview")
    data.lens = 85
    camera = bpy.data.objects.new("Talking Head preview camera", data)
    scene.collection.objects.link(camera)
    added += [camera, data]
    # Blender looks at a face from -Y (see session.Y_UP_TO_Z_UP); keep the whole head in view.
    distance = 1.25 * max(extent[0], extent[2]) / (2 * math.tan(data.angle / 2)) + extent[1]
    camera.location = Vector(center) + Vector((0.0, -distance, 0.0))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    data.clip_end = distance * 10
    return camera


def _add_light(scene, camera, added) -> None:
    data = bpy.data.lights.new("Talking Head preview", "AREA")
    data.energy = 40.0 * (camera.location.length ** 2 + 0.1)
    data.size = camera.location.length
    light = bpy.data.objects.new("Talking Head preview light", data)
    light.location = camera.location + Vector((-0.5, 0.0, 0.6)) * camera.location.length
    direction = camera.location * 0 - light.location
    light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(light)
    added += [light, data]


def _add_material(obj, added) -> None:
    if obj.data.materials:
        return
    material = bpy.data.materials.new("Talking Head preview skin")
    material.diffuse_color = (0.8, 0.62, 0.52, 1.0)
    if material.node_tree is None and hasattr(material, "use_nodes"):
        material.use_nodes = True
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (0.8, 0.62, 0.52, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.55
    obj.data.materials.append(material)
    added.append(_MaterialSlot(obj, material))


class _MaterialSlot:
    """A material we appended for the preview: removing it pops the slot and the material."""

    def __init__(self, obj, material) -> None:
        self.obj, self.material = obj, material

    def remove(self) -> None:
        self.obj.data.materials.pop(index=len(self.obj.data.materials) - 1)
        bpy.data.materials.remove(self.material)


def _remove(datablock) -> None:
    if isinstance(datablock, _MaterialSlot):
        datablock.remove()
    elif isinstance(datablock, bpy.types.Object):
        bpy.data.objects.remove(datablock)
    elif isinstance(datablock, bpy.types.Camera):
        bpy.data.cameras.remove(datablock)
    elif isinstance(datablock, bpy.types.Light):
        bpy.data.lights.remove(datablock)
    elif isinstance(datablock, bpy.types.World):
        bpy.data.worlds.remove(datablock)


def _save_render_settings(scene) -> dict:
    render = scene.render
    return {
        "engine": render.engine,
        "resolution": (render.resolution_x, render.resolution_y, render.resolution_percentage),
        "filepath": render.filepath,
        "camera": scene.camera,
        "frame": scene.frame_current,
    }


def _restore_render_settings(scene, saved: dict) -> None:
    render = scene.render
    render.engine = saved["engine"]
    render.resolution_x, render.resolution_y, render.resolution_percentage = saved["resolution"]
    render.filepath = saved["filepath"]
    if saved["camera"] is None or saved["camera"].name in bpy.data.objects:
        scene.camera = saved["camera"]
    scene.frame_set(saved["frame"])
