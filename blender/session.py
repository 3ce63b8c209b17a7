"""What the operators and the headless `bake` do, without any UI: pick the sound strip, check the
target mesh, build the worker's task, and hand the result to the writer. One path for both."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import bpy
import numpy as np

from ..core.alignment import read_transcript
from ..core.audio import check_audio_path
from ..core.character import ChannelMapError, GAIN_GROUPS, arkit_weights, template_fit
from ..core.errors import AudioError, BundleError, TalkingHeadError
from ..core.geometry import Y_UP_TO_Z_UP
from ..core.tasks import AnimateTask
from ..core.emotion_direction import BUILD_HINT, PROTOTYPES, EmotionError, heard_summary
from . import character, dependencies, styles, writer
from . import emotion as emotion_sliders
from .choices import bundle_path, python_path
from ..core.bundle_info import BundleInfo, demo_available, read_bundle_info
from .worker_client import WorkerProcess, WorkerResult


@dataclass
class AnimateRequest:
    """A checked request: the task to run, and where its result goes."""

    task: AnimateTask
    python: str
    python_paths: list[str]
    target: bpy.types.Object
    start: float
    # The worker's folder when a packed sound was written out for it (deleted with the worker).
    work_dir: Path | None = None
    plan: TakePlan | None = None
    # The line: the sound strip's name, and its audible scene frames [first, last].
    line: str = writer.DEFAULT_LINE
    audible: tuple[float, float] | None = None


@dataclass
class TakePlan:
    """What kind of take the target gets: "ARKIT" curves on its ARKit shape keys (`channels`:
    channel -> key) or per-vertex "SHAPE_KEYS"; and the head bone, when the head motion goes on one."""

    kind: str
    channels: dict = field(default_factory=dict)
    head_bone: writer.HeadBone | None = None


def plan_take(settings, info: BundleInfo) -> TakePlan:
    """Check the target against the settings and the bundle; raises TalkingHeadError with nothing
    changed. Take "AUTO" is ARKit curves when the face has ARKit shape keys, else shape keys."""
    target = settings.target
    if target is None or target.type != "MESH":
        raise writer.MeshMismatchError("choose a mesh object as the target, or use 'Add template head'")
    bone = None
    if settings.head_motion and (settings.head_armature is not None or settings.head_bone):
        bone = writer.HeadBone(settings.head_armature, settings.head_bone)
        bone.check()
    kind = settings.take
    channels = character.arkit_channels(target) if kind != "SHAPE_KEYS" else {}
    if kind == "AUTO":
        kind = "ARKIT" if channels else "SHAPE_KEYS"
    if kind == "ARKIT":
        if not channels:
            raise ChannelMapError(
                f"'{target.name}' has no ARKit shape keys: use 'Add ARKit Shape Keys' (after setting its landmarks), "
                "or map its keys under Channel Mapping")
        from ..core.arkit import template_landmarks

        template_landmarks(_template_vertices(str(info.path)), info.n_vertices, info.config.landmarks)  # the worker's ARKit basis
    else:
        writer.check_mesh(target, info.n_vertices)
        template_fit(_template_vertices(str(info.path)), writer.rest_vertices(target), f"'{target.name}'")
    return TakePlan(kind, channels, bone)


def gains(settings) -> dict[str, float]:
    """The ARKit curves' gain per channel group (core/character.py GAIN_GROUPS)."""
    return {group: float(getattr(settings, f"gain_{group}")) for group in GAIN_GROUPS}


@lru_cache(maxsize=4)
def _template_vertices_cached(path: str, mtime: int) -> np.ndarray:
    return read_bundle_info(path).template().vertices


def _template_vertices(path: str) -> np.ndarray:
    """The bundle's template vertices (V, 3), read once per file version (the panel draws often)."""
    from ..core.bundle_info import TEMPLATE

    return _template_vertices_cached(path, (Path(path) / TEMPLATE).stat().st_mtime_ns)


