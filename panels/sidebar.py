"""The sidebar panel: 3D Viewport > N panel > Talking Head."""

from __future__ import annotations

import bpy

from ..blender import dependencies, session, writer
from ..core.bundle_info import demo_available

STYLE_HINT = "Style: how the face speaks: a person the model was trained on, or a style tuned from clips."
TUNING_HINT = (
    "Tuning needs the person's face captured in the model's topology (3D scans, or a take of this "
    "add-on), not just their audio."
)


class TALKINGHEAD_PT_main(bpy.types.Panel):
    bl_label = "Talking Head"
    bl_idname = "TALKINGHEAD_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"

    def draw(self, context) -> None:
        from ..blender.choices import python_path

        layout = self.layout
        settings = context.scene.talking_head
        ready, message = dependencies.status(python_path())
        if not ready:
            box = layout.box()
            box.label(text="PyTorch is not installed", icon="ERROR")
            for line in _wrap("Edit > Preferences > Add-ons > Talking Head: 'Install dependencies', or set 'Python with torch'."):
                box.label(text=line)

        col = layout.column(align=True)
        col.prop(settings, "target")
        target = settings.target
        col.operator("talking_head.add_template_head", icon="USER")
        if target is not None and target.type == "MESH":
            try:
                from ..core.bundle_info import read_bundle_info

                info = read_bundle_info(session.bundle_path(settings))
                plan = session.plan_take(settings, info)
                if plan.kind == "ARKIT":
                    col.label(text=f"ARKit curves: {len(plan.channels)} channels", icon="SHAPEKEY_DATA")
            except Exception as exc:
                for index, line in enumerate(_wrap(session.report_message(exc, console=False))):
                    col.label(text=line, icon="ERROR" if index == 0 else "BLANK1")

        col = layout.column(align=True)
        editor = context.scene.sequence_editor
        if editor is not None:
            col.prop_search(settings, "strip", editor, "strips_all" if hasattr(editor, "strips_all") else "sequences_all", icon="SOUND")
        col.operator("talking_head.load_audio", icon="FILE_SOUND")

        col = layout.column(align=True)
        col.prop(settings, "bundle_source")
        if settings.bundle_source == "FOLDER":
            col.prop(settings, "bundle_folder", text="")
        elif not demo_available():
            col.label(text="No demo model in this build: choose a folder", icon="INFO")
        for line in _wrap(STYLE_HINT):
            col.label(text=line)
        col.prop(settings, "subject")
        row = col.row(align=True)
        row.operator("talking_head.add_style_file", icon="FILEBROWSER")
        row.operator("talking_head.remove_style_file", text="", icon="X")
        col.prop(settings, "blend_styles")
        if settings.blend_styles:
            col.prop(settings, "second_style")
            col.prop(settings, "style_weight", slider=True)

        col = layout.column(align=True)
        col.prop(settings, "head_motion")
        sub = col.row(align=True)
        sub.active = settings.head_motion
        sub.prop(settings, "head_amplitude")
        sub = col.row(align=True)
        sub.active = settings.head_motion
        sub.prop(settings, "head_armature", text="Bone", icon="ARMATURE_DATA")
        if settings.head_armature is not None:
            sub.prop_search(settings, "head_bone", settings.head_armature.data, "bones", text="")
        col.prop(settings, "blinks")
        col.prop(settings, "rest_in_pauses")
        col.prop(settings, "transcript", icon="TEXT")
        sub = col.row(align=True)
        sub.active = not settings.transcript.strip()
        sub.prop(settings, "recognise")
        sub = col.row(align=True)
        sub.active = not settings.transcript.strip() and not settings.recognise
        sub.prop(settings, "phone_loop")
        row = col.row(align=True)
        row.prop(settings, "seed")
        row.operator("talking_head.new_variation", text="", icon="FILE_REFRESH")
        col.prop(settings, "device")
        col.prop(settings, "take")
        if settings.take != "ARKIT":
            col.prop(settings, "per_frame")
        col.prop(settings, "set_frame_range")

        if settings.running:
            layout.progress(factor=settings.progress, text=f"{settings.status} (Esc cancels)")
        else:
            row = layout.row()
            row.scale_y = 1.5
            row.enabled = ready
            row.operator("talking_head.animate", icon="PLAY")
        if writer.has_take(target):
            lines = writer.lines_of(target)
            col = layout.column(align=True)
            col.label(text=f"Lines: {', '.join(lines)}", icon="NLA")
            col.operator("talking_head.sync_to_sound", icon="UV_SYNC_SELECT")
            row = col.row(align=True)
            if settings.strip in lines:
                row.operator("talking_head.remove_take", text="Remove Line", icon="X").all = False
            row.operator("talking_head.remove_take", text="Remove All", icon="TRASH").all = True
            heard = lines.get(settings.strip, {}).get("heard")
            if heard:
                for index, line in enumerate(_wrap(f"Voice heard as: {heard}")):
                    col.label(text=line, icon="OUTLINER_OB_SPEAKER" if index == 0 else "BLANK1")


class _SubPanel:
    """Where the main panel's sub-panels live: under it in the sidebar's Talking Head tab, closed at first."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"
    bl_parent_id = "TALKINGHEAD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}


class TALKINGHEAD_UL_channels(bpy.types.UIList):
    """Channel mapping rows: an ARKit channel and the face's shape key it drives."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        row.prop(item, "channel", text="")
        mesh = data.id_data
        if mesh.shape_keys is not None:
            row.prop_search(item, "shape_key", mesh.shape_keys, "key_blocks", text="")
        else:
            row.prop(item, "shape_key", text="")


