"""The one preview renderer: Cycles on the CPU, a camera framed on the face, three soft area lights.

`render_strip` renders frames of a take side by side into one PNG (`bake --preview`, the demo's
preview.png); app/corpus_preview.py renders corpus frames through the same `stage`. What the stage
adds to the scene (camera, lights, world, a skin material for a bare mesh) is removed again and the
render settings are restored, so the user's scene is left as it was.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.errors import TalkingHeadError
from . import head_look

# What frames the face of the project's head: brows to chin, eyes, mouth corners, nose.
FACE_LANDMARKS = (
    "brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right", "eye_left", "eye_right",
    "nose_tip", "upper_lip", "lower_lip", "mouth_corner_left", "mouth_corner_right", "chin",
)
LENS_MM = 85.0
FACE_FILL = 0.8  # the framed points span this share of the frame (the rest: forehead, a margin under the chin)
YAW_DEGREES = 12.0  # a slight turn to the head's left shows the face's shape
PITCH_DEGREES = 4.0  # from a little above


def render_strip(
    obj: bpy.types.Object,
    out: str | Path,
    frames: list[int],
    size: int = 384,
    samples: int = 8,
    scene: bpy.types.Scene | None = None,
    focus_vertices: list[int] | None = None,
) -> Path:
    """Render `frames` of `obj` (size x size each, the camera on its face) and write them side by
    side into `out` (PNG). `focus_vertices`: the vertices to frame (e.g. a character's brow, lip
    and chin landmarks); by default the project head's face, or the whole mesh. The scene is left
    as it was."""
    scene = scene or bpy.context.scene
    out = Path(out).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    world = _world_vertices(scene, obj, frames)
    focus = world[:, focus_vertices].reshape(-1, 3) if focus_vertices else face_points(obj, world)
    tiles = []  # (size, size, 4) each, bottom row first as Blender stores images
    current = scene.frame_current
    try:
        with stage(scene, obj, focus, size, samples) as render, tempfile.TemporaryDirectory(prefix="talking_head_preview_") as folder:
            for index, frame in enumerate(frames):
                scene.frame_set(frame)
                tiles.append(_read_png(render(Path(folder) / f"frame_{index:03d}.png")))
        _write_png(np.concatenate(tiles, axis=1), out)
    finally:
        scene.frame_set(current)
    return out


def spread_frames(start: int, end: int, count: int = 6) -> list[int]:
    """`count` frames evenly across [start, end]."""
    return sorted({int(round(x)) for x in np.linspace(start, end, count)})


@contextmanager
def stage(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    focus: np.ndarray,
    size: int = 384,
    samples: int = 8,
    yaw_degrees: float = YAW_DEGREES,
) -> Iterator[Callable[[Path], Path]]:
    """Set `scene` up to render `obj`: a camera framed on `focus` (N, 3) world points, key, fill and
    rim lights, a plain world, Cycles CPU at `size` x `size`; a skin material while `obj` has none.
    Yields render(path) -> path, which renders the current frame into a PNG. On exit everything
    added is removed and the render settings are restored."""
    added: list = []
    saved = _save_settings(scene)
    try:
        camera = add_face_camera(scene, focus, "Talking Head preview camera", aspect=1.0, yaw_degrees=yaw_degrees)
        added += [camera, camera.data]
        added += _add_lights(scene, camera, focus)
        added.append(_use_world(scene))
        if not obj.data.materials:
            material = head_look.region_material("skin")
            added.append(_MaterialSlot(obj, material, new=material.users == 0))
            obj.data.materials.append(material)
        render = scene.render
        render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = True  # 8 samples + the fast denoiser: clean, about 5 s a tile on 2 cores
        if hasattr(scene.cycles, "denoising_quality"):
            scene.cycles.denoising_quality = scene.cycles.denoising_prefilter = "FAST"
        scene.cycles.max_bounces = 2
        render.resolution_x = render.resolution_y = size
        render.resolution_percentage = 100
        render.film_transparent = False
        render.image_settings.file_format = "PNG"
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.camera = camera

        def render_frame(path: Path) -> Path:
            render.filepath = str(path)
            try:
                bpy.ops.render.render(write_still=True, scene=scene.name)
            except RuntimeError as exc:
                raise TalkingHeadError(f"preview render failed: {exc}") from None
            return Path(path)

        yield render_frame
    finally:
        _restore_settings(scene, saved)
        for datablock in added:  # objects before their data
            try:
                _remove(datablock)
            except ReferenceError:  # already gone with its owner
                pass


def frame_face(scene: bpy.types.Scene, obj: bpy.types.Object, frames: list[int], name: str = "Talking Head camera") -> bpy.types.Object:
    """A camera that stays in the scene, framed on `obj`'s face over `frames` for the scene's render
    size, made the scene's camera. For a scene we built (the demo's), never a user's."""
    camera = add_face_camera(scene, face_points(obj, _world_vertices(scene, obj, frames)), name)
    scene.camera = camera
    return camera


