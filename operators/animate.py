"""Operators: thin wrappers, settings in, one call to blender/session.py out."""

from __future__ import annotations

import random
import shutil

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender import session, writer
from ..core.audio import FILE_FILTER


def _settings(context):
    return context.scene.talking_head


class WorkerOperator:
    """Runs a task in the worker process. `execute` waits for it (scripts, tests, `bpy.ops`);
    `invoke` runs it in the background with progress in the panel and status bar, and Esc
    cancels it (the scene stays unchanged). Subclasses say how to prepare, start and apply."""

    _worker = None
    _request = None
    _timer = None

    @classmethod
    def poll(cls, context) -> bool:
        return context.scene is not None and not _settings(context).running

    def run(self, context):
        """The synchronous path: the result of `apply`."""
        raise NotImplementedError

    def prepare(self, context):
        raise NotImplementedError

    def start(self, request):
        raise NotImplementedError

    def apply(self, context, request, result) -> str:
        """Write the result into the scene; return the one-line report."""
        raise NotImplementedError

    def summary(self, outcome) -> str:
        raise NotImplementedError

    def execute(self, context):
        try:
            outcome = self.run(context)
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, self.summary(outcome))
        return {"FINISHED"}

    def invoke(self, context, event):
        self._request = self._worker = self._timer = None
        try:
            self._request = self.prepare(context)
            self._worker = self.start(self._request)
        except Exception as exc:
            _discard(self._request)  # a packed sound written out for a worker that did not start
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        try:
            settings = _settings(context)
            settings.running, settings.progress, settings.status = True, 0.0, "Starting"
            wm = context.window_manager
            wm.progress_begin(0, 100)
            self._timer = wm.event_timer_add(0.1, window=context.window)
            wm.modal_handler_add(self)  # last: a run that is not RUNNING_MODAL has no handler
        except Exception as exc:
            return self._fail(context, exc)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        """Any failure here (reading the result, writing the scene, a bug) ends the run cleanly
        with one line: the worker stopped and its folder removed, the button usable again."""
        try:
            return self._step(context, event)
        except Exception as exc:
            return self._fail(context, exc)

    def _step(self, context, event):
        if self._worker is None:  # already finished
            return {"CANCELLED"}
        settings = _settings(context)
        if event.type == "ESC":
            self._finish(context, cancel=True)
            self.report({"WARNING"}, "Talking Head: cancelled, the scene is unchanged")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        worker = self._worker
        done = worker.poll()
        settings.progress, settings.status = worker.progress, worker.stage
        context.window_manager.progress_update(int(100 * worker.progress))
        context.workspace.status_text_set(f"Talking Head: {worker.stage} {100 * worker.progress:.0f}%  (Esc cancels)")
        _redraw(context)
        if not done:
            return {"RUNNING_MODAL"}
        self._finish(context)  # the result is in memory; the worker's folder goes
        if worker.result is None:
            self.report({"ERROR"}, worker.error or "the worker failed")
            return {"CANCELLED"}
        outcome = self.apply(context, self._request, worker.result)  # raising: see modal()
        self.report({"INFO"}, self.summary(outcome))
        return {"FINISHED"}

    def _fail(self, context, exc: Exception):
        """End the run after `exc`: report its one line (a bug's traceback goes to the console)."""
        message = session.report_message(exc)
        self._finish(context, cancel=True)
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def _finish(self, context, cancel: bool = False) -> None:
        """Put everything back, however the run ended: the worker stopped (`cancel`) and its folder
        removed, Animate usable again, progress and status text cleared, the timer removed. Every
        step runs even when one before it fails (that one's traceback goes to the console)."""
        worker, timer, wm = self._worker, self._timer, context.window_manager
        self._worker = self._timer = None

        def clear_settings() -> None:
            settings = _settings(context)
            settings.running, settings.progress, settings.status = False, 0.0, ""

        steps = [clear_settings]
        if worker is not None:
            steps.append(worker.cancel if cancel else worker.cleanup)
        if timer is not None:
            steps.append(lambda: wm.event_timer_remove(timer))
        steps += [wm.progress_end, lambda: context.workspace.status_text_set(None), lambda: _redraw(context)]
        for step in steps:
            try:
                step()
            except Exception as exc:
                session.report_message(exc)  # to the console; the run's own line is reported


