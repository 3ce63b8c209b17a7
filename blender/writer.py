"""The one module that writes animation into Blender: shape keys, their weight curves, the
head motion as object keys, and the mapping from the model's 25 fps to the scene's frame rate.

A face carries *lines*: one take per sound strip (a line of dialogue), named after the strip.
Re-animating a line replaces that line and nothing else; `remove_take` removes one line or all.
A line is:
- per-vertex shape keys on a template-topology face, named per line: with `compact` (the default)
  a small PCA basis ("TH.<line>.pca00", ...) with one weight curve each, else one relative shape
  key per model frame ("TH.<line>.0000", ...) whose weight is a hat: 1 at its own frame, 0 at its
  neighbours, linear in between (crossfading two neighbours is exactly the linear interpolation of
  the vertices at any scene frame rate; for research and exact round trips);
- or, for a face with ARKit shape keys (any mesh, `write_arkit_take`), one weight curve per matched
  ARKit channel on the face's own shape keys, which stay as they are;
- the head motion as rotation and location keys, one per scene frame (rotations resampled by
  quaternion slerp), composed with the object's rest transform so that the head turns about the
  bundle's pivot P; on the face object, or on an armature's bone (`HeadBone`);
- one action per datablock (shape keys; object or armature), tagged as ours, played by an NLA strip
  named after the line on the add-on's track "Talking Head" of that datablock.

Time: only the audible part of the sound strip is written (a strip trimmed at its start animates
from its trimmed start, with the animation of the audio heard there), and the NLA strip sits at
the strip's audible start; `move_lines` moves lines whose sound strip moved (Sync to Sound). Where
two lines of one face overlap, the later-starting line wins: the earlier line's NLA strip ends
where the later one starts (so per-line shape keys never add up, and ARKit or head channels never
fight). Between lines the face is at rest: a strip on a "Talking Head rest" track below holds the
object's rest transform (and the ARKit keys' own values), because Blender's NLA resets animated
channels to their defaults where no strip plays. The user's active actions stay assigned and play
above the add-on's tracks; the user's own NLA tracks are never changed.

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
from ..core.errors import AudioError, MeshError
from ..core.geometry import (
    compact_basis,
    matrices_to_quaternions,
    model_frame_positions,
    resample_head_motion,
)

TAKE_PROPERTY = "talking_head_take"  # on the object: JSON describing the take
ACTION_TAG = "talking_head"  # on our actions, so that we never remove anyone else's
KEY_PREFIX = "TH."
TRACK_NAME = "Talking Head"  # the add-on's NLA track of lines on each datablock
REST_TRACK_NAME = "Talking Head rest"  # below it: the rest between lines
REST_TAG = "talking_head_rest"  # on the rest actions
DEFAULT_LINE = "Take"  # the line of a take written without a sound strip's name
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
    line: str = DEFAULT_LINE
    note: str = ""  # what the run could not add (e.g. blinks on a template without landmarks)


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


def has_take(obj: bpy.types.Object, line: str | None = None) -> bool:
    """Whether `obj` carries lines of this add-on (or the line `line`)."""
    if obj is None or TAKE_PROPERTY not in obj.keys():
        return False
    return line is None or line in take_record(obj).get("lines", {})


def take_record(obj: bpy.types.Object) -> dict:
    """What the add-on wrote on `obj` ({} when nothing): the object's "rest" transform, "lines"
    (line -> its shape keys, actions, kind and time), "key_values" (the user's values of the keys
    ARKit curves drive), "bones" (rest poses of head bones), the last line's "kind", and the frames
    all lines cover ("frame_start", "frame_end")."""
    if obj is None or TAKE_PROPERTY not in obj.keys():
        return {}
    return json.loads(obj[TAKE_PROPERTY])


def lines_of(obj: bpy.types.Object) -> dict[str, dict]:
    """line -> its record; each has "sound" (the sound strip's name) and "visible" (the scene
    frames where it plays, [first, last], or None where a later line covers it whole)."""
    return take_record(obj).get("lines", {})


def write_take(
    obj: bpy.types.Object,
    animation: Animation,
    template: np.ndarray,
    scene: bpy.types.Scene,
    start: float,
    head_amplitude: float = 1.0,
    head_motion: bool = True,
    compact: bool = True,
    set_frame_range: bool = False,
    head_bone: HeadBone | None = None,
    line: str = DEFAULT_LINE,
    audible: tuple[float, float] | None = None,
) -> TakeInfo:
    """Write `animation` (its sound starts at scene frame `start`) onto `obj` as the line `line`,
    replacing that line (and nothing else). `audible`: the scene frames [first, last] heard of the
    sound strip (None: all of it); only those are written. `template` (V, 3) is the mesh the model
    animated. `compact`: a few PCA keys, else one key per model frame."""
    check_mesh(obj, animation.emotional.shape[1])
    if head_motion and head_bone is not None:
        head_bone.check()
    fps = scene_fps(scene)
    record = _record(obj)
    mesh = obj.data
    basis = rest_vertices(obj)
    # Everything is computed before the scene is touched: a failure leaves it as it was.
    # What the model did to its template, (N, V, 3), carried over to this mesh's own size and axes.
    similarity = template_fit(template, basis, f"'{obj.name}'")
    part, first, begin = _audible_part(animation, fps, start, audible, line)
    displacement = similarity.vectors(part.emotional - template[None].astype(np.float32))
    model_frames = model_frame_positions(part.n_frames, part.fps, fps, begin)
    prefix = f"{KEY_PREFIX}{line[:40]}."
    if compact:
        shapes, weights = compact_basis(displacement)  # (K, V, 3), (N, K)
        names = [f"{prefix}pca{k:02d}" for k in range(len(shapes))]
    else:
        shapes, weights = displacement, None
        names = [f"{prefix}{first + k:04d}" for k in range(part.n_frames)]
    head = _head_motion(obj, record, part, similarity, fps, begin, head_amplitude, head_bone) if head_motion else None

    _drop_line(obj, record, line)
    if mesh.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
        record["created_basis"] = True
    key = mesh.shape_keys
    reference = key.reference_key
    for name, shape in zip(names, shapes):
        block = obj.shape_key_add(name=name, from_mix=False)
        block.relative_key = reference
        block.data.foreach_set("co", (basis + shape).ravel())
        if compact:
            block.slider_min, block.slider_max = -1.0, 1.0
        block.value = 0.0
    written = [key.key_blocks[i].name for i in range(len(key.key_blocks) - len(names), len(key.key_blocks))]

    curves = []
    step = fps / animation.fps
    for index, name in enumerate(written):
        path = f'key_blocks["{_escape(name)}"].value'
        if compact:
            curves.append((path, 0, model_frames, weights[:, index]))
        else:  # a hat: 0 one model frame before, 1 at its frame, 0 one model frame after
            at = model_frames[index]
            curves.append((path, 0, np.array([at - step, at, at + step]), np.array([0.0, 1.0, 0.0])))
    entry = {"kind": "SHAPE_KEYS", "compact": bool(compact), "shape_keys": written,
             "key_action": _new_action(key, f"{TRACK_NAME} {line} shapes {obj.name}", curves)}
    return _finish_line(obj, record, line, entry, head, part, scene, fps, start, begin, audible, set_frame_range, len(names))


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
    set_frame_range: bool = False,
    head_bone: HeadBone | None = None,
    line: str = DEFAULT_LINE,
    audible: tuple[float, float] | None = None,
) -> TakeInfo:
    """Write ARKit weights (N, 52) as one curve per channel in `channels` (ARKit name -> the face's
    shape key) onto `obj`'s shape keys as the line `line`, each scaled by its group's gain and
    clipped to [0, 1], replacing that line. The shape keys themselves are not changed; their values
    come back on Remove. `similarity` maps the template to the face, for the head motion."""
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
    record = _record(obj)
    part, first, begin = _audible_part(animation, fps, start, audible, line)
    values = scale_weights(weights[first:first + part.n_frames], gains)  # (N, 52) in [0, 1]
    model_frames = model_frame_positions(part.n_frames, part.fps, fps, begin)
    head = _head_motion(obj, record, part, similarity, fps, begin, head_amplitude, head_bone) if head_motion else None

    _drop_line(obj, record, line)
    for name in channels.values():  # the user's values, back when no ARKit line drives the key
        record["key_values"].setdefault(name, key.key_blocks[name].value)
    curves = [(f'key_blocks["{_escape(name)}"].value', 0, model_frames, values[:, ARKIT_INDEX[channel]])
              for channel, name in channels.items()]
    entry = {"kind": "ARKIT", "compact": False, "shape_keys": [], "channels": dict(channels),
             "key_action": _new_action(key, f"{TRACK_NAME} {line} ARKit {obj.name}", curves)}
    return _finish_line(obj, record, line, entry, head, part, scene, fps, start, begin, audible, set_frame_range, len(curves))


def rest_vertices(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) the mesh's rest shape in its own coordinates: its Basis shape key, else its vertices."""
    mesh = obj.data
    basis = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    if mesh.shape_keys is not None:
        mesh.shape_keys.reference_key.data.foreach_get("co", basis)
    else:
        mesh.vertices.foreach_get("co", basis)
    return basis.reshape(-1, 3)