def face_points(obj: bpy.types.Object, vertices: np.ndarray) -> np.ndarray:
    """The points a camera frames, from world positions `vertices` (n, V, 3) of `obj`'s mesh:
    the face landmarks of the project's head (brows to chin), else every vertex. -> (m, 3)"""
    head = head_look.project_head_of(obj.data)
    if head is not None:
        vertices = vertices[:, [head.landmarks[name] for name in FACE_LANDMARKS]]
    return vertices.reshape(-1, 3)


def add_face_camera(
    scene: bpy.types.Scene,
    focus: np.ndarray,
    name: str = "Talking Head camera",
    aspect: float | None = None,
    yaw_degrees: float = YAW_DEGREES,
    pitch_degrees: float = PITCH_DEGREES,
) -> bpy.types.Object:
    """A camera (linked to `scene`) that looks at a face from the front (Blender's -Y side, see
    core/geometry.py Y_UP_TO_Z_UP), turned by `yaw_degrees`, so that `focus` (N, 3) world points
    fill FACE_FILL of the frame's height (or width, when that is tighter). `aspect` is the render's
    width / height (default: the scene's)."""
    render = scene.render
    aspect = aspect or (render.resolution_x * render.pixel_aspect_x) / (render.resolution_y * render.pixel_aspect_y)
    data = bpy.data.cameras.new(name)
    data.lens = LENS_MM
    data.sensor_fit = "VERTICAL"  # data.angle_y is the frame's height, whatever the aspect
    camera = bpy.data.objects.new(name, data)
    scene.collection.objects.link(camera)
    yaw, pitch = math.radians(yaw_degrees), math.radians(pitch_degrees)
    forward = Vector((-math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), -math.sin(pitch)))
    rotation = forward.to_track_quat("-Z", "Y")
    right, up = rotation @ Vector((1, 0, 0)), rotation @ Vector((0, 1, 0))
    # Fit: a point at (x, y) across the view and d nearer than the centre needs distance >= |x| / tan + d.
    lo, hi = focus.min(axis=0), focus.max(axis=0)
    centre = (lo + hi) / 2
    offsets = focus - centre
    across = np.abs(offsets @ np.array(right)), np.abs(offsets @ np.array(up))
    nearer = -(offsets @ np.array(forward))
    tan_y = math.tan(data.angle_y / 2) * FACE_FILL
    distance = float(max((across[0] / (tan_y * aspect) + nearer).max(), (across[1] / tan_y + nearer).max()))
    camera.matrix_world = Matrix.Translation(Vector(centre) - forward * distance) @ rotation.to_matrix().to_4x4()
    data.clip_start = distance / 100
    data.clip_end = distance * 10
    return camera