def sound_strips(scene: bpy.types.Scene) -> list:
    editor = scene.sequence_editor
    return [strip for strip in _all_strips(editor) if strip.type == "SOUND"] if editor else []


def find_strip(scene: bpy.types.Scene, name: str):
    """The sound strip called `name`, else the only sound strip; raises `AudioError`."""
    strips = sound_strips(scene)
    for strip in strips:
        if strip.name == name:
            return strip
    if not name and len(strips) == 1:
        return strips[0]
    if not strips:
        raise AudioError("the scene has no sound: use 'Load audio...' or add a sound strip in the Video Sequencer")
    raise AudioError(f"choose the sound strip to animate to ({len(strips)} in the Video Sequencer)")


def add_sound_strip(scene: bpy.types.Scene, filepath: str, frame: int | None = None):
    """A sound strip for `filepath` at `frame` (default: the current frame) on a free channel."""
    path = Path(bpy.path.abspath(filepath))
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    check_audio_path(path)  # before a strip is added: Blender plays formats the loader cannot read
    editor = scene.sequence_editor or scene.sequence_editor_create()
    frame = scene.frame_current if frame is None else frame
    used = {strip.channel for strip in _all_strips(editor)}
    channel = next(c for c in range(1, 129) if c not in used)
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    try:
        return strips.new_sound(path.stem, str(path), channel, int(frame))
    except RuntimeError as exc:
        raise AudioError(f"Blender cannot read this sound file ({exc}): {path}") from None


def audio_file_of(strip, folder: Path | None = None) -> tuple[str, bool]:
    """A file the worker can read for a sound strip: (path, is_temporary). Packed sounds are
    written out to a temporary file (in `folder`, when given). A format the loader cannot read
    (an `.m4a` or a video added in the Video Sequencer) is refused here, before the worker starts."""
    sound = strip.sound
    check_audio_path(sound.filepath)
    if sound.packed_file is not None:
        suffix = Path(sound.filepath).suffix or ".wav"
        handle = tempfile.NamedTemporaryFile(prefix="talking_head_", suffix=suffix, delete=False, dir=folder)
        with handle:
            handle.write(sound.packed_file.data)
        return handle.name, True
    path = Path(bpy.path.abspath(sound.filepath, library=sound.library))
    if not path.is_file():
        raise AudioError(f"the sound file of strip '{strip.name}' is missing: {path}")
    return str(path), False


def mesh_object(name: str, vertices: np.ndarray, faces: np.ndarray, collection) -> bpy.types.Object:
    """A new mesh object from arrays, linked into `collection`."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    mesh.validate(clean_customdata=False)
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def add_head(collection, bundle: str, mesh_file: str | None = None, name: str = "Talking Head") -> bpy.types.Object:
    """The bundle's template (or `mesh_file`, a mesh in template coordinates) as a new object with
    its origin at the head pivot P, turned from the template's Y-up to Blender's Z-up. The project's
    own head gets its neck closed and region materials (blender/head_look.py)."""
    from ..core.mesh_io import read_mesh
    from . import head_look

    info = read_bundle_info(bundle)
    template = info.template()
    mesh = read_mesh(mesh_file) if mesh_file else template
    if mesh.n_vertices != info.n_vertices:
        raise writer.MeshMismatchError(
            f"{Path(mesh_file).name} has {mesh.n_vertices:,} vertices but the model bundle's template has "
            f"{info.n_vertices:,}; use a mesh with the template's topology"
        )
    pivot = info.pivot(template.vertices)
    obj = mesh_object(name, mesh.vertices - pivot, mesh.faces, collection)
    head_look.dress_head(obj, mesh.faces)  # our object: neck closed, a material per face region
    obj.rotation_mode = "XYZ"
    obj.matrix_basis = _matrix(Y_UP_TO_Z_UP, Y_UP_TO_Z_UP @ pivot)
    return obj


def add_mesh_file(collection, path, name: str | None = None) -> bpy.types.Object:
    """Any face mesh file (.ply/.obj, Y-up) as a new object, as it is, turned to Blender's Z-up."""
    from ..core.mesh_io import read_mesh

    mesh = read_mesh(path)
    obj = mesh_object(name or Path(path).stem, mesh.vertices, mesh.faces, collection)
    obj.rotation_mode = "XYZ"
    obj.matrix_basis = _matrix(Y_UP_TO_Z_UP, np.zeros(3))
    return obj


