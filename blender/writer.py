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
- or, for a face with ARKit shape keys (any mesh, `write_arkit_take`), one weight curve per matched
  ARKit channel on the face's own shape keys, which stay as they are;
- the head motion on an armature's bone instead of the object, when asked (`HeadBone`);
- two actions (object or armature, shape keys) tagged as ours. On an ID without an action the take's action
  becomes its action; on an ID whose own action is set, the take goes into an NLA track below it
  ("Talking Head"), and the user's action stays assigned and unchanged.

The shape keys carry the *displacements* the model made (ye_t - T) on top of the mesh's own
basis, so a mesh with the template's topology but another neutral shape keeps its shape; the
displacements and the head motion are scaled and turned by the similarity from the template to the
mesh's rest shape (core/character.py), so a scaled or turned copy of the template moves the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Euler, Matrix, Quaternion

from ..core.animation import Animation
from ..core.character import Similarity, scale_weights, template_fit
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


BONE_CHANNELS = ("location", "rotation_mode", "rotation_euler", "rotation_quaternion", "rotation_axis_angle")


class BoneError(MeshError):
    """A head bone that does not exist."""


@dataclass
class TakeInfo:
    """What `write_take` wrote: where, how many keys (or ARKit curves), over which scene frames."""

    n_shape_keys: int
    frame_start: int
    frame_end: int
    compact: bool
    head_motion: bool
    kind: str = "SHAPE_KEYS"  # or "ARKIT": n_shape_keys is then the number of channel curves


@dataclass
class HeadBone:
    """Where the head motion goes instead of the face object: a bone of an armature."""

    armature: bpy.types.Object
    bone: str

    def check(self) -> None:
        if self.armature is None or self.armature.type != "ARMATURE":
            raise BoneError("choose an armature object for the head bone")
        if self.bone not in self.armature.data.bones:
            raise BoneError(f"armature '{self.armature.name}' has no bone '{self.bone}': pick the head bone from its list")


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
            "animate a mesh with the template's topology, or use 'Add template head' to create one, "
            "or give it ARKit shape keys ('Add ARKit Shape Keys')"
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
    head_bone: HeadBone | None = None,
) -> TakeInfo:
    """Write `animation` onto `obj` from scene frame `start`, replacing this add-on's previous
    take on `obj` (and nothing else). `template` (V, 3) is the mesh the model animated."""
    check_mesh(obj, animation.emotional.shape[1])
    if head_motion and head_bone is not None:
        head_bone.check()
    fps = scene_fps(scene)
    # The object's own transform: kept by the previous take, else the current one.
    rest = json.loads(obj[TAKE_PROPERTY])["rest"] if has_take(obj) else _rest_of(obj)
    mesh = obj.data
    basis = rest_vertices(obj)
    # Everything is computed before the scene is touched: a failure leaves it as it was.
    # What the model did to its template, (N, V, 3), carried over to this mesh's own size and axes.
    similarity = template_fit(template, basis, f"'{obj.name}'")
    displacement = similarity.vectors(animation.emotional - template[None].astype(np.float32))
    model_frames = model_frame_positions(animation.n_frames, animation.fps, fps, start)
    if compact:
        shapes, weights = compact_basis(displacement)  # (K, V, 3), (N, K)
        names = [f"{KEY_PREFIX}pca{k:02d}" for k in range(len(shapes))]
    else:
        shapes, weights = displacement, None
        names = [f"{KEY_PREFIX}{k:04d}" for k in range(animation.n_frames)]
    head = _head_motion(obj, rest, animation, similarity, fps, start, head_amplitude, head_bone) if head_motion else None

    remove_take(obj)
    take: dict = {"kind": "SHAPE_KEYS", "rest": rest, "shape_keys": [], "created_basis": False}
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

    frames = _finish_take(obj, take, head, animation, scene, fps, start, set_frame_range)
    return TakeInfo(len(names), int(frames[0]), int(frames[-1]), compact, bool(head_motion))


