"""Every setting of the add-on, in one place: the scene's `talking_head` settings and the
add-on preferences."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .dependencies import ROOT_PACKAGE

# Enum items must stay referenced while Blender shows them: every list handed out is kept.
_style_items: dict[tuple, list] = {}
_NO_BUNDLE = [("", "(no bundle)", "Choose a model bundle first")]


def _is_mesh(self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


def _is_armature(self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _arkit_items() -> list:
    from ..core.arkit import ARKIT_NAMES

    return [(name, name, f"ARKit channel {name}") for name in ARKIT_NAMES]


def _styles(self, context) -> list:
    """The Style chooser: the bundle's subjects and the style files listed for it (blender/styles.py)."""
    from . import styles

    try:
        items = styles.choice_items(self)
    except Exception:  # never fail while drawing
        items = []
    if not items:
        return _NO_BUNDLE
    return _style_items.setdefault(tuple(items), items)


class TalkingHeadStyleFile(bpy.types.PropertyGroup):
    """A style file the user added or tuned in this .blend (the panel lists it)."""

    filepath: StringProperty(name="Style file", subtype="FILE_PATH")


class TalkingHeadTuningClip(bpy.types.PropertyGroup):
    """One clip to tune a style from: a sound strip and the face animated to it."""

    strip: StringProperty(name="Sound", description="Sound strip of the Video Sequencer: what the person says")
    mesh: PointerProperty(
        name="Face", type=bpy.types.Object, poll=_is_mesh,
        description="The person's face, animated over the strip by shape keys or an Alembic cache (the template's topology)",
    )


class TalkingHeadChannel(bpy.types.PropertyGroup):
    """One row of a character's channel mapping: an ARKit channel and the shape key it drives."""

    channel: EnumProperty(name="Channel", items=_arkit_items(), description="ARKit channel")
    shape_key: StringProperty(name="Shape Key", description="The mesh's shape key for this channel (empty: leave the channel out)")


def _landmark_properties() -> dict:
    from ..core.face_rig import LANDMARK_NAMES

    return {
        name: IntProperty(name=name.replace("_", " ").title(), default=-1, min=-1, description="Vertex index (-1: not set)")
        for name in LANDMARK_NAMES
    }


# One vertex index per face landmark (core/face_rig.py LANDMARK_NAMES), on the mesh.
TalkingHeadLandmarks = type("TalkingHeadLandmarks", (bpy.types.PropertyGroup,), {"__annotations__": _landmark_properties()})


class TalkingHeadEmotionSlider(bpy.types.PropertyGroup):
    """One emotion class of the bundle and how much of its prototype the face gets (animatable)."""

    label: StringProperty(name="Emotion")
    weight: FloatProperty(
        name="Weight", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
        description="How much of this emotion the face shows (key it to change it over the take)",
    )


class TalkingHeadCharacter(bpy.types.PropertyGroup):
    """What the add-on knows about a mesh (`Mesh.talking_head`): its landmarks, channel mapping and
    emotion sliders (blender/emotion.py)."""

    landmarks: PointerProperty(type=TalkingHeadLandmarks)
    emotion_voice: FloatProperty(
        name="From Voice", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
        description="How much of the emotion the voice is heard as the face keeps (1 with every emotion at 0: the voice alone)",
    )
    emotions: CollectionProperty(type=TalkingHeadEmotionSlider, description="One slider per emotion of the bundle")
    channels: CollectionProperty(type=TalkingHeadChannel, description="ARKit channel -> shape key, for other naming schemes")
    channel_index: IntProperty(default=0, min=0)


def _gain(label: str) -> FloatProperty:
    return FloatProperty(
        name=label, default=1.0, min=0.0, max=2.0, subtype="FACTOR",
        description=f"Scales the {label.lower()} channels of ARKit curves (clipped to 0-1)",
    )


