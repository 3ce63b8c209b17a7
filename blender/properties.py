"""Every setting of the add-on, in one place: the scene's `talking_head` settings and the
add-on preferences."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .dependencies import ROOT_PACKAGE

# Enum items must stay referenced while Blender shows them.
_subject_items: list[tuple[str, str, str]] = []


def _is_mesh(self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


def _subjects(self, context) -> list[tuple[str, str, str]]:
    from .bundle_info import read_bundle_info
    from .session import bundle_path

    _subject_items.clear()
    try:
        subjects = read_bundle_info(bundle_path(self)).subjects
    except Exception:  # no bundle chosen yet: offer nothing rather than fail while drawing
        subjects = []
    _subject_items.extend((name, name, f"Speak in the style of {name}") for name in subjects)
    return _subject_items or [("", "(no bundle)", "Choose a model bundle first")]


class TalkingHeadSettings(bpy.types.PropertyGroup):
    target: PointerProperty(name="Face", type=bpy.types.Object, poll=_is_mesh, description="Mesh to animate (the template's topology)")
    strip: StringProperty(name="Sound", description="Sound strip of the Video Sequencer to animate to")
    bundle_source: EnumProperty(
        name="Model",
        items=[("DEMO", "Bundled demo", "The model shipped with the extension"), ("FOLDER", "Folder", "A model bundle folder")],
        default="DEMO",
    )
    bundle_folder: StringProperty(name="Bundle", subtype="DIR_PATH", description="Model bundle folder (config.json, model.safetensors, template.ply)")
    subject: EnumProperty(name="Style", items=_subjects, description="Speaking style: a subject the model was trained on")
    head_motion: BoolProperty(name="Head motion", default=True, description="Turn and move the head with the speech")
    head_amplitude: FloatProperty(name="Amplitude", default=1.0, min=0.0, soft_max=2.0, max=5.0, description="Scale of head turns and moves")
    seed: IntProperty(name="Seed", default=0, min=0, description="Head-motion variation: same seed, same motion")
    device: EnumProperty(
        name="Device",
        items=[("auto", "Auto", "GPU when present"), ("cpu", "CPU", "Processor"), ("cuda", "GPU (CUDA)", "NVIDIA GPU")],
        default="auto",
    )
    compact: BoolProperty(
        name="Compact", default=False, description="A few PCA shape keys with one weight curve each instead of one key per frame"
    )
    # Set while a run is in progress (shown by the panel).
    running: BoolProperty(default=False, options={"SKIP_SAVE"})
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    status: StringProperty(default="", options={"SKIP_SAVE"})


class TalkingHeadPreferences(bpy.types.AddonPreferences):
    bl_idname = ROOT_PACKAGE

    python_path: StringProperty(
        name="Python with torch",
        subtype="FILE_PATH",
        description="Optional: the python executable of an environment that has torch; the model runs there",
    )

    def draw(self, context) -> None:
        from . import dependencies

        layout = self.layout
        ready, message = dependencies.status(self.python_path)
        box = layout.box()
        box.label(text=message if ready else "PyTorch not found", icon="CHECKMARK" if ready else "ERROR")
        row = layout.row()
        row.operator("talking_head.install_dependencies", icon="IMPORT")
        layout.prop(self, "python_path")


def preferences() -> TalkingHeadPreferences | None:
    addon = bpy.context.preferences.addons.get(ROOT_PACKAGE)
    return addon.preferences if addon is not None else None


def python_path() -> str:
    prefs = preferences()
    return bpy.path.abspath(prefs.python_path) if prefs is not None and prefs.python_path else ""


CLASSES = (TalkingHeadSettings, TalkingHeadPreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.talking_head = PointerProperty(type=TalkingHeadSettings)


def unregister() -> None:
    del bpy.types.Scene.talking_head
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
