"""The one module that writes animation into Blender: shape keys, their weight curves, the
head motion as object keys, and the mapping from the model's 25 fps to the scene's frame rate.

A *take* is what one Animate run adds to one object; re-running replaces the previous take
and nothing else. A take is:
- one relative shape key per model frame ("TH.0000", ...) whose weight is a hat: 1 at its own
  frame, 0 at its neighbours, linear in between (so crossfading two neighbours is exactly the
  linear interpolation of the vertices at any scene frame rate), or, with `compact`, a small
  PCA basis ("TH.pca00", ...) with one weight curve each;
- the head motion as the object's rotation and location keys, one per scene frame
  (rotations resampled by quaternion slerp), composed with the object's rest transform so that
  the head turns about the bundle's pivot P;
- two actions (object, shape keys) tagged as ours. On an ID without an action the take's action
  becomes its action; on an ID whose own action is set, the take goes into an NLA track below it
  ("Talking Head"), and the user's action stays assigned and unchanged.

The shape keys carry the *displacements* the model made (ye_t - T) on top of the mesh's own
basis, so a mesh with the template's topology but another neutral shape keeps its shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Euler, Matrix, Quaternion

from ..core.animation import Animation
from ..core.errors import MeshError
from ..core.geometry import (
    compact_basis,
    covered_scene_frames,
    matrices_to_quaternions,
    model_frame_positions,
    resample_head_motion,
)

TAKE_PROPERTY = "talking_head_take"  # on the object: JSON describing the take
ACTION_TAG = "talking_head"  # on our actions, so that we never remove anyone else's
KEY_PREFIX = "TH."
TRACK_NAME = "Talking Head"
REST_CHANNELS = ("location", "rotation_mode", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale")


class MeshMismatchError(MeshError):
    """The target mesh does not have the bundle's topology."""


@dataclass
class TakeInfo:
    """What `write_take` wrote: where, how many keys, over which scene frames."""

    n_shape_keys: int
    frame_start: int
    frame_end: int
    compact: bool
    head_motion: bool


# ---------------------------------------------------------------------------------------------
# Time: the scene's frame rate (the model-to-scene mapping is core/geometry.py).


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


# ---------------------------------------------------------------------------------------------
# Takes.


def check_mesh(obj: bpy.types.Object, n_vertices: int) -> None:
    """Raise `MeshMismatchError` unless `obj` is a mesh with the template's vertex count."""
    if obj is None or obj.type != "MESH":
        raise MeshMismatchError("choose a mesh object as the target, or use 'Add template head'")
    count = len(obj.data.vertices)
    if count != n_vertices:
        raise MeshMismatchError(
            f"'{obj.name}' has {count:,} vertices but the model bundle's template has {n_vertices:,}: "
            "animate a mesh with the template's topology, or use 'Add template head' to create one"
        )


def has_take(obj: bpy.types.Object) -> bool:
    return obj is not None and TAKE_PROPERTY in obj.keys()


