"""The one module that exports a take: FBX (shape-key animation and object animation) and
Alembic (vertex positions per frame, plus the object transform), over the animated frames.

FBX notes: Blender's FBX exporter drops shape keys when modifiers are applied and ignores
absolute shape keys, so the take uses relative keys and we export without modifiers; NLA and
"all actions" modes are off, so the file holds one take: what the scene plays.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import bpy

from ..core.errors import TalkingHeadError
from . import writer


class ExportError(TalkingHeadError):
    """Nothing to export, or the exporter failed."""


def take_frames(obj: bpy.types.Object, scene: bpy.types.Scene) -> tuple[int, int]:
    """The take's frame range, else the scene's."""
    if writer.has_take(obj):
        take = json.loads(obj[writer.TAKE_PROPERTY])
        return int(take["frame_start"]), int(take["frame_end"])
    return scene.frame_start, scene.frame_end


def export_fbx(obj: bpy.types.Object, filepath: str | Path, scene: bpy.types.Scene | None = None) -> Path:
    scene = scene or bpy.context.scene
    path = _output(filepath, ".fbx", obj)
    start, end = take_frames(obj, scene)
    with _selected_only(obj, scene), _frame_range(scene, start, end):
        result = bpy.ops.export_scene.fbx(
            filepath=str(path),
            use_selection=True,
            object_types={"MESH"},
            use_mesh_modifiers=False,
            add_leaf_bones=False,
            bake_anim=True,
            bake_anim_use_all_bones=False,
            bake_anim_use_nla_strips=False,
            bake_anim_use_all_actions=False,
            bake_anim_force_startend_keying=True,
            bake_anim_step=1.0,
            bake_anim_simplify_factor=0.0,
        )
    if "FINISHED" not in result:
        raise ExportError(f"FBX export failed: {path}")
    return path


def export_alembic(obj: bpy.types.Object, filepath: str | Path, scene: bpy.types.Scene | None = None, positions_only: bool = True) -> Path:
    scene = scene or bpy.context.scene
    path = _output(filepath, ".abc", obj)
    start, end = take_frames(obj, scene)
    with _selected_only(obj, scene):
        result = bpy.ops.wm.alembic_export(
            filepath=str(path),
            start=start,
            end=end,
            selected=True,
            uvs=not positions_only,
            normals=not positions_only,
            vcolors=False,
            orcos=False,
            face_sets=False,
            export_custom_properties=False,
            export_hair=False,
            export_particles=False,
            as_background_job=False,
            evaluation_mode="VIEWPORT",
            init_scene_frame_range=False,
        )
    if "FINISHED" not in result:
        raise ExportError(f"Alembic export failed: {path}")
    return path


def _output(filepath: str | Path, suffix: str, obj) -> Path:
    if obj is None or obj.type != "MESH":
        raise ExportError("choose the animated face (a mesh object) to export")
    path = Path(bpy.path.abspath(str(filepath)))
    if path.suffix.lower() != suffix:
        path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _selected_only(obj: bpy.types.Object, scene: bpy.types.Scene):
    """Select just `obj` while exporting; the user's selection comes back afterwards."""
    view_layer = bpy.context.view_layer
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    hidden = obj.hide_get()
    try:
        for other in selected:
            other.select_set(False)
        obj.hide_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        yield
    finally:
        obj.select_set(False)
        obj.hide_set(hidden)
        for other in selected:
            if other.name in view_layer.objects:
                other.select_set(True)
        view_layer.objects.active = active


@contextlib.contextmanager
def _frame_range(scene: bpy.types.Scene, start: int, end: int):
    saved = scene.frame_start, scene.frame_end, scene.frame_current
    try:
        scene.frame_start, scene.frame_end = start, end
        yield
    finally:
        scene.frame_start, scene.frame_end = saved[0], saved[1]
        scene.frame_set(saved[2])