class TalkingHeadSettings(bpy.types.PropertyGroup):
    target: PointerProperty(name="Face", type=bpy.types.Object, poll=_is_mesh, description="Mesh to animate (the template's topology)")
    strip: StringProperty(name="Sound", description="Sound strip of the Video Sequencer to animate to")
    bundle_source: EnumProperty(
        name="Model",
        items=[("DEMO", "Bundled demo", "The model shipped with the extension"), ("FOLDER", "Folder", "A model bundle folder")],
        default="DEMO",
    )
    bundle_folder: StringProperty(name="Bundle", subtype="DIR_PATH", description="Model bundle folder (config.json, model.safetensors, template.ply)")
    subject: EnumProperty(name="Style", items=_styles, description="Speaking style: a subject the model was trained on, or a tuned style")
    blend_styles: BoolProperty(name="Blend Styles", default=False, description="Mix this style with a second style or subject")
    second_style: EnumProperty(name="With", items=_styles, description="The second style of the blend")
    style_weight: FloatProperty(
        name="Weight", default=0.5, min=0.0, max=1.0, subtype="FACTOR",
        description="p = w p(Style) + (1 - w) p(With): 1 is the first style alone, 0 the second alone",
    )
    styles: CollectionProperty(type=TalkingHeadStyleFile, description="Style files added or tuned in this file")
    tuning_clips: CollectionProperty(type=TalkingHeadTuningClip)
    tuning_clip_index: IntProperty(default=0, min=0)
    tuning_name: StringProperty(name="Name", default="My Style", description="Name of the style to tune")
    tuning_mode: EnumProperty(
        name="Mode",
        items=[
            ("convex", "Convex", "Weights over the trained subjects' embeddings (stays within what the model knows)"),
            ("direct", "Direct", "The embedding itself, freely (for comparison)"),
        ],
        default="convex",
    )
    tuning_pick_subject: BoolProperty(
        name="Pick speaking style from clips", default=True,
        description="Let the clips choose the training subject whose speaking style the person uses; off: the chosen Style's",
    )
    head_motion: BoolProperty(name="Head motion", default=True, description="Turn and move the head with the speech")
    head_amplitude: FloatProperty(name="Amplitude", default=1.0, min=0.0, soft_max=2.0, max=5.0, description="Scale of head turns and moves")
    blinks: BoolProperty(
        name="Blinks and gaze", default=True,
        description="Add blinks (more at pauses) and small eye movements, seeded by Seed; needs a face with landmarks",
    )
    heard_expressions: BoolProperty(
        name="Heard Expressions", default=True,
        description="Give the voice's faces the learned expressions of the emotion it is heard as (half weight); "
                    "needs a model with an emotion hearing and learned expressions",
    )
    rest_in_pauses: BoolProperty(
        name="Rest in pauses", default=True,
        description="Close the mouth where no speech is heard (silero-vad, or the transcript's silences); needs a face with landmarks",
    )
    transcript: StringProperty(
        name="Transcript", default="",
        description="The words spoken in the strip (English), or a .txt file: forced alignment times each phone for the lips. "
        "Empty: from the sound alone",
    )
    recognise: BoolProperty(
        name="Recognise words", default=False,
        description="Without a transcript: recognise the words by pocketsphinx's full search (English) instead of Hear phones' "
        "faster one and weigh their phones into what the lips follow; costs about a third of the strip's length more to wait "
        "on 2 CPU cores",
    )
    phone_loop: BoolProperty(
        name="Hear phones", default=True,
        description="Without a transcript or recognised words: weigh the phones pocketsphinx hears (the words it recognises, "
        "or its phone loop's; English) into what the lips follow; helps real voices, about 0.2 s per second of the strip",
    )
    seed: IntProperty(name="Seed", default=0, min=0, description="Head-motion, blink and gaze variation: same seed, same motion")
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "GPU when present: NVIDIA (CUDA), then Apple Silicon (MPS), else the processor"),
            ("cpu", "CPU", "Processor"),
            ("cuda", "GPU (CUDA)", "NVIDIA GPU"),
            ("mps", "GPU (Apple)", "Apple Silicon GPU through Metal (MPS)"),
        ],
        default="auto",
    )
    per_frame: BoolProperty(
        name="Per-frame shape keys", default=False,
        description="One shape key per model frame instead of a few PCA keys with one weight curve each "
        "(exact round trips, for research; about 16 times larger files)",
    )
    set_frame_range: BoolProperty(
        name="Set Frame Range", default=False,
        description="Set the scene's frame range to the face's lines after Animate",
    )
    take: EnumProperty(
        name="Take",
        items=[
            ("AUTO", "Auto", "ARKit curves when the face has ARKit shape keys, else compact shape keys"),
            ("ARKIT", "ARKit Curves", "One weight curve per ARKit shape key of the face (any mesh)"),
            ("SHAPE_KEYS", "Shape Keys", "Per-vertex shape keys (the template's topology): a few PCA keys, or one per frame"),
        ],
        default="AUTO",
    )
    gain_jaw: _gain("Jaw")
    gain_lips: _gain("Lips")
    gain_smile: _gain("Smile/Frown")
    gain_brows: _gain("Brows")
    gain_eyes: _gain("Eyes")
    head_armature: PointerProperty(
        name="Armature", type=bpy.types.Object, poll=_is_armature,
        description="Optional: put the head motion on a bone of this armature instead of the face object",
    )
    head_bone: StringProperty(name="Bone", description="The head bone that carries the head motion")
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
        try:  # what Install Dependencies would do here (nvidia-smi runs once per session)
            plan = dependencies.plan_install(dependencies.detect_platform(), dependencies.install_folder())
            box.label(text="Install: " + plan.summary, icon="INFO")
            box.label(text="Into: " + plan.target)
        except Exception as exc:  # never fail while drawing
            box.label(text=str(exc), icon="ERROR")
        if not getattr(bpy.app, "online_access", True):
            box.label(text="Installing needs 'Allow Online Access' (Preferences > System > Network)", icon="INTERNET")
        row = layout.row()
        row.operator("talking_head.install_dependencies", icon="IMPORT")
        row.operator("talking_head.remove_dependencies", icon="TRASH")
        layout.prop(self, "python_path")


CLASSES = (
    TalkingHeadStyleFile, TalkingHeadTuningClip, TalkingHeadChannel, TalkingHeadLandmarks, TalkingHeadEmotionSlider, TalkingHeadCharacter,
    TalkingHeadSettings, TalkingHeadPreferences,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.talking_head = PointerProperty(type=TalkingHeadSettings)
    bpy.types.Mesh.talking_head = PointerProperty(type=TalkingHeadCharacter)


def unregister() -> None:
    del bpy.types.Mesh.talking_head
    del bpy.types.Scene.talking_head
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