def move_lines(obj: bpy.types.Object, placements: dict[str, tuple[float, float, float]]) -> list[str]:
    """Move lines whose sound strip moved or was trimmed: line -> (the scene frame where its
    sound's content starts now, first and last audible frame). Returns the lines that moved.
    A line plays the part of its written animation that is audible now; a longer audible part
    than was animated needs Animate again."""
    record = take_record(obj)
    moved = []
    for line, (content_start, first, last) in placements.items():
        entry = record.get("lines", {}).get(line)
        if entry is None:
            continue
        place = [float(content_start), float(first), float(last)]
        if [entry["content_start"], *entry["audible"]] != place:
            entry["content_start"], entry["audible"] = place[0], place[1:]
            moved.append(line)
    if moved:
        _layout(obj, record)
        obj[TAKE_PROPERTY] = json.dumps(record)
        obj.data.update()
    return moved


def remove_take(obj: bpy.types.Object, line: str | None = None) -> bool:
    """Remove this add-on's line `line` from `obj` (None: every line): its shape keys, actions and
    NLA strips; when no line is left, the head motion too (the object's transform goes back to its
    rest) and the ARKit keys' own values. Returns False if there was no such line."""
    record = take_record(obj)
    if record and "lines" not in record:  # a take written by a version before lines existed
        return _remove_older_take(obj, record)
    if not has_take(obj, line):
        return False
    for name in [line] if line is not None else list(record["lines"]):
        _drop_line(obj, record, name)
    _layout(obj, record)
    if record["lines"]:
        _store(obj, record)
        return True
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is not None and record.get("created_basis") and len(key.key_blocks) == 1:
        obj.shape_key_clear()  # the mesh had no shape keys before the first take
    _restore_rest(obj, record["rest"])
    del obj[TAKE_PROPERTY]
    obj.data.update()
    return True