def write_take(
    obj: bpy.types.Object,
    animation: Animation,
    template: np.ndarray,
    scene: bpy.types.Scene,
    start: float,
    head_amplitude: float = 1.0,
    head_motion: bool = True,
    compact: bool = False,
    set_frame_range: bool = True,
) -> TakeInfo:
    """Write `animation` onto `obj` from scene frame `start`, replacing this add-on's previous
    take on `obj` (and nothing else). `template` (V, 3) is the mesh the model animated."""
    check_mesh(obj, animation.emotional.shape[1])
    fps = scene_fps(scene)
    # The object's own transform: kept by the previous take, else the current one.
    rest = json.loads(obj[TAKE_PROPERTY])["rest"] if has_take(obj) else _rest_of(obj)
    mesh = obj.data
    n_vertices = len(mesh.vertices)
    basis = np.empty(n_vertices * 3, dtype=np.float32)
    if mesh.shape_keys is not None:
        mesh.shape_keys.reference_key.data.foreach_get("co", basis)
    else:
        mesh.vertices.foreach_get("co", basis)
    basis = basis.reshape(n_vertices, 3)
    # Everything is computed before the scene is touched: a failure leaves it as it was.
    # What the model did to its template, (N, V, 3), carried over to this mesh's own shape.
    displacement = animation.emotional - template[None].astype(np.float32)
    model_frames = model_frame_positions(animation.n_frames, animation.fps, fps, start)
    if compact:
        shapes, weights = compact_basis(displacement)  # (K, V, 3), (N, K)
        names = [f"{KEY_PREFIX}pca{k:02d}" for k in range(len(shapes))]
    else:
        shapes, weights = displacement, None
        names = [f"{KEY_PREFIX}{k:04d}" for k in range(animation.n_frames)]
    head_curves = _head_motion_curves(rest, animation, template, basis, fps, start, head_amplitude) if head_motion else []

    remove_take(obj)
    take: dict = {"rest": rest, "shape_keys": [], "created_basis": False}
    if mesh.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
        take["created_basis"] = True
    key = mesh.shape_keys
    reference = key.reference_key
    for name, shape in zip(names, shapes):
        block = obj.shape_key_add(name=name, from_mix=False)
        block.relative_key = reference
        block.data.foreach_set("co", (basis + shape).ravel())
        if compact:
            block.slider_min, block.slider_max = -1.0, 1.0
        block.value = 0.0
    take["shape_keys"] = [key.key_blocks[i].name for i in range(len(key.key_blocks) - len(names), len(key.key_blocks))]

    curves = []
    step = fps / animation.fps
    for index, name in enumerate(take["shape_keys"]):
        path = f'key_blocks["{_escape(name)}"].value'
        if compact:
            curves.append((path, 0, model_frames, weights[:, index]))
        else:  # a hat: 0 one model frame before, 1 at its frame, 0 one model frame after
            at = model_frames[index]
            curves.append((path, 0, np.array([at - step, at, at + step]), np.array([0.0, 1.0, 0.0])))
    take["key_action"], take["key_track"] = _write_action(key, f"{TRACK_NAME} shapes {obj.name}", curves)

    frames = covered_scene_frames(animation.n_frames, animation.fps, fps, start)
    take["head_motion"] = bool(head_motion)
    if head_motion:
        take["object_action"], take["object_track"] = _write_action(obj, f"{TRACK_NAME} head {obj.name}", head_curves)
    if set_frame_range:
        scene.frame_start, scene.frame_end = int(frames[0]), int(frames[-1])
    take["frame_start"], take["frame_end"] = int(frames[0]), int(frames[-1])
    obj[TAKE_PROPERTY] = json.dumps(take)
    mesh.update()
    return TakeInfo(len(names), int(frames[0]), int(frames[-1]), compact, bool(head_motion))


def remove_take(obj: bpy.types.Object) -> bool:
    """Remove this add-on's take from `obj`: its shape keys, actions, NLA tracks, and the head
    motion (the object's transform goes back to its rest). Returns False if there was none."""
    if not has_take(obj):
        return False
    take = json.loads(obj[TAKE_PROPERTY])
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is not None:
        _remove_action(key, take.get("key_action"), take.get("key_track"))
        ours = set(take.get("shape_keys", []))
        if take.get("created_basis") and len(key.key_blocks) == len(ours) + 1 and all(
            block.name in ours for block in key.key_blocks[1:]
        ):
            obj.shape_key_clear()  # the mesh had no shape keys before the first take
        else:
            for name in take.get("shape_keys", []):
                block = key.key_blocks.get(name)
                if block is not None:
                    obj.shape_key_remove(block)
    _remove_action(obj, take.get("object_action"), take.get("object_track"))
    _restore_rest(obj, take["rest"])
    del obj[TAKE_PROPERTY]
    return True


def _head_motion_curves(rest: dict, animation: Animation, template, basis, fps, start, amplitude) -> list:
    """Object keys so that world = Rest . T(Pl + tau_t) . R_t . T(-Pl), with Pl the pivot in the
    mesh's own coordinates (the bundle's pivot moved as the mesh's centroid is moved)."""
    frames, rotations, translations = resample_head_motion(
        animation.rotation, animation.translation, animation.fps, fps, start, amplitude
    )
    pivot = animation.pivot.astype(np.float64) + (basis.mean(axis=0) - template.mean(axis=0))
    rest_location, rest_scale = np.array(rest["location"]), np.array(rest["scale"])
    rest_matrix = np.array(_rest_rotation(rest).to_matrix())  # (3, 3)
    # loc_t = L0 + R0 S0 (Pl + tau_t - R_t Pl); rot_t = R0 R_t  (uniform rest scale)
    local = pivot[None] + translations - np.einsum("mij,j->mi", rotations, pivot)
    locations = rest_location[None] + np.einsum("ij,mj->mi", rest_matrix, local * rest_scale[None])
    world_rotations = np.einsum("ij,mjk->mik", rest_matrix, rotations)
    curves = [("location", axis, frames, locations[:, axis]) for axis in range(3)]
    mode = rest["rotation_mode"]
    if mode == "QUATERNION":
        quats = matrices_to_quaternions(world_rotations)
        curves += [("rotation_quaternion", axis, frames, quats[:, axis]) for axis in range(4)]
    elif mode == "AXIS_ANGLE":
        quats = matrices_to_quaternions(world_rotations)
        values = []
        for q in quats:
            axis, angle = Quaternion(q).to_axis_angle()
            values.append((angle, *axis))
        values = np.array(values)
        curves += [("rotation_axis_angle", i, frames, values[:, i]) for i in range(4)]
    else:
        eulers, previous = [], None
        for matrix in world_rotations:
            euler = Matrix(matrix).to_euler(mode, previous) if previous is not None else Matrix(matrix).to_euler(mode)
            eulers.append(tuple(euler))
            previous = euler
        eulers = np.array(eulers)
        curves += [("rotation_euler", axis, frames, eulers[:, axis]) for axis in range(3)]
    return curves


