"""Operators for a user's character: landmarks, Add ARKit Shape Keys, the channel mapping."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..blender import character, session
from ..core.face_rig import BIWI_LANDMARKS


def _target(context):
    return context.scene.talking_head.target


def _has_mesh(context) -> bool:
    target = _target(context)
    return target is not None and target.type == "MESH"


class TALKINGHEAD_OT_set_landmark(bpy.types.Operator):
    """Use the one selected vertex (Edit Mode) as this landmark"""

    bl_idname = "talking_head.set_landmark"
    bl_label = "Set"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(options={"HIDDEN"})

    @classmethod
    def poll(cls, context) -> bool:
        return _has_mesh(context)

    def execute(self, context):
        try:
            index = character.landmark_from_selection(_target(context), self.name)
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Talking Head: {self.name} is vertex {index}")
        return {"FINISHED"}


class TALKINGHEAD_OT_biwi_landmarks(bpy.types.Operator):
    """Set the landmarks of BIWI's topology (23,370 vertices)"""

    bl_idname = "talking_head.biwi_landmarks"
    bl_label = "BIWI"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        return _has_mesh(context)

    def execute(self, context):
        try:
            character.set_landmarks(_target(context), BIWI_LANDMARKS)
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class TALKINGHEAD_OT_add_arkit_keys(bpy.types.Operator):
    """Add the 52 ARKit shape keys the face lacks, built from its landmarks (keys already there stay)"""

    bl_idname = "talking_head.add_arkit_keys"
    bl_label = "Add ARKit Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        return _has_mesh(context) and _target(context).mode != "EDIT"

    def execute(self, context):
        try:
            added = character.add_arkit_shape_keys(_target(context))
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Talking Head: added {len(added)} ARKit shape keys")
        return {"FINISHED"}


class TALKINGHEAD_OT_channel_add(bpy.types.Operator):
    """Map an ARKit channel to a shape key of the face"""

    bl_idname = "talking_head.channel_add"
    bl_label = "Add Channel Mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        return _has_mesh(context)

    def execute(self, context):
        props = _target(context).data.talking_head
        props.channels.add()
        props.channel_index = len(props.channels) - 1
        return {"FINISHED"}


class TALKINGHEAD_OT_channel_remove(bpy.types.Operator):
    """Remove the chosen channel mapping"""

    bl_idname = "talking_head.channel_remove"
    bl_label = "Remove Channel Mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        return _has_mesh(context) and len(_target(context).data.talking_head.channels) > 0

    def execute(self, context):
        props = _target(context).data.talking_head
        props.channels.remove(min(props.channel_index, len(props.channels) - 1))
        props.channel_index = max(0, min(props.channel_index, len(props.channels) - 1))
        return {"FINISHED"}


CLASSES = (
    TALKINGHEAD_OT_set_landmark,
    TALKINGHEAD_OT_biwi_landmarks,
    TALKINGHEAD_OT_add_arkit_keys,
    TALKINGHEAD_OT_channel_add,
    TALKINGHEAD_OT_channel_remove,
)