def _remove_older_take(obj: bpy.types.Object, take: dict) -> bool:
    """Remove a take in the format of versions before lines (one take per object: "shape_keys",
    "key_action"/"key_track", "object_action"/"object_track"), so that old files can be cleaned
    and animated again. Only our tagged actions and the keys the take lists are removed."""
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is not None:
        _remove_older_action(key, take.get("key_action"), take.get("key_track"))
        ours = set(take.get("shape_keys", []))
        if take.get("created_basis") and len(key.key_blocks) == len(ours) + 1 and all(block.name in ours for block in key.key_blocks[1:]):
            obj.shape_key_clear()  # the mesh had no shape keys before that take
        else:
            for name in take.get("shape_keys", []):
                block = key.key_blocks.get(name)
                if block is not None:
                    obj.shape_key_remove(block)
    _remove_older_action(obj, take.get("object_action"), take.get("object_track"))
    _restore_rest(obj, take["rest"])
    del obj[TAKE_PROPERTY]
    obj.data.update()
    return True


def _remove_older_action(owner: bpy.types.ID, action_name: str | None, track_name: str | None) -> None:
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


# ---------------------------------------------------------------------------------------------
# Lines: the record, the audible part, and where each line plays.


def _record(obj: bpy.types.Object) -> dict:
    record = take_record(obj)
    if record and "lines" not in record:
        raise MeshError(f"'{obj.name}' has a take from an older version of Talking Head: press Remove Animation first, then Animate")
    return record or {"rest": _rest_of(obj), "created_basis": False, "key_values": {}, "bones": {}, "armatures": [],
                      "lines": {}}