class TALKINGHEAD_PT_character(_SubPanel, bpy.types.Panel):
    bl_label = "Character"
    bl_idname = "TALKINGHEAD_PT_character"

    def draw(self, context) -> None:
        from ..core.face_rig import LANDMARK_NAMES

        layout = self.layout
        settings = context.scene.talking_head
        target = _face_mesh(layout, settings)
        if target is None:
            return
        props = target.data.talking_head
        col = layout.column(align=True)
        col.label(text="Landmarks (one vertex each, Edit Mode)")
        for name in LANDMARK_NAMES:
            row = col.row(align=True)
            row.prop(props.landmarks, name)
            row.operator("talking_head.set_landmark", text="Set").name = name
        row = layout.row(align=True)
        row.operator("talking_head.biwi_landmarks", icon="PRESET")
        row.operator("talking_head.add_arkit_keys", icon="SHAPEKEY_DATA")

        layout.label(text="Channel Mapping (other key names)")
        row = layout.row()
        row.template_list("TALKINGHEAD_UL_channels", "", props, "channels", props, "channel_index", rows=3)
        buttons = row.column(align=True)
        buttons.operator("talking_head.channel_add", text="", icon="ADD")
        buttons.operator("talking_head.channel_remove", text="", icon="REMOVE")

        col = layout.column(align=True)
        col.label(text="ARKit Gains")
        for group in ("jaw", "lips", "smile", "brows", "eyes"):
            col.prop(settings, f"gain_{group}", slider=True)


class TALKINGHEAD_UL_tuning_clips(bpy.types.UIList):
    """Clips to tune a style from: a sound strip and the face animated to it, per row."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        editor = context.scene.sequence_editor
        if editor is not None:
            row.prop_search(item, "strip", editor, "strips_all" if hasattr(editor, "strips_all") else "sequences_all", text="", icon="SOUND")
        else:
            row.label(text="No sound strips", icon="SOUND")
        row.prop(item, "mesh", text="", icon="MESH_DATA")


class TALKINGHEAD_PT_tuning(_SubPanel, bpy.types.Panel):
    bl_label = "Personal Style"
    bl_idname = "TALKINGHEAD_PT_tuning"

    def draw(self, context) -> None:
        layout = self.layout
        settings = context.scene.talking_head
        for line in _wrap("Clips of a person: each a sound strip and their face animated to it (shape keys or an Alembic cache)."):
            layout.label(text=line)
        for index, line in enumerate(_wrap(TUNING_HINT)):
            layout.label(text=line, icon="INFO" if index == 0 else "BLANK1")
        row = layout.row()
        row.template_list("TALKINGHEAD_UL_tuning_clips", "", settings, "tuning_clips", settings, "tuning_clip_index", rows=3)
        buttons = row.column(align=True)
        buttons.operator("talking_head.tuning_clip_add", text="", icon="ADD")
        buttons.operator("talking_head.tuning_clip_remove", text="", icon="REMOVE")
        col = layout.column(align=True)
        col.prop(settings, "tuning_name")
        col.prop(settings, "tuning_mode")
        col.prop(settings, "tuning_pick_subject")
        if settings.running:
            layout.progress(factor=settings.progress, text=f"{settings.status} (Esc cancels)")
        else:
            layout.operator("talking_head.tune_style", icon="FUND")


class TALKINGHEAD_PT_export(_SubPanel, bpy.types.Panel):
    bl_label = "Bake & Export"
    bl_idname = "TALKINGHEAD_PT_export"

    def draw(self, context) -> None:
        col = self.layout.column(align=True)
        col.operator("talking_head.export", text="FBX...", icon="EXPORT").format = "FBX"
        col.operator("talking_head.export", text="Alembic...", icon="EXPORT").format = "ABC"


class TALKINGHEAD_PT_emotion(_SubPanel, bpy.types.Panel):
    """The Face's emotion sliders (blender/emotion.py): animatable, sampled at each frame by Animate."""

    bl_label = "Emotion"
    bl_idname = "TALKINGHEAD_PT_emotion"

    def draw(self, context) -> None:
        from ..blender import emotion
        from ..core.emotion_direction import HEARD, PROTOTYPES

        layout = self.layout
        settings = context.scene.talking_head
        target = _face_mesh(layout, settings)
        if target is None:
            return
        try:
            info = session.chosen_bundle(settings)
        except Exception as exc:
            layout.label(text=session.report_message(exc, console=False), icon="ERROR")
            return
        if not (info.path / PROTOTYPES).is_file():
            for index, line in enumerate(_wrap("This model has no emotion prototypes: run `talking-head bundle emotions BUNDLE --speech SET`.")):
                layout.label(text=line, icon="INFO" if index == 0 else "BLANK1")
            return
        props = target.data.talking_head
        labels = emotion.slider_labels(info)
        if not emotion.sliders_match(target.data, labels):
            layout.operator("talking_head.emotion_sliders", icon="ADD")
        if HEARD in labels:  # the model hears the voice's emotion
            layout.prop(settings, "heard_expressions")
        col = layout.column(align=True)
        col.prop(props, "emotion_voice", slider=True)
        for slider in props.emotions:
            if slider.label in labels:
                col.prop(slider, "weight", text=slider.label.title(), slider=True)


def _face_mesh(layout, settings):
    """The Face when it is a mesh; else None, and the panel says to choose one."""
    target = settings.target
    if target is None or target.type != "MESH":
        layout.label(text="Choose a Face mesh first", icon="INFO")
        return None
    return target


def _wrap(text: str, width: int = 42) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


CLASSES = (TALKINGHEAD_PT_main, TALKINGHEAD_UL_channels, TALKINGHEAD_PT_character, TALKINGHEAD_UL_tuning_clips, TALKINGHEAD_PT_tuning, TALKINGHEAD_PT_emotion,
           TALKINGHEAD_PT_export)