class TALKINGHEAD_OT_animate(WorkerOperator, bpy.types.Operator):
    """Animate the face to the sound strip (Esc cancels)"""

    bl_idname = "talking_head.animate"
    bl_label = "Animate"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context):
        return session.animate(context.scene, _settings(context))

    def prepare(self, context):
        return session.prepare(context.scene, _settings(context))

    def start(self, request):
        return session.start(request)

    def apply(self, context, request, result):
        return session.apply(context.scene, _settings(context), request, result)

    def summary(self, take: writer.TakeInfo) -> str:
        kind = "ARKit curves" if take.kind == "ARKIT" else "PCA shape keys" if take.compact else "shape keys"
        note = f"; {take.note}" if take.note else ""
        return f"Talking Head: line '{take.line}', {take.n_shape_keys} {kind}, frames {take.frame_start}-{take.frame_end}{note}"


class TALKINGHEAD_OT_remove_take(bpy.types.Operator):
    """Remove this add-on's animation from the face: the chosen sound strip's line, or all lines
    (your own shape keys and actions stay)"""

    bl_idname = "talking_head.remove_take"
    bl_label = "Remove Animation"
    bl_options = {"REGISTER", "UNDO"}

    all: BoolProperty(name="All Lines", default=True, description="Every line on the face; off: the chosen sound strip's line")

    @classmethod
    def poll(cls, context) -> bool:
        return writer.has_take(_settings(context).target)

    def execute(self, context):
        settings = _settings(context)
        line = None if self.all else settings.strip
        if not writer.remove_take(settings.target, line):
            self.report({"ERROR"}, f"'{settings.target.name}' has no line '{line}'")
            return {"CANCELLED"}
        return {"FINISHED"}


class TALKINGHEAD_OT_sync_to_sound(bpy.types.Operator):
    """Move the takes whose sound strip moved or was trimmed in the Video Sequencer"""

    bl_idname = "talking_head.sync_to_sound"
    bl_label = "Sync to Sound"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        moved, missing = session.sync_to_sound(context.scene)
        if missing:
            self.report({"WARNING"}, f"Talking Head: no sound strip for {', '.join(missing)} (left where it is)")
        self.report({"INFO"}, f"Talking Head: moved {len(moved)} line(s)")
        return {"FINISHED"}


class TALKINGHEAD_OT_new_variation(bpy.types.Operator):
    """Pick a new seed: another head motion for the same speech"""

    bl_idname = "talking_head.new_variation"
    bl_label = "New Variation"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = _settings(context)
        settings.seed = random.randrange(1, 2**31 - 1)
        return {"FINISHED"}


class TALKINGHEAD_OT_load_audio(bpy.types.Operator):
    """Add a sound file as a sound strip at the current frame and animate to it"""

    bl_idname = "talking_head.load_audio"
    bl_label = "Load Audio..."
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default=FILE_FILTER, options={"HIDDEN"})  # only what the loader reads

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            strip = session.add_sound_strip(context.scene, self.filepath)
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        _settings(context).strip = strip.name
        return {"FINISHED"}


class TALKINGHEAD_OT_add_template_head(bpy.types.Operator):
    """Add the model's template head: a mesh the model can animate"""

    bl_idname = "talking_head.add_template_head"
    bl_label = "Add Template Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = _settings(context)
        try:
            obj = session.add_head(context.collection, session.bundle_path(settings))
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        settings.target = obj
        if context.view_layer.objects.get(obj.name) is not None:
            for other in context.selected_objects:
                other.select_set(False)
            obj.select_set(True)
            context.view_layer.objects.active = obj
        return {"FINISHED"}


class TALKINGHEAD_OT_emotion_sliders(bpy.types.Operator):
    """Give the Face one emotion slider per emotion of the model (and From Voice): key them to direct the emotion over the take"""

    bl_idname = "talking_head.emotion_sliders"
    bl_label = "Add Emotion Sliders"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from ..blender import emotion

        settings = _settings(context)
        try:
            target = settings.target
            if target is None or target.type != "MESH":
                raise writer.MeshMismatchError("choose the Face (a mesh object) first")
            emotion.sync_sliders(target.data, emotion.slider_labels(session.chosen_bundle(settings)))
        except Exception as exc:
            self.report({"ERROR"}, session.report_message(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


def _discard(request) -> None:
    """Remove the folder a request wrote for its worker (a packed sound, tuning clips)."""
    work_dir = getattr(request, "work_dir", None)
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)


def _redraw(context) -> None:
    screen = context.screen
    for area in screen.areas if screen else ():
        if area.type in {"VIEW_3D", "SEQUENCE_EDITOR"}:
            area.tag_redraw()


CLASSES = (
    TALKINGHEAD_OT_animate,
    TALKINGHEAD_OT_remove_take,
    TALKINGHEAD_OT_sync_to_sound,
    TALKINGHEAD_OT_new_variation,
    TALKINGHEAD_OT_load_audio,
    TALKINGHEAD_OT_add_template_head,
    TALKINGHEAD_OT_emotion_sliders,
)