def write_arkit_take(
    obj: bpy.types.Object,
    weights: np.ndarray,
    channels: dict[str, str],
    animation: Animation,
    similarity: Similarity,
    scene: bpy.types.Scene,
    start: float,
    gains: dict[str, float] | None = None,
    head_amplitude: float = 1.0,
    head_motion: bool = True,
    set_frame_range: bool = True,
    head_bone: HeadBone | None = None,
) -> TakeInfo:
    """Write ARKit weights (N, 52) as one curve per channel in `channels` (ARKit name -> the face's
    shape key) onto `obj`'s shape keys, each scaled by its group's gain and clipped to [0, 1],
    replacing this add-on's previous take on `obj`. The shape keys themselves are not changed; their
    values come back on Remove. `similarity` maps the template to the face, for the head motion."""
    from ..core.arkit import ARKIT_INDEX

    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        raise MeshMismatchError("choose a mesh with ARKit shape keys for ARKit curves")
    key = obj.data.shape_keys
    for channel, name in channels.items():
        if name not in key.key_blocks:
            raise MeshMismatchError(f"'{obj.name}' has no shape key '{name}' for channel {channel}")
    if not channels:
        raise MeshMismatchError(f"'{obj.name}' has no ARKit shape keys: use 'Add ARKit Shape Keys' or map its keys")
    if head_motion and head_bone is not None:
        head_bone.check()
    fps = scene_fps(scene)
    rest = json.loads(obj[TAKE_PROPERTY])["rest"] if has_take(obj) else _rest_of(obj)
    values = scale_weights(weights, gains)  # (N, 52) in [0, 1]
    model_frames = model_frame_positions(animation.n_frames, animation.fps, fps, start)
    head = _head_motion(obj, rest, animation, similarity, fps, start, head_amplitude, head_bone) if head_motion else None

    remove_take(obj)
    key_values = {name: key.key_blocks[name].value for name in channels.values()}  # the user's, restored by remove_take
    take: dict = {"kind": "ARKIT", "rest": rest, "shape_keys": [], "created_basis": False, "key_values": key_values,
                  "channels": dict(channels)}
    curves = [(f'key_blocks["{_escape(name)}"].value', 0, model_frames, values[:, ARKIT_INDEX[channel]])
              for channel, name in channels.items()]
    take["key_action"], take["key_track"] = _write_action(key, f"{TRACK_NAME} ARKit {obj.name}", curves)
    frames = _finish_take(obj, take, head, animation, scene, fps, start, set_frame_range)
    return TakeInfo(len(curves), int(frames[0]), int(frames[-1]), False, bool(head_motion), "ARKIT")


def rest_vertices(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) the mesh's rest shape in its own coordinates: its Basis shape key, else its vertices."""
    mesh = obj.data
    basis = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    if mesh.shape_keys is not None:
        mesh.shape_keys.reference_key.data.foreach_get("co", basis)
    else:
        mesh.vertices.foreach_get("co", basis)
    return basis.reshape(-1, 3)


def _finish_take(obj, take: dict, head, animation: Animation, scene, fps: float, start: float, set_frame_range: bool):
    """Write the head motion (on the object or the bone), the frame range and the take's record."""
    frames = covered_scene_frames(animation.n_frames, animation.fps, fps, start)
    take["head_motion"] = head is not None
    if head is not None:
        owner, curves, bone_rest = head
        if bone_rest is None:
            take["object_action"], take["object_track"] = _write_action(obj, f"{TRACK_NAME} head {obj.name}", curves)
        else:
            action, track = _write_action(owner, f"{TRACK_NAME} head {obj.name}", curves)
            take["bone"] = {"armature": owner.name, "action": action, "track": track, **bone_rest}
    if set_frame_range:
        scene.frame_start, scene.frame_end = int(frames[0]), int(frames[-1])
    take["frame_start"], take["frame_end"] = int(frames[0]), int(frames[-1])
    obj[TAKE_PROPERTY] = json.dumps(take)
    obj.data.update()
    return frames


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
        for name, value in take.get("key_values", {}).items():  # ARKit curves: the keys' own values back
            block = key.key_blocks.get(name)
            if block is not None:
                block.value = value
    _remove_action(obj, take.get("object_action"), take.get("object_track"))
    bone = take.get("bone")
    armature = bpy.data.objects.get(bone["armature"]) if bone else None
    if armature is not None and armature.type == "ARMATURE":
        _remove_action(armature, bone.get("action"), bone.get("track"))
        pose_bone = armature.pose.bones.get(bone["bone"])
        if pose_bone is not None:
            pose_bone.rotation_mode = bone["rest"]["rotation_mode"]
            for name in BONE_CHANNELS:
                if name != "rotation_mode":
                    setattr(pose_bone, name, bone["rest"][name])
    _restore_rest(obj, take["rest"])
    del obj[TAKE_PROPERTY]
    return True


