"""`talking-head bake`: the Animate button without a UI, through the bpy module.

    talking-head bake AUDIO --bundle DIR --blend OUT.blend [--mesh MESH.ply [--landmarks FILE.json|biwi]]
                      [--scene IN.blend --object NAME [--landmarks ...]] [--bone ARMATURE:BONE]
                      [--take auto|arkit|shape-keys] [--fbx OUT.fbx] [--abc OUT.abc] [--preview OUT.png]
                      [--seed N] [--subject NAME] [--style STYLE.json] [--no-head] [--no-blinks] [--per-frame]
                      [--emotion LABEL:W[,...] | --emotion-track FILE.json] [--transcript TEXT|FILE.txt|beside] [--no-pause-rest]

It builds a scene (sound strip at frame 1, the template head or MESH), or opens the user's IN.blend
(sound strip at its first frame, the take on its object NAME; IN.blend itself is never written),
runs the same worker and writer as the panel, saves OUT.blend with the sound packed in (it plays
with sound when opened), and optionally exports FBX / Alembic and renders a preview strip. With
--landmarks the face gets the ARKit shape keys it lacks and the take is ARKit curves.

    talking-head bake AUDIO AUDIO ... | FOLDER [--recursive] --bundle DIR --blend OUTDIR [--fbx DIR] ...

Several sound files, or a folder of them: each gets its own scene, written as OUTDIR/NAME.blend
(and DIR/NAME.fbx, ...), NAME being the sound file's; a file that fails is skipped with one line
(app/batch.py). The add-on stays registered for the whole run, so the panel's worker, which stays
loaded between tasks (blender/worker_client.py), loads the model once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.animation import Animation
from ..core.arkit import ARKIT_NAMES
from ..core.audio import FACE_FPS
from ..core.bundle_info import read_bundle_info
from ..core.errors import AudioError, TalkingHeadError
from ..core.outputs import check_output_file
from . import batch, checks, emotion_cli, speech_options


def register(commands) -> None:
    """Add the `bake` sub-command to app/cli.py's sub-parsers (bpy is imported only when run)."""
    bake = commands.add_parser("bake", help="sound file -> animated .blend (and FBX, Alembic, preview) with Blender's bpy")
    bake.add_argument("audio", type=Path, nargs="+", help="sound file (WAV, FLAC, OGG, MP3, ...); several, or a folder of them: "
                      "one .blend each, named after it, in the --blend folder")
    bake.add_argument("--recursive", action="store_true", help="a folder's sub-folders too (their outputs go into the same sub-folders)")
    bake.add_argument("--bundle", required=True, type=Path, help="model bundle folder")
    bake.add_argument("--blend", required=True, type=Path, help="OUT.blend to write; with several inputs, the folder for NAME.blend")
    bake.add_argument("--mesh", type=Path, help="face mesh (.ply/.obj), Y-up: the template's topology, or any with --landmarks")
    bake.add_argument("--scene", type=Path, help="the user's IN.blend to animate an object of (never written)")
    bake.add_argument("--object", default="", help="with --scene: the face mesh object's name")
    bake.add_argument("--landmarks", help="FILE.json ({landmark: vertex index}) or 'biwi': build ARKit keys, write ARKit curves")
    bake.add_argument("--bone", default="", help="ARMATURE:BONE that carries the head motion (instead of the face object)")
    bake.add_argument("--take", choices=("auto", "arkit", "shape-keys"), default="auto",
                      help="ARKit curves or per-vertex shape keys (auto: curves when the face has ARKit keys)")
    bake.add_argument("--fbx", type=Path, help="also export FBX (shape-key and object animation); with several inputs, a folder")
    bake.add_argument("--abc", type=Path, help="also export Alembic (vertex positions per frame); with several inputs, a folder")
    bake.add_argument("--preview", type=Path, help="also render a strip of frames (Cycles, CPU) into this PNG; with several inputs, a folder")
    bake.add_argument("--seed", type=checks.seed, default=0, help=f"head-motion, blink and gaze variation, 0 to {checks.SEED_MAX} (same seed, same motion)")
    bake.add_argument("--subject", default="", help="speaking style: a subject of the bundle (default: its first)")
    bake.add_argument("--style", type=Path, help="a tuned style (STYLE.json from `talking-head tune` or the panel)")
    bake.add_argument("--no-head", action="store_true", help="no head motion")
    bake.add_argument("--no-blinks", action="store_true", help="no blinks and gaze (added by default, seeded by --seed; "
                      "needs a template with face landmarks)")
    emotion_cli.add_arguments(bake)
    speech_options.add_arguments(bake)
    bake.add_argument("--per-frame", action="store_true", help="one shape key per model frame (exact, 16 times larger) "
                      "instead of a few PCA shape keys")
    bake.add_argument("--compact", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    bake.add_argument("--fps", type=checks.fps, help=f"scene frame rate, 1 to 1000 (default: the --scene file's, else {FACE_FPS}, the model's)")
    bake.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto", help="auto (CUDA, else Apple MPS, when present), cpu, cuda or mps")
    bake.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if batch.several(args.audio):
        return run_many(args)
    bake(args.audio[0], args.bundle, args.blend, fbx=args.fbx, abc=args.abc, preview=args.preview,
         transcript=speech_options.transcript_for(args, args.audio[0]), **_options(args))
    return 0


def run_many(args: argparse.Namespace) -> int:
    """`bake` of several sound files (or a folder): FOLDER/NAME.blend each (and .fbx, .abc, .png
    with those options, each a folder), under one progress bar; a file that fails is skipped with
    one line, and the exit code is 2 (app/batch.py). Everything but the sound files is checked
    once, before the first: the output folders, Blender, the bundle and subject, --scene, --landmarks, --style."""
    files = batch.sound_files(args.audio, args.recursive)
    if args.transcript not in (None, "beside"):
        raise TalkingHeadError("one --transcript for several sound files: use `--transcript beside` (NAME.txt next to each NAME.wav)")
    folders = {option: folder for option, folder in (("--blend", args.blend), ("--fbx", args.fbx), ("--abc", args.abc), ("--preview", args.preview))
               if folder is not None}
    for option, folder in folders.items():
        batch.check_output_folder(folder, option, OUTPUT_SUFFIXES[option])
    targets = {file: {option: file.output(folder, OUTPUT_SUFFIXES[option]) for option, folder in folders.items()} for file in files}
    inputs = [("audio file", file.path) for file in files] + _other_inputs(args.scene, args.mesh, args.style, args.landmarks)
    for option in folders:
        batch.check_not_inputs((outputs[option] for outputs in targets.values()), option, inputs)
    try:
        import bpy
    except ImportError:
        raise TalkingHeadError("`bake` needs Blender's Python module: pip install bpy (Python 3.11)") from None
    from .. import register as register_addon, unregister as unregister_addon
    from ..core.audio import load_audio
    from ..core.character import read_landmarks
    from ..core.style import Style

    info = read_bundle_info(args.bundle.resolve())
    if args.subject:
        info.config.subject_index(args.subject)
    if args.scene is not None:
        _check_scene_file(args.scene, targets[files[0]]["--blend"], args.object, args.mesh)
    if args.landmarks:
        read_landmarks(args.landmarks)
    if args.style:
        Style.load(args.style)

    def bake_one(file: batch.SoundFile) -> str:
        load_audio(file.path)  # a bad file fails here, before a scene is built and the worker asked
        outputs = targets[file]
        said: list[str] = []
        bake(file.path, args.bundle, outputs["--blend"], fbx=outputs.get("--fbx"), abc=outputs.get("--abc"), preview=outputs.get("--preview"),
             say=said.append, transcript=speech_options.transcript_for(args, file.path), **_options(args))
        return f"{file.path}: " + "; ".join(said)

    # Registered for the whole run (bake() then leaves it so): the worker that stays loaded between
    # tasks is stopped by the add-on's unregister, so it loads the model once, not once a file.
    registered = not hasattr(bpy.types.Scene, "talking_head")
    if registered:
        register_addon()
    try:
        return batch.run_each(files, bake_one, "baked", args.blend)
    finally:
        if registered:
            unregister_addon()


def _options(args: argparse.Namespace) -> dict:
    """bake()'s keywords from the command line, but for the sound file and the outputs."""
    return dict(mesh=args.mesh, seed=args.seed, subject=args.subject, style=args.style, head=not args.no_head, blinks=not args.no_blinks, per_frame=args.per_frame,
                fps=args.fps, device=args.device, scene_file=args.scene, object_name=args.object, landmarks=args.landmarks,
                bone=args.bone, take=args.take, emotion=emotion_cli.direction(args, args.bundle), rest_in_pauses=not args.no_pause_rest,
                recognise=args.recognise, phone_loop=not args.no_phone_loop, heard_expressions=not args.no_heard_expressions)


def _other_inputs(scene_file: Path | None, mesh: Path | None, style: Path | None, landmarks: str | None) -> list[tuple[str, Path | str | None]]:
    return [("--scene file", scene_file), ("--mesh file", mesh), ("--style file", style),
            ("--landmarks file", None if landmarks == "biwi" else landmarks)]


@dataclass
class Baked:
    """What `bake` made: the take on the head, and the worker's animation arrays."""

    take: object  # blender/writer.py TakeInfo
    animation: Animation


def bake(
    audio: Path,
    bundle: Path,
    blend: Path,
    mesh: Path | None = None,
    fbx: Path | None = None,
    abc: Path | None = None,
    preview: Path | None = None,
    seed: int = 0,
    subject: str = "",
    style: Path | None = None,
    head: bool = True,
    blinks: bool = True,
    per_frame: bool = False,
    fps: float | None = None,
    device: str = "auto",
    scene_file: Path | None = None,
    object_name: str = "",
    landmarks: str | None = None,
    bone: str = "",
    take: str = "auto",
    say: Callable[[str], None] = print,
    emotion=None,
    transcript: str = "",
    rest_in_pauses: bool = True,
    recognise: bool = False,
    phone_loop: bool = True,
    heard_expressions: bool = True,
) -> Baked:
    """The Animate button in a fresh scene (or the user's `scene_file`): build it, run the worker
    once, write and save. `say` gets the lines that tell what was made. `emotion`: a directed
    emotion (core/emotion_direction.py `EmotionDirection`) instead of the Face's emotion sliders.
    `transcript` (the words, "" for none), `recognise`, `phone_loop` and `rest_in_pauses`: the
    panel's Transcript, Recognise words, Hear phones and Rest in pauses; `heard_expressions` its Heard Expressions."""
    inputs = [("audio file", audio), *_other_inputs(scene_file, mesh, style, landmarks)]
    check_bake_outputs({"--blend": blend, "--fbx": fbx, "--abc": abc, "--preview": preview}, inputs)
    try:
        import bpy
    except ImportError:
        raise TalkingHeadError("`bake` needs Blender's Python module: pip install bpy (Python 3.11)") from None

    from .. import register as register_addon, unregister as unregister_addon
    from ..blender import character, export, session, styles
    from ..blender import preview as blender_preview
    from ..core.character import read_landmarks

    if not audio.is_file():
        raise AudioError(f"audio file not found: {audio}")
    marks = read_landmarks(landmarks) if landmarks else None
    if scene_file is not None:
        _check_scene_file(scene_file, blend, object_name, mesh)
        bpy.ops.wm.open_mainfile(filepath=str(scene_file.resolve()), load_ui=False)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    registered = not hasattr(bpy.types.Scene, "talking_head")
    if registered:
        register_addon()
    try:
        scene = bpy.context.scene
        if fps is not None or scene_file is None:
            fps = float(fps or FACE_FPS)
            whole = round(fps)
            scene.render.fps, scene.render.fps_base = whole, whole / fps
        settings = scene.talking_head
        settings.bundle_source, settings.bundle_folder = "FOLDER", str(bundle.resolve())
        if scene_file is not None:
            settings.target = _scene_object(scene_file, object_name)
        elif mesh is not None and marks is not None:  # any mesh: as read (Y-up), turned to Blender's Z-up
            settings.target = session.add_mesh_file(scene.collection, mesh)
        else:
            settings.target = session.add_head(scene.collection, str(bundle), str(mesh) if mesh else None)
        if marks is not None:
            character.set_landmarks(settings.target, marks)
            if len(character.arkit_channels(settings.target)) < len(ARKIT_NAMES):
                character.add_arkit_shape_keys(settings.target)
        settings.head_armature, settings.head_bone = _head_bone(bone)
        settings.take = {"auto": "AUTO", "arkit": "ARKIT", "shape-keys": "SHAPE_KEYS"}[take]
        strip = session.add_sound_strip(scene, str(audio.resolve()), frame=scene.frame_start if scene_file else 1)
        settings.strip = strip.name
        info = read_bundle_info(bundle.resolve())
        if subject:
            info.config.subject_index(subject)  # one line for an unknown subject
        if style:  # like `animate --style`: the style's p, Gn speaking like `subject` or the style's subject
            choice = styles.add_style_file(settings, style.resolve())
            styles.style_choice(choice, info, subject)
            settings.subject = choice
        elif subject:
            settings.subject = subject
        settings.seed, settings.head_motion, settings.per_frame, settings.device = seed, head, per_frame, device
        settings.blinks = blinks
        settings.transcript, settings.rest_in_pauses, settings.recognise = transcript, rest_in_pauses, recognise
        settings.phone_loop = phone_loop
        settings.heard_expressions = heard_expressions
        settings.set_frame_range = scene_file is None  # a scene made here plays the clip; the user's keeps its range
        request = session.prepare(scene, settings, speaking_style=subject if style else "", emotion=emotion)
        result = session.run(request)
        take = session.apply(scene, settings, request, result)
        what = "ARKit channel curves" if take.kind == "ARKIT" else "shape keys"
        say(f"animated {take.n_shape_keys} {what} over frames {take.frame_start}-{take.frame_end}")
        if take.note:
            print(f"note: {take.note}", file=sys.stderr)
        strip.sound.pack()
        blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()), check_existing=False)
        say(f"wrote {blend}")
        if fbx:
            say(f"wrote {export.export_fbx(settings.target, fbx.resolve(), scene)}")
        if abc:
            say(f"wrote {export.export_alembic(settings.target, abc.resolve(), scene)}")
        if preview:
            frames = blender_preview.spread_frames(take.frame_start, take.frame_end)
            say(f"wrote {blender_preview.render_strip(settings.target, preview.resolve(), frames, scene=scene)}")
    finally:
        if registered:
            unregister_addon()
    sys.stdout.flush()
    return Baked(take, result.animation)


