"""Export operators: a file name in, one call to blender/export.py out."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..blender import export, session


class TALKINGHEAD_OT_export(bpy.types.Operator, ExportHelper):
    """Bake and export the animated face over its animated frames"""

    bl_idname = "talking_head.export"
    bl_label = "Export Animation"
    bl_options = {"REGISTER"}

    format: EnumProperty(
        name="Format",
        items=[("FBX", "FBX", "Shape-key and object animation"), ("ABC", "Alembic", "Vertex positions per frame")],
        default="FBX",
    )
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx;*.abc", options={"HIDDEN"})

    @classmethod
    def poll(cls, context) -> bool:
        target = context.scene.talking_head.target
        return target is not None and target.type == "MESH"

    def invoke(self, context, event):
        self.filename_ext = ".fbx" if self.format == "FBX" else ".abc"
        return ExportHelper.invoke(self, context, event)

    def execute(self, context):
        target = context.scene.talking_head.target
        try:
            if self.format == "FBX":
                path = export.export_fbx(target, self.filepath, context.scene)
            else:
                path = export.export_alembic(target, self.filepath, context.scene)
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Talking Head: exported {path.name}")
        return {"FINISHED"}


CLASSES = (TALKINGHEAD_OT_export,)