def _add_lights(scene, camera, focus) -> list:
    """Key (upper camera left), fill (lower right) and rim (behind) area lights around the face."""
    centre = Vector((focus.min(axis=0) + focus.max(axis=0)) / 2)
    distance = (camera.location - centre).length
    rotation = camera.matrix_world.to_quaternion()
    added = []
    for name, energy, offset, size in (  # offsets in the camera's frame (x right, y up, z back), in camera distances
        ("key", 5.0, (-0.7, 0.5, 0.8), 0.5),
        ("fill", 1.6, (0.9, 0.0, 0.6), 0.8),
        ("rim", 3.0, (0.3, 0.8, -0.9), 0.5),
    ):
        data = bpy.data.lights.new(f"Talking Head preview {name}", "AREA")
        data.energy = energy * distance**2
        data.size = size * distance
        light = bpy.data.objects.new(f"Talking Head preview {name} light", data)
        light.location = centre + rotation @ Vector(offset) * distance
        light.rotation_euler = (centre - light.location).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(light)
        added += [light, data]
    return added


def _use_world(scene):
    """A plain grey-blue world for the render, in place of the scene's own."""
    world = bpy.data.worlds.new("Talking Head preview")
    if world.node_tree is None and hasattr(world, "use_nodes"):  # Blender < 5
        world.use_nodes = True
    background = world.node_tree.nodes.get("Background")
    if background is not None:
        background.inputs[0].default_value = (0.18, 0.2, 0.23, 1.0)
        background.inputs[1].default_value = 0.6
    scene.world = world
    return world


def _world_vertices(scene, obj, frames) -> np.ndarray:
    """(len(frames), V, 3) world positions of `obj`'s evaluated mesh at each frame (shape keys and
    object motion on); the current frame is restored."""
    current = scene.frame_current
    positions = []
    try:
        for frame in frames:
            scene.frame_set(frame)
            evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
            mesh = evaluated.to_mesh()
            co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", co)
            evaluated.to_mesh_clear()
            matrix = np.array(evaluated.matrix_world)
            positions.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
    finally:
        scene.frame_set(current)
    return np.stack(positions)


def _read_png(path: Path) -> np.ndarray:
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(image.size[1], image.size[0], 4)
    finally:
        bpy.data.images.remove(image)


def _write_png(pixels: np.ndarray, out: Path) -> None:
    """Write (h, w, 4) pixels, bottom row first, as a PNG."""
    image = bpy.data.images.new("Talking Head preview", pixels.shape[1], pixels.shape[0], alpha=True)
    try:
        image.pixels.foreach_set(pixels.ravel())
        image.filepath_raw = str(out)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


class _MaterialSlot:
    """A material slot we appended for the preview: removing it pops the slot (and the material,
    when we made it for the preview)."""

    def __init__(self, obj, material, new: bool) -> None:
        self.obj, self.material, self.new = obj, material, new

    def remove(self) -> None:
        self.obj.data.materials.pop(index=len(self.obj.data.materials) - 1)
        if self.new:
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


_DENOISER = ("denoising_quality", "denoising_prefilter")  # Blender 4.1+


def _save_settings(scene) -> dict:
    render, cycles, view = scene.render, scene.cycles, scene.view_settings
    return {
        "engine": render.engine,
        "resolution": (render.resolution_x, render.resolution_y, render.resolution_percentage),
        "filepath": render.filepath,
        "film_transparent": render.film_transparent,
        "file_format": render.image_settings.file_format,
        "cycles": (cycles.device, cycles.samples, cycles.use_denoising, cycles.max_bounces),
        "denoiser": tuple(getattr(cycles, name) for name in _DENOISER if hasattr(cycles, name)),
        "view": (view.view_transform, view.look),
        "camera": scene.camera,
        "world": scene.world,
    }


def _restore_settings(scene, saved: dict) -> None:
    render, cycles, view = scene.render, scene.cycles, scene.view_settings
    render.engine = saved["engine"]
    render.resolution_x, render.resolution_y, render.resolution_percentage = saved["resolution"]
    render.filepath = saved["filepath"]
    render.film_transparent = saved["film_transparent"]
    render.image_settings.file_format = saved["file_format"]
    cycles.device, cycles.samples, cycles.use_denoising, cycles.max_bounces = saved["cycles"]
    for name, value in zip([n for n in _DENOISER if hasattr(cycles, n)], saved["denoiser"]):
        setattr(cycles, name, value)
    view.view_transform, view.look = saved["view"]
    scene.camera = saved["camera"]
    scene.world = saved["world"]