def chosen_bundle(settings) -> BundleInfo:
    """The model bundle the settings name; raises BundleError when there is none."""
    bundle = bundle_path(settings)
    if settings.bundle_source == "DEMO" and not demo_available():
        raise BundleError("this build ships no demo model: set Model to 'Folder' and choose a model bundle folder")
    if not bundle:
        raise BundleError("choose a model bundle folder")
    return read_bundle_info(bundle)


def prepare(scene: bpy.types.Scene, settings, speaking_style: str = "", emotion=None) -> AnimateRequest:
    """Check everything a user can get wrong before starting the worker; raises TalkingHeadError.
    `speaking_style` (a subject) overrides a chosen style's own speaking style (`bake --subject`).
    `emotion` (an `EmotionDirection`, `bake --emotion`) replaces the Face's emotion sliders."""
    info = chosen_bundle(settings)
    plan = plan_take(settings, info)
    strip = find_strip(scene, settings.strip)
    first = styles.style_choice(settings.subject, info, speaking_style)
    second = styles.style_choice(settings.second_style, info) if settings.blend_styles else None
    if emotion is None:
        fps = scene.render.fps / scene.render.fps_base
        emotion = emotion_sliders.emotion_track(settings.target, emotion_sliders.slider_labels(info), float(_strip_start(strip)), audible_frames(strip), fps)
    if emotion is not None and not (info.path / PROTOTYPES).is_file():
        raise EmotionError(f"the bundle {info.path.name} has no emotion prototypes, so it cannot direct the emotion (sliders, --emotion): {BUILD_HINT}")
    if emotion is not None and info.config.emotion_labels:
        emotion.check(info.config.emotion_labels)  # an unknown label, before the worker starts
    python, paths = dependencies.worker_python(python_path())
    # A packed sound is written out into the worker's own folder, so that it goes with it.
    work_dir = Path(tempfile.mkdtemp(prefix="talking_head_")) if strip.sound.packed_file is not None else None
    try:
        audio, _ = audio_file_of(strip, folder=work_dir)
    except BaseException:
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)
        raise
    task = AnimateTask(
        audio=audio,
        bundle=str(info.path),
        style=first,
        blend_with=second,
        blend_weight=float(settings.style_weight),
        seed=int(settings.seed),
        with_head=bool(settings.head_motion),
        device=settings.device,
        blinks=bool(settings.blinks),
        emotion=emotion,
        transcript=read_transcript(settings.transcript) if settings.transcript.strip() else "",
        rest_in_pauses=bool(settings.rest_in_pauses),
        recognise=bool(settings.recognise),
        phone_loop=bool(settings.phone_loop),
        heard_expressions=bool(settings.heard_expressions),
    )
    return AnimateRequest(task, python, paths, settings.target, float(_strip_start(strip)), work_dir, plan,
                          strip.name, audible_frames(strip))


def start(request: AnimateRequest) -> WorkerProcess:
    """The task goes to the worker that stays loaded between Animate clicks (worker_client.py
    `SERVER`); it runs in the request's folder, which the handle's cleanup() deletes."""
    return WorkerProcess.start(request.python, request.task, request.python_paths, request.work_dir, persistent=True)


def apply(scene: bpy.types.Scene, settings, request: AnimateRequest, result: WorkerResult) -> writer.TakeInfo:
    """Write a finished run onto its target (the only step that changes the scene); the take
    carries the worker's note (what it could not add) for the operator's report."""
    take = _write(scene, settings, request, result)
    take.note = result.note
    _note_heard(request.target, request.line, result.animation)
    return take


