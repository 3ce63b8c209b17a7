"""Personal styles: tune one from clips in the scene, list style files, pick the clips."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..blender import session, styles, tuning
from .animate import WorkerOperator, _settings


class TALKINGHEAD_OT_tune_style(WorkerOperator, bpy.types.Operator):
    """Tune a speaking style from the clips (sound strips and the faces animated to them); Esc cancels"""

    bl_idname = "talking_head.tune_style"
    bl_label = "Tune Style from Clips"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context):
        return tuning.tune(context.scene, _settings(context))

    def prepare(self, context):
        return tuning.prepare(context.scene, _settings(context))

    def start(self, request):
        return tuning.start(request)

    def apply(self, context, request, result):
        return tuning.apply(_settings(context), result)

    def summary(self, path: Path) -> str:
        return f"Talking Head: style saved as {path} and chosen"


class TALKINGHEAD_OT_tuning_clip_add(bpy.types.Operator):
    """Add a clip: a sound strip and the face animated to it"""

    bl_idname = "talking_head.tuning_clip_add"
    bl_label = "Add Clip"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = _settings(context)
        clip = settings.tuning_clips.add()
        strips = session.sound_strips(context.scene)
        used = {c.strip for c in settings.tuning_clips}
        clip.strip = next((s.name for s in strips if s.name not in used), "")
        obj = context.active_object
        clip.mesh = obj if obj is not None and obj.type == "MESH" else None
        settings.tuning_clip_index = len(settings.tuning_clips) - 1
        return {"FINISHED"}


class TALKINGHEAD_OT_tuning_clip_remove(bpy.types.Operator):
    """Remove the selected clip from the list (the strip and the face stay in the scene)"""

    bl_idname = "talking_head.tuning_clip_remove"
    bl_label = "Remove Clip"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        return len(_settings(context).tuning_clips) > 0

    def execute(self, context):
        settings = _settings(context)
        index = min(settings.tuning_clip_index, len(settings.tuning_clips) - 1)
        settings.tuning_clips.remove(index)
        settings.tuning_clip_index = max(0, index - 1)
        return {"FINISHED"}


class TALKINGHEAD_OT_add_style_file(bpy.types.Operator):
    """List a style file (.json from `talking-head tune` or Tune Style) in the Style chooser"""

    bl_idname = "talking_head.add_style_file"
    bl_label = "Add Style File..."
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = _settings(context)
        try:
            identifier = styles.add_style_file(settings, self.filepath)
            settings.subject = identifier
        except TypeError:  # listed, but it does not fit the chosen model bundle
            self.report({"WARNING"}, "Talking Head: this style was tuned for another model bundle; it is listed for that bundle")
            return {"FINISHED"}
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class TALKINGHEAD_OT_remove_style_file(bpy.types.Operator):
    """Take the chosen style off this file's list (the style file itself is kept)"""

    bl_idname = "talking_head.remove_style_file"
    bl_label = "Remove Style from List"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        settings = _settings(context)
        return styles.in_scene_list(settings, settings.subject)

    def execute(self, context):
        settings = _settings(context)
        if styles.remove_style_file(settings, settings.subject):
            items = styles.choice_items(settings)
            if items:
                settings.subject = items[0][0]
        return {"FINISHED"}


CLASSES = (
    TALKINGHEAD_OT_tune_style,
    TALKINGHEAD_OT_tuning_clip_add,
    TALKINGHEAD_OT_tuning_clip_remove,
    TALKINGHEAD_OT_add_style_file,
    TALKINGHEAD_OT_remove_style_file,
)
