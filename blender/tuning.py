"""Tune a speaking style from clips in the scene (METHOD.md section 9), without any UI.

A clip is a sound strip of the Video Sequencer and a mesh in the template's topology animated
over it, by shape keys (a take of this add-on, or the user's own) or an Alembic cache (a Mesh
Sequence Cache modifier). `prepare` reads each clip's evaluated mesh at the model's 25 fps over
the strip (evaluating the scene at fractional frames when its frame rate differs), checks what
a user can get wrong, and writes the arrays for the worker (core/worker.py), which tunes; `apply`
saves the style into the user styles folder and lists it. Reading the scene does not change it:
the current frame is put back.

A clip's faces go to the worker in the template's coordinates: the motion is measured from the
mesh's rest shape (its reference shape key, else its own vertex positions, e.g. the mesh as the
Alembic cache was imported) in the mesh's local coordinates (object motion is head motion, not
part of the style), turned and scaled as the rest shape best fits the template, and added to the
template: faces_t = T + s R (mesh_t - rest).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.audio import FACE_FPS as MODEL_FPS
from ..core.tasks import TuneClipFile, TuneTask
from ..core.style import MAX_DURATION_MISMATCH_S, MIN_CLIPS, TuningError
from . import dependencies, session, styles, writer
from .choices import python_path
from .worker_client import TuneResult, WorkerProcess



@dataclass
class TuneRequest:
    """A checked tuning task and the folder holding its clips (deleted with the worker's files)."""

    task: TuneTask
    python: str
    python_paths: list[str]
    work_dir: Path

    def discard(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def prepare(scene: bpy.types.Scene, settings) -> TuneRequest:
    """Check the clips, read their meshes and write the worker's task; raises TalkingHeadError."""
    info = session.chosen_bundle(settings)
    clips = list(settings.tuning_clips)
    if len(clips) < MIN_CLIPS:
        raise TuningError(
            f"tuning needs at least {MIN_CLIPS} clips (one is held out to stop early), got {len(clips)}: "
            "add clips, each a sound strip and the face animated to it"
        )
    fps = writer.scene_fps(scene)
    checked = []
    for number, clip in enumerate(clips, 1):
        strip, obj = _check_clip(scene, number, clip, info.n_vertices)
        n_frames = max(1, round(strip.frame_duration * MODEL_FPS / fps))
        span = animated_span(obj)
        if span is not None:  # an Alembic cache's time range is not known here: it is read over the strip
            audio_s, mesh_s = strip.frame_duration / fps, (span[1] - span[0] + 1) / fps  # frames first..last
            if abs(audio_s - mesh_s) > MAX_DURATION_MISMATCH_S:
                raise TuningError(
                    f"clip {number}: sound strip '{strip.name}' lasts {audio_s:.2f} s but '{obj.name}' is animated for "
                    f"{mesh_s:.2f} s (frames {span[0]:g}-{span[1]:g}): they must match within {MAX_DURATION_MISMATCH_S} s"
                )
            if abs(span[0] - strip.frame_start) / fps > MAX_DURATION_MISMATCH_S:
                raise TuningError(
                    f"clip {number}: '{obj.name}' is animated from frame {span[0]:g} but sound strip '{strip.name}' starts at "
                    f"frame {strip.frame_start:g}: move the strip or the animation so that they start together"
                )
        checked.append((strip, obj, n_frames))
    python, paths = dependencies.worker_python(python_path())
    template = info.template().vertices
    work_dir = Path(tempfile.mkdtemp(prefix="talking_head_tune_"))
    try:
        task_clips = []
        for number, (strip, obj, n_frames) in enumerate(checked, 1):
            faces = to_template(sample_clip(scene, obj, float(strip.frame_start), n_frames), writer.rest_vertices(obj), template)
            mesh_file = work_dir / f"clip{number}.npy"
            np.save(mesh_file, faces)
            audio, _ = session.audio_file_of(strip, folder=work_dir)
            task_clips.append(TuneClipFile(audio, str(mesh_file), [strip.name, obj.name]))
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    task = TuneTask(
        bundle=str(info.path),
        clips=task_clips,
        device=settings.device,
        name=settings.tuning_name.strip() or "Style",
        mode=settings.tuning_mode,
        speaking_style="" if settings.tuning_pick_subject else styles.speaking_subject(settings.subject, info),
    )
    return TuneRequest(task, python, paths, work_dir)


def start(request: TuneRequest) -> WorkerProcess:
    try:
        return WorkerProcess.start(request.python, request.task, request.python_paths, work_dir=request.work_dir, persistent=True)
    except BaseException:
        request.discard()
        raise


def apply(settings, result: TuneResult) -> Path:
    """Save a finished run's style into the user styles folder, list it and choose it."""
    path = styles.save_tuned_style(result.style)
    identifier = styles.add_style_file(settings, path)
    try:
        settings.subject = identifier
    except TypeError:  # not offered for the current bundle (another bundle was chosen meanwhile)
        pass
    return path


def tune(scene: bpy.types.Scene, settings, timeout: float | None = None) -> Path:
    """The synchronous path: prepare, run the worker to the end, save and list the style."""
    worker = start(prepare(scene, settings))
    try:
        result = worker.wait(timeout)
    finally:
        worker.cleanup()
    return apply(settings, result)


def _check_clip(scene: bpy.types.Scene, number: int, clip, n_vertices: int):
    if not clip.strip:
        raise TuningError(f"clip {number}: choose its sound strip")
    strip = next((s for s in session.sound_strips(scene) if s.name == clip.strip), None)
    if strip is None:
        raise TuningError(f"clip {number}: there is no sound strip '{clip.strip}' in the Video Sequencer")
    obj = clip.mesh
    if obj is None or obj.type != "MESH":
        raise TuningError(f"clip {number}: choose the face (a mesh object) animated to '{strip.name}'")
    count = len(obj.data.vertices)
    if count != n_vertices:
        raise TuningError(
            f"clip {number}: '{obj.name}' has {count:,} vertices but the model bundle's template has {n_vertices:,}: "
            "a clip's face needs the template's topology"
        )
    if animated_span(obj) is None and alembic_cache(obj) is None:
        raise TuningError(
            f"clip {number}: '{obj.name}' is not animated: it needs animated shape keys or an Alembic cache "
            "(Mesh Sequence Cache modifier)"
        )
    return strip, obj


def alembic_cache(obj: bpy.types.Object):
    """The object's enabled Mesh Sequence Cache modifier, if any."""
    return next((m for m in obj.modifiers if m.type == "MESH_SEQUENCE_CACHE" and m.show_viewport and m.cache_file), None)


def animated_span(obj: bpy.types.Object) -> tuple[float, float] | None:
    """First and last scene frame of the mesh's shape-key animation (action and NLA strips)."""
    key = obj.data.shape_keys
    data = key.animation_data if key is not None else None
    if data is None:
        return None
    spans = []
    if data.action is not None and _has_keys(data.action):
        spans.append(tuple(data.action.frame_range))
    for track in data.nla_tracks:
        if not track.mute:
            spans += [(strip.frame_start, strip.frame_end) for strip in track.strips if not strip.mute and strip.action is not None]
    if not spans:
        return None
    return float(min(s[0] for s in spans)), float(max(s[1] for s in spans))


def sample_clip(scene: bpy.types.Scene, obj: bpy.types.Object, start: float, n_frames: int) -> np.ndarray:
    """The evaluated mesh's local vertex positions (n_frames, V, 3) at the model's frames
    (25 fps from scene frame `start`); the scene's current frame is put back afterwards."""
    positions = writer.model_frame_positions(n_frames, MODEL_FPS, writer.scene_fps(scene), start)
    frame, subframe = scene.frame_current, scene.frame_subframe
    n_vertices = len(obj.data.vertices)
    faces = np.empty((n_frames, n_vertices, 3), dtype=np.float32)
    co = np.empty(n_vertices * 3, dtype=np.float32)
    try:
        for index, position in enumerate(positions):
            whole = int(np.floor(position + 1e-9))
            scene.frame_set(whole, subframe=float(max(0.0, position - whole)))
            mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
            if len(mesh.vertices) != n_vertices:
                raise TuningError(f"'{obj.name}' has {len(mesh.vertices):,} vertices at frame {position:g}, not {n_vertices:,}")
            mesh.vertices.foreach_get("co", co)
            faces[index] = co.reshape(-1, 3)
    finally:
        scene.frame_set(frame, subframe=subframe)
    return faces


def to_template(faces: np.ndarray, rest: np.ndarray, template: np.ndarray) -> np.ndarray:
    """faces (N, V, 3) as motion on the template: T + s R (faces_t - rest), with s R the
    similarity that best maps the rest shape onto the template (Umeyama)."""
    a = rest.astype(np.float64) - rest.mean(axis=0)
    b = template.astype(np.float64) - template.mean(axis=0)
    u, singular, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0  # a proper rotation, never a reflection
    correction = np.diag([1.0, 1.0, d])
    rotation = (u @ correction @ vt).T
    energy = float(np.sum(a * a))
    scale = float(np.sum(singular * np.diag(correction))) / energy if energy > 0 else 1.0
    motion = (faces.astype(np.float64) - rest[None]) @ (scale * rotation).T
    return (template[None].astype(np.float64) + motion).astype(np.float32)


def _has_keys(action: bpy.types.Action) -> bool:
    if hasattr(action, "layers"):  # Blender 4.4+: layered actions
        return any(
            len(curve.keyframe_points) for layer in action.layers for strip in layer.strips
            for bag in getattr(strip, "channelbags", ()) for curve in bag.fcurves
        )
    return any(len(curve.keyframe_points) for curve in action.fcurves)