def _audible_part(animation: Animation, fps: float, start: float, audible, line: str):
    """(the model frames to write, the first one's index, the scene frame it plays at): those
    covering the audible frames [first, last] (None: all), one model frame either side of them."""
    if audible is None:
        return animation, 0, float(start)
    step = fps / animation.fps
    first = max(int(np.floor((audible[0] - start) / step + 1e-6)), 0)
    last = min(int(np.ceil((audible[1] - start) / step - 1e-6)), animation.n_frames - 1)
    if last < first:
        raise AudioError(f"nothing of sound strip '{line}' is audible: check its trims in the Video Sequencer")
    if (first, last) == (0, animation.n_frames - 1):
        return animation, 0, float(start)
    cut = slice(first, last + 1)
    return animation.frames(cut), first, float(start + first * step)


def _finish_line(obj, record: dict, line: str, entry: dict, head, part: Animation, scene, fps: float, start: float,
                 begin: float, audible, set_frame_range: bool, count: int) -> TakeInfo:
    """Write the line's head motion (on the object or the bone), its place in time, the NLA
    strips of every line, the frame range (when asked) and the record."""
    entry["head"] = None
    if head is not None:
        owner, curves, bone_rest = head
        entry["head_action"] = _new_action(owner, f"{TRACK_NAME} {line} head {obj.name}", curves)
        entry["head"] = "OBJECT" if bone_rest is None else owner.name
        if bone_rest is not None:
            entry["bone"] = f"{owner.name}:{bone_rest['bone']}"
            record["bones"].setdefault(entry["bone"], {"armature": owner.name, **bone_rest})
            if owner.name not in record["armatures"]:
                record["armatures"].append(owner.name)
    keyed = [begin, begin + (part.n_frames - 1) * fps / part.fps]
    entry.update(sound=line, written_start=float(start), content_start=float(start), keyed=keyed,
                 audible=[float(audible[0]), float(audible[1])] if audible is not None else list(keyed))
    record["lines"][line] = entry
    record["kind"] = entry["kind"]
    _layout(obj, record)
    span = entry["span"]
    if set_frame_range:
        scene.frame_start, scene.frame_end = record["frame_start"], record["frame_end"]
    _store(obj, record)
    return TakeInfo(count, _whole(span[0], up=True), _whole(span[1]), entry["compact"], head is not None, entry["kind"], line)


def _store(obj, record: dict) -> None:
    obj[TAKE_PROPERTY] = json.dumps(record)
    obj.data.update()


def _whole(frame: float, up: bool = False) -> int:
    return int(np.ceil(frame - 1e-6)) if up else int(np.floor(frame + 1e-6))


def _drop_line(obj, record: dict, line: str) -> None:
    """Delete a line's shape keys and actions (its strips go with the next `_layout`)."""
    entry = record["lines"].pop(line, None)
    if entry is None:
        return
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is not None:
        for name in entry.get("shape_keys", []):
            block = key.key_blocks.get(name)
            if block is not None:
                obj.shape_key_remove(block)
    for name in (entry.get("key_action"), entry.get("head_action")):
        action = bpy.data.actions.get(name) if name else None
        if action is not None and action.get(ACTION_TAG):  # a user's action of the same name: never
            bpy.data.actions.remove(action)


