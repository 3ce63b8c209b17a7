"""A user's character in Blender: its landmarks (`Mesh.talking_head.landmarks`), its ARKit shape
keys (found by name, or mapped in `Mesh.talking_head.channels`, or built by Add ARKit Shape Keys),
and where its face is relative to the model's template (core/character.py does the math)."""

from __future__ import annotations

import bpy
import numpy as np

from ..core.arkit import ARKIT_NAMES, arkit_shapes
from ..core.character import (
    LandmarkError,
    Similarity,
    bounds_fit,
    builtin_landmarks,
    check_landmarks,
    landmark_fit,
    match_arkit_channels,
    procrustes,
    SHAPE_TOLERANCE,
    template_face_landmarks,
)
from ..core.errors import MeshError
from ..core.face_rig import LANDMARK_NAMES
from ..core.geometry import Y_UP_TO_Z_UP
from .writer import rest_vertices


class ArkitKeysError(MeshError):
    """Add ARKit Shape Keys cannot run on this mesh."""


def _mesh_object(obj) -> bpy.types.Object:
    if obj is None or obj.type != "MESH":
        raise MeshError("choose a mesh object (the character's face)")
    return obj


def triangles(mesh: bpy.types.Mesh) -> np.ndarray:
    """(F, 3) vertex indices of the mesh's triangles (its polygons, triangulated)."""
    mesh.calc_loop_triangles()
    tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    return tris.reshape(-1, 3)


def stored_landmarks(obj: bpy.types.Object) -> dict[str, int]:
    """The landmarks set on the mesh (unset ones left out)."""
    marks = _mesh_object(obj).data.talking_head.landmarks
    return {name: int(getattr(marks, name)) for name in LANDMARK_NAMES if getattr(marks, name) >= 0}


def set_landmarks(obj: bpy.types.Object, landmarks: dict[str, int]) -> None:
    """Store landmarks on the mesh (checked first: nothing is stored when they are bad)."""
    landmarks = check_landmarks(rest_vertices(_mesh_object(obj)), landmarks)
    marks = obj.data.talking_head.landmarks
    for name in LANDMARK_NAMES:
        setattr(marks, name, landmarks[name])


def landmarks_of(obj: bpy.types.Object, required: bool = True) -> dict[str, int] | None:
    """The mesh's landmarks, checked: those set on it, else BIWI's for a BIWI-topology mesh. When
    none are set and none are built in: LandmarkError if `required`, else None."""
    rest = rest_vertices(_mesh_object(obj))
    stored = stored_landmarks(obj)
    if stored:
        return check_landmarks(rest, stored)
    builtin = builtin_landmarks(rest)
    if builtin is None and required:
        raise LandmarkError(f"'{obj.name}' has no landmarks: set each one (select a vertex in Edit Mode, press Set)")
    return builtin


def landmark_from_selection(obj: bpy.types.Object, name: str) -> int:
    """Set landmark `name` to the one selected vertex (Edit Mode or not); returns its index."""
    if name not in LANDMARK_NAMES:
        raise LandmarkError(f"unknown landmark '{name}'")
    obj = _mesh_object(obj)
    if obj.mode == "EDIT":
        obj.update_from_editmode()
    selected = np.zeros(len(obj.data.vertices), dtype=bool)
    obj.data.vertices.foreach_get("select", selected)
    indices = np.flatnonzero(selected)
    if len(indices) != 1:
        raise LandmarkError(f"select exactly one vertex for {name} in Edit Mode ({len(indices)} selected)")
    setattr(obj.data.talking_head.landmarks, name, int(indices[0]))
    return int(indices[0])


def arkit_channels(obj: bpy.types.Object) -> dict[str, str]:
    """ARKit channel -> shape key of the mesh, by name and by the mesh's channel mapping."""
    obj = _mesh_object(obj)
    key = obj.data.shape_keys
    names = [block.name for block in key.key_blocks[1:]] if key is not None else []
    mapping = {row.channel: row.shape_key for row in obj.data.talking_head.channels}
    return match_arkit_channels(names, mapping)


def add_arkit_shape_keys(obj: bpy.types.Object, landmarks: dict[str, int] | None = None) -> list[str]:
    """Add the ARKit shape keys the mesh lacks (all 52 on a mesh without any), built by the face rig
    from its landmarks in the mesh's own coordinates; keys already there are never changed.
    Returns the names added; raises LandmarkError / ArkitKeysError with nothing changed."""
    obj = _mesh_object(obj)
    rest = rest_vertices(obj)
    landmarks = check_landmarks(rest, landmarks) if landmarks is not None else landmarks_of(obj)
    have = arkit_channels(obj)
    missing = [name for name in ARKIT_NAMES if name not in have]
    if not missing:
        raise ArkitKeysError(f"'{obj.name}' already has all 52 ARKit shape keys")
    shapes = arkit_shapes(rest, triangles(obj.data), landmarks)  # (52, V, 3), the mesh's units and axes
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    reference = obj.data.shape_keys.reference_key
    index = {name: i for i, name in enumerate(ARKIT_NAMES)}
    added = []
    for name in missing:
        block = obj.shape_key_add(name=name, from_mix=False)
        block.relative_key = reference
        block.data.foreach_set("co", (rest + shapes[index[name]]).astype(np.float32).ravel())
        block.value = 0.0
        added.append(block.name)
    obj.data.update()
    return added


def template_to_mesh(obj: bpy.types.Object, template: np.ndarray) -> Similarity:
    """Where the face is, relative to the template: Procrustes for a mesh of the template's
    topology and shape; else the landmarks' face frames (when both have landmarks); else the
    template turned Y-up -> Z-up and scaled to the mesh's bounds (a guess)."""
    rest = rest_vertices(_mesh_object(obj))
    template = np.asarray(template, np.float64)
    if len(rest) == len(template):
        fit, residual = procrustes(template, rest)
        if residual <= SHAPE_TOLERANCE:
            return fit
    marks = landmarks_of(obj, required=False)
    template_marks = template_face_landmarks(template) if marks else None
    if marks and template_marks:
        return landmark_fit(template, template_marks, rest, marks)
    return bounds_fit(template, rest, Y_UP_TO_Z_UP)