def _write_action(owner: bpy.types.ID, name: str, curves: list) -> tuple[str, str | None]:
    """One action with `curves` [(data_path, index, frames, values)], all linear; it becomes
    `owner`'s action, or, when `owner` already has one, a strip on an NLA track below it."""
    action = bpy.data.actions.new(name)
    action[ACTION_TAG] = True
    first = min(float(frames[0]) for _, _, frames, _ in curves)
    last = max(float(frames[-1]) for _, _, frames, _ in curves)
    # A manual range on whole frames keeps an NLA strip's time mapping exact.
    action.use_frame_range = True
    action.frame_start, action.frame_end = float(np.floor(first)), float(max(np.ceil(last), np.floor(first) + 1))
    fcurves, slot = _fcurve_collection(action, owner)
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    for path, index, frames, values in curves:
        curve = fcurves.new(path, index=index)
        points = np.empty((len(frames), 2), dtype=np.float32)
        points[:, 0], points[:, 1] = frames, values
        curve.keyframe_points.add(len(frames))
        curve.keyframe_points.foreach_set("co", points.ravel())
        curve.keyframe_points.foreach_set("interpolation", [linear] * len(frames))
        curve.update()
    data = owner.animation_data or owner.animation_data_create()
    if data.action is None:
        data.action = action
        if slot is not None:
            data.action_slot = slot
        return action.name, None
    track = data.nla_tracks.new()
    track.name = TRACK_NAME
    strip = track.strips.new(TRACK_NAME, int(action.frame_start), action)
    if slot is not None and getattr(strip, "action_slot", None) != slot:
        strip.action_slot = slot
    return action.name, track.name


def _fcurve_collection(action: bpy.types.Action, owner: bpy.types.ID):
    """The F-curve collection to fill: a channelbag for `owner`'s slot (Blender 4.4+ layered
    actions), or the action's own list (Blender 4.2, 4.3)."""
    if not hasattr(action, "slots"):
        return action.fcurves, None
    slot = action.slots.new(id_type=owner.id_type, name=owner.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    return strip.channelbags.new(slot).fcurves, slot


def _remove_action(owner: bpy.types.ID, action_name: str | None, track_name: str | None) -> None:
    action = bpy.data.actions.get(action_name) if action_name else None
    if action is not None and not action.get(ACTION_TAG):
        action = None  # a user's action that happens to have our name: never touch it
    data = owner.animation_data
    if data is not None and action is not None:
        if data.action == action:
            data.action = None
        for track in list(data.nla_tracks):
            if track.name == track_name and all(strip.action == action for strip in track.strips):
                data.nla_tracks.remove(track)
    if action is not None:
        bpy.data.actions.remove(action)
    if data is not None and data.action is None and not data.nla_tracks and not data.drivers:
        owner.animation_data_clear()


def _rest_of(obj: bpy.types.Object) -> dict:
    return {name: (getattr(obj, name) if name == "rotation_mode" else list(getattr(obj, name))) for name in REST_CHANNELS}


def _rest_rotation(rest: dict) -> Quaternion:
    mode = rest["rotation_mode"]
    if mode == "QUATERNION":
        return Quaternion(rest["rotation_quaternion"]).normalized()
    if mode == "AXIS_ANGLE":
        angle, *axis = rest["rotation_axis_angle"]
        return Quaternion(axis, angle)
    return Euler(rest["rotation_euler"], mode).to_quaternion()


def _restore_rest(obj: bpy.types.Object, rest: dict) -> None:
    obj.rotation_mode = rest["rotation_mode"]
    for name in REST_CHANNELS:
        if name != "rotation_mode":
            setattr(obj, name, rest[name])


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