def _layout(obj, record: dict) -> None:
    """Where every line plays, and the NLA strips that play it: on each datablock, one strip per
    line on the "Talking Head" track, from the line's audible start until its end or the next
    line's start (the later line wins), and a rest strip below. Channels no line drives any more
    get their own values back (object rest, bone rest, the ARKit keys' values)."""
    lines = record["lines"]
    for entry in lines.values():
        shift = entry["content_start"] - entry["written_start"]  # the sound strip moved by this
        entry["span"] = [max(entry["audible"][0], entry["keyed"][0] + shift), min(entry["audible"][1], entry["keyed"][1] + shift)]
    order = sorted(lines, key=lambda name: (lines[name]["span"][0], name))
    for index, name in enumerate(order):
        first, last = lines[name]["span"]
        if index + 1 < len(order):
            last = min(last, lines[order[index + 1]]["span"][0])
        lines[name]["visible"] = [first, last] if last > first else None
    spans = [entry["span"] for entry in lines.values()]
    if spans:
        record["frame_start"] = _whole(min(s[0] for s in spans), up=True)
        record["frame_end"] = _whole(max(s[1] for s in spans))

    def strips(kind: str, owner: str | None = None) -> list:
        return [(name, entry[kind], entry["visible"], entry["content_start"] - entry["written_start"])
                for name, entry in lines.items()
                if entry.get(kind) and entry["visible"] is not None and (owner is None or entry["head"] == owner)]

    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is not None:
        arkit_keys = {name for entry in lines.values() for name in entry.get("channels", {}).values()}
        for name in [n for n in record["key_values"] if n not in arkit_keys]:
            block = key.key_blocks.get(name)
            if block is not None:
                block.value = record["key_values"][name]  # the user's value back
            del record["key_values"][name]
        # The NLA sets a key it animates to its default (1 for a shape key) where no strip plays: held at 0.
        values = {name: 0.0 for entry in lines.values() for name in entry.get("shape_keys", [])}
        values.update(record["key_values"])
        rest = [(f'key_blocks["{_escape(name)}"].value', 0, value) for name, value in values.items() if name in key.key_blocks]
        _place(key, strips("key_action"), rest)
    on_object = strips("head_action", "OBJECT")
    rest_object = record["rest"]
    _place(obj, on_object, _rest_curves("", rest_object) if on_object else [])
    if not on_object:
        _restore_rest(obj, rest_object)
    used_bones = {entry.get("bone") for entry in lines.values() if entry.get("bone")}
    for name in list(record["armatures"]):
        armature = bpy.data.objects.get(name)
        bones = {k: v for k, v in record["bones"].items() if v["armature"] == name}
        if armature is None or armature.type != "ARMATURE":
            continue
        for bone_key, bone in bones.items():
            if bone_key not in used_bones:
                _restore_bone(armature, bone)
                del record["bones"][bone_key]
        rest = [curve for k, bone in record["bones"].items() if bone["armature"] == name
                for curve in _rest_curves(f'pose.bones["{_escape(bone["bone"])}"].', bone["rest"])]
        on_armature = strips("head_action", name)
        _place(armature, on_armature, rest if on_armature else [])
        if not on_armature:
            record["armatures"].remove(name)


def _place(owner: bpy.types.ID, strips: list, rest: list) -> None:
    """Rebuild the add-on's tracks on `owner`: "Talking Head rest" (one strip holding `rest`
    [(path, index, value)]) under "Talking Head" (one strip per line: (line, action, visible
    frames, shift of its sound strip)). The user's tracks and active action are left alone."""
    data = owner.animation_data
    if data is not None:
        for track in list(data.nla_tracks):
            if track.name.startswith(TRACK_NAME) and all(s.action is None or s.action.get(ACTION_TAG) for s in track.strips):
                rests = [s.action for s in track.strips if s.action is not None and s.action.get(REST_TAG)]
                data.nla_tracks.remove(track)
                for action in rests:
                    bpy.data.actions.remove(action)
    if strips:
        data = owner.animation_data or owner.animation_data_create()
        first = min(visible[0] for _, _, visible, _ in strips)
        last = max(visible[1] for _, _, visible, _ in strips)
        if rest:
            frames = np.array([np.floor(first), max(np.ceil(last), np.floor(first) + 1)])
            curves = [(path, index, frames, np.full(2, value)) for path, index, value in rest]
            action = bpy.data.actions[_new_action(owner, f"{TRACK_NAME} rest {owner.name}", curves)]
            action[REST_TAG] = True
            track = data.nla_tracks.new()
            track.name = REST_TRACK_NAME
            _new_strip(track, "Rest", action, owner).extrapolation = "HOLD"
        track = data.nla_tracks.new()
        track.name = TRACK_NAME
        for line, name, (first, last), shift in sorted(strips, key=lambda s: s[2][0]):
            action = bpy.data.actions[name]
            strip = _new_strip(track, line, action, owner, int(np.ceil(first)))
            strip.extrapolation = "NOTHING"
            strip.action_frame_end = last - shift
            strip.action_frame_start = first - shift
            strip.frame_start_ui = first
    if data is not None and data.action is None and not data.nla_tracks and not data.drivers:
        owner.animation_data_clear()