def _note_heard(obj: bpy.types.Object, line: str, animation) -> None:
    """Keep, with the line's take record, what the voice was heard as per second (the panel shows it)."""
    record = writer.take_record(obj)
    if line in record.get("lines", {}) and animation.emotion_probs is not None and len(animation.emotion_labels):
        record["lines"][line]["heard"] = heard_summary(animation.emotion_probs, animation.emotion_labels, animation.fps)
        obj[writer.TAKE_PROPERTY] = json.dumps(record)


def _write(scene: bpy.types.Scene, settings, request: AnimateRequest, result: WorkerResult) -> writer.TakeInfo:
    plan = request.plan or TakePlan("SHAPE_KEYS")
    if plan.kind == "ARKIT":
        animation = result.animation
        return writer.write_arkit_take(
            request.target,
            arkit_weights(animation),
            character.arkit_channels(request.target),
            animation,
            character.template_to_mesh(request.target, result.template),
            scene,
            request.start,
            gains=gains(settings),
            head_amplitude=settings.head_amplitude,
            head_motion=bool(settings.head_motion),
            head_bone=plan.head_bone,
            set_frame_range=bool(settings.set_frame_range),
            line=request.line,
            audible=request.audible,
        )
    return writer.write_take(
        request.target,
        result.animation,
        result.template,
        scene,
        request.start,
        head_amplitude=settings.head_amplitude,
        head_motion=bool(settings.head_motion),
        compact=not settings.per_frame,
        head_bone=plan.head_bone,
        set_frame_range=bool(settings.set_frame_range),
        line=request.line,
        audible=request.audible,
    )


def sync_to_sound(scene: bpy.types.Scene) -> tuple[list[str], list[str]]:
    """Move every take whose sound strip moved or was trimmed (Sync to Sound). Returns the lines
    moved ("Face: line") and those whose sound strip is gone (left where they are)."""
    strips = {strip.name: strip for strip in sound_strips(scene)}
    moved, missing = [], []
    for obj in scene.objects:
        if not writer.has_take(obj):
            continue
        placements = {}
        for line, entry in writer.lines_of(obj).items():
            strip = strips.get(entry.get("sound", line))
            if strip is None:
                missing.append(f"{obj.name}: {line}")
            else:
                placements[line] = (float(_strip_start(strip)), *audible_frames(strip))
        moved += [f"{obj.name}: {line}" for line in writer.move_lines(obj, placements)]
    return moved, missing


def run(request: AnimateRequest, timeout: float | None = None) -> WorkerResult:
    """Run the worker to the end (the synchronous path); its files are removed afterwards."""
    worker = start(request)
    try:
        return worker.wait(timeout)
    finally:
        worker.cleanup()


def animate(scene: bpy.types.Scene, settings, timeout: float | None = None, speaking_style: str = "") -> writer.TakeInfo:
    """The synchronous path: prepare, run the worker to the end, write."""
    request = prepare(scene, settings, speaking_style)
    return apply(scene, settings, request, run(request, timeout))


def report_message(exc: BaseException, console: bool = True) -> str:
    """The one line an operator reports. A user error is its message alone; anything else is a
    bug, so its traceback also goes to the console (stderr) for the report (not while drawing
    the panel, `console=False`, which would repeat it on every redraw)."""
    if isinstance(exc, TalkingHeadError):
        return str(exc)
    if console:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"{type(exc).__name__}: {exc} (traceback in the system console)"


def _strip_start(strip) -> float:
    # Where the sound's content starts (a strip trimmed at its start is heard later than this).
    return float(strip.frame_start)


def audible_frames(strip) -> tuple[float, float]:
    """The first and last scene frame where the strip is heard (its trims respected)."""
    return float(strip.frame_final_start), float(strip.frame_final_end - 1)


def _all_strips(editor) -> list:
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def _matrix(rotation: np.ndarray, location: np.ndarray):
    from mathutils import Matrix

    matrix = Matrix(rotation.tolist()).to_4x4()
    matrix.translation = location.tolist()
    return matrix