def _head_motion(obj, rest: dict, animation: Animation, similarity: Similarity, fps, start, amplitude, bone: HeadBone | None):
    """(owner, curves, bone rest or None): the head motion as keys on the object, or on the bone.

    In the mesh's own coordinates the head moves x -> R_t x + o_t (the model's motion about the
    pivot P, carried over by `similarity`). On the object: world = Rest . [R_t | o_t]. On a bone B
    (rest matrix in armature space) of armature A, with the face object's world matrix F:
    the bone's basis matrix is B^-1 A^-1 F [R_t | o_t] F^-1 A B, which moves the bone (and what
    it deforms) as the object would have moved the face, while its parents keep their rest."""
    frames, rotations, translations = resample_head_motion(
        animation.rotation, animation.translation, animation.fps, fps, start, amplitude
    )
    turned, offsets = similarity.head_motion(rotations, translations, animation.pivot)
    if bone is None:
        rest_location, rest_scale = np.array(rest["location"]), np.array(rest["scale"])
        rest_matrix = np.array(_rest_rotation(rest).to_matrix())  # (3, 3)
        # loc_t = L0 + R0 S0 o_t; rot_t = R0 R_t  (uniform rest scale)
        locations = rest_location[None] + np.einsum("ij,mj->mi", rest_matrix, offsets * rest_scale[None])
        world_rotations = np.einsum("ij,mjk->mik", rest_matrix, turned)
        curves = [("location", axis, frames, locations[:, axis]) for axis in range(3)]
        return obj, curves + _rotation_curves("", rest["rotation_mode"], frames, world_rotations), None
    armature = bone.armature
    pose_bone = armature.pose.bones[bone.bone]
    previous = json.loads(obj[TAKE_PROPERTY]).get("bone") if has_take(obj) else None
    if previous and previous["armature"] == armature.name and previous["bone"] == bone.bone:
        rest_bone = {"bone": bone.bone, "rest": previous["rest"]}  # the pose bone now shows the previous take
    else:
        rest_bone = {"bone": bone.bone, "rest": {
            name: (getattr(pose_bone, name) if name == "rotation_mode" else list(getattr(pose_bone, name))) for name in BONE_CHANNELS
        }}
    face = np.array(obj.matrix_world, dtype=np.float64)
    if has_take(obj) or obj.animation_data is not None:  # the face's rest, not where a take has it now
        face = np.array(Matrix.LocRotScale(rest["location"], _rest_rotation(rest), rest["scale"]), dtype=np.float64)
        if obj.parent is not None:
            face = np.array(obj.parent.matrix_world @ obj.matrix_parent_inverse, dtype=np.float64) @ face
    to_bone = np.linalg.inv(np.array(armature.matrix_world, dtype=np.float64)) @ face  # mesh -> armature space
    bone_rest = np.array(armature.data.bones[bone.bone].matrix_local, dtype=np.float64)
    motion = np.tile(np.eye(4), (len(frames), 1, 1))
    motion[:, :3, :3], motion[:, :3, 3] = turned, offsets
    inner = np.linalg.inv(bone_rest) @ to_bone
    basis = inner[None] @ motion @ np.linalg.inv(inner)[None]  # (M, 4, 4)
    path = f'pose.bones["{_escape(bone.bone)}"].'
    linear = basis[:, :3, :3] / np.cbrt(np.linalg.det(basis[:, :3, :3]))[:, None, None]
    curves = [(path + "location", axis, frames, basis[:, axis, 3]) for axis in range(3)]
    return armature, curves + _rotation_curves(path, rest_bone["rest"]["rotation_mode"], frames, linear), rest_bone


def _rotation_curves(prefix: str, mode: str, frames: np.ndarray, rotations: np.ndarray) -> list:
    """Curves for rotations (M, 3, 3) in a rotation mode ("QUATERNION", "AXIS_ANGLE", Euler orders)."""
    if mode == "QUATERNION":
        quats = matrices_to_quaternions(rotations)
        return [(prefix + "rotation_quaternion", axis, frames, quats[:, axis]) for axis in range(4)]
    if mode == "AXIS_ANGLE":
        quats = matrices_to_quaternions(rotations)
        values = []
        for q in quats:
            axis, angle = Quaternion(q).to_axis_angle()
            values.append((angle, *axis))
        values = np.array(values)
        return [(prefix + "rotation_axis_angle", i, frames, values[:, i]) for i in range(4)]
    eulers, previous = [], None
    for matrix in rotations:
        euler = Matrix(matrix).to_euler(mode, previous) if previous is not None else Matrix(matrix).to_euler(mode)
        eulers.append(tuple(euler))
        previous = euler
    eulers = np.array(eulers)
    return [(prefix + "rotation_euler", axis, frames, eulers[:, axis]) for axis in range(3)]


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