def _new_strip(track, name: str, action, owner, frame: int | None = None):
    strip = track.strips.new(name, int(action.frame_start) if frame is None else frame, action)
    slot = action.slots[0] if hasattr(action, "slots") and len(action.slots) else None
    if slot is not None and getattr(strip, "action_slot", None) != slot:
        strip.action_slot = slot
    return strip


def _rest_curves(prefix: str, rest: dict) -> list:
    """(path, index, value) of a rest transform's location and rotation (in its rotation mode)."""
    mode = rest["rotation_mode"]
    rotation = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")
    return [(prefix + "location", i, v) for i, v in enumerate(rest["location"])] + \
        [(prefix + rotation, i, v) for i, v in enumerate(rest[rotation])]


def _restore_bone(armature, bone: dict) -> None:
    pose_bone = armature.pose.bones.get(bone["bone"])
    if pose_bone is not None:
        pose_bone.rotation_mode = bone["rest"]["rotation_mode"]
        for name in BONE_CHANNELS:
            if name != "rotation_mode":
                setattr(pose_bone, name, bone["rest"][name])


def _head_motion(obj, record: dict, animation: Animation, similarity: Similarity, fps, start, amplitude, bone: HeadBone | None):
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
    rest = record["rest"]
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
    previous = record["bones"].get(f"{armature.name}:{bone.bone}")
    if previous:
        rest_bone = {"bone": bone.bone, "rest": previous["rest"]}  # the pose bone now shows the previous take
    else:
        rest_bone = {"bone": bone.bone, "rest": {
            name: (getattr(pose_bone, name) if name == "rotation_mode" else list(getattr(pose_bone, name))) for name in BONE_CHANNELS
        }}
    face = np.array(obj.matrix_world, dtype=np.float64)
    if record["lines"] or obj.animation_data is not None:  # the face's rest, not where a take has it now
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


def _new_action(owner: bpy.types.ID, name: str, curves: list) -> str:
    """One action for `owner` with `curves` [(data_path, index, frames, values)], all linear, tagged
    as ours; the NLA strips that play it are made by `_layout`. Returns its name."""
    action = bpy.data.actions.new(name)
    action[ACTION_TAG] = True
    first = min(float(frames[0]) for _, _, frames, _ in curves)
    last = max(float(frames[-1]) for _, _, frames, _ in curves)
    # A manual range on whole frames keeps an NLA strip's time mapping exact.
    action.use_frame_range = True
    action.frame_start, action.frame_end = float(np.floor(first)), float(max(np.ceil(last), np.floor(first) + 1))
    fcurves, _ = _fcurve_collection(action, owner)
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    for path, index, frames, values in curves:
        curve = fcurves.new(path, index=index)
        points = np.empty((len(frames), 2), dtype=np.float32)
        points[:, 0], points[:, 1] = frames, values
        curve.keyframe_points.add(len(frames))
        curve.keyframe_points.foreach_set("co", points.ravel())
        curve.keyframe_points.foreach_set("interpolation", [linear] * len(frames))
        curve.update()
    return action.name


def _fcurve_collection(action: bpy.types.Action, owner: bpy.types.ID):
    """The F-curve collection to fill: a channelbag for `owner`'s slot (Blender 4.4+ layered
    actions), or the action's own list (Blender 4.2, 4.3)."""
    if not hasattr(action, "slots"):
        return action.fcurves, None
    slot = action.slots.new(id_type=owner.id_type, name=owner.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    return strip.channelbags.new(slot).fcurves, slot


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