OUTPUT_SUFFIXES = {"--blend": ".blend", "--fbx": ".fbx", "--abc": ".abc", "--preview": ".png"}


def check_bake_outputs(outputs: dict[str, Path | None], inputs: list[tuple[str, Path | str | None]]) -> None:
    """Before Blender starts: each output ({option: path}) has its suffix, is none of the inputs
    ((what, path) pairs) and goes into a folder that can be written (core/outputs.py)."""
    for option, path in outputs.items():
        if path is not None:
            check_output_file(path, (OUTPUT_SUFFIXES[option],), option, inputs)


def _check_scene_file(scene_file: Path, blend: Path, object_name: str, mesh: Path | None) -> None:
    if mesh is not None:
        raise TalkingHeadError("give either --scene (a face in your .blend) or --mesh (a face mesh file), not both")
    if not object_name:
        raise TalkingHeadError("--scene needs --object NAME: the face mesh object to animate")
    if not scene_file.is_file():
        raise TalkingHeadError(f".blend file not found: {scene_file}")
    if blend.resolve() == scene_file.resolve() or (blend.exists() and blend.samefile(scene_file)):
        raise TalkingHeadError("--blend must name another file than --scene: the input .blend is never written")


def _scene_object(scene_file: Path, name: str):
    import bpy

    from ..core.errors import MeshError

    obj = bpy.data.objects.get(name)
    if obj is None:
        raise MeshError(f"{scene_file.name} has no object '{name}'")
    if obj.type != "MESH":
        raise MeshError(f"object '{name}' is not a mesh ({obj.type.lower()}): name the face mesh with --object")
    return obj


def _head_bone(spec: str):
    """'ARMATURE:BONE' -> (armature object, bone name); '' -> (None, '')."""
    import bpy

    from ..blender.writer import BoneError

    if not spec:
        return None, ""
    armature_name, _, bone = spec.partition(":")
    armature = bpy.data.objects.get(armature_name)
    if not bone or armature is None or armature.type != "ARMATURE":
        raise BoneError(f"--bone {spec}: give ARMATURE:BONE, the name of an armature object and of its head bone")
    if bone not in armature.data.bones:
        raise BoneError(f"armature '{armature_name}' has no bone '{bone}'")
    return armature, bone
