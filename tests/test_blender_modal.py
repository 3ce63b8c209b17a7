"""The Animate button's background run (invoke + modal), driven by hand: under the bpy module
timers and modal handlers never fire, so these tests call modal() with timer events and a
stand-in window manager. However the run ends, Animate is usable again, the progress is
cleared, the worker's folder is gone and a failed run leaves the scene as it was."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
soundfile = pytest.importorskip("soundfile")

import talking_head  # noqa: E402
from talking_head.blender import worker_client, writer  # noqa: E402
from talking_head.blender.worker_client import WorkerProcess  # noqa: E402
from talking_head.core.animation import Animation  # noqa: E402
from talking_head.core.bundle_info import read_bundle_info  # noqa: E402
from talking_head.core.errors import TalkingHeadError  # noqa: E402
from talking_head.operators.animate import TALKINGHEAD_OT_animate, WorkerOperator  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle  # noqa: E402

from conftest import write_clip  # noqa: E402

VERTICES = 200


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("modal")
    make_tiny_bundle(root / "small", n_vertices=VERTICES)
    silent = root / "silent.wav"
    soundfile.write(silent, np.zeros(16_000, np.float32), 16_000)
    return {"small": root / "small", "clip": write_clip(root / "clip.wav", 1.0), "silent": silent}


@pytest.fixture
def scene(data):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    talking_head.register()
    scene = bpy.context.scene
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder = "FOLDER", str(data["small"])
    assert bpy.ops.talking_head.add_template_head() == {"FINISHED"}
    assert bpy.ops.talking_head.load_audio(filepath=str(data["clip"])) == {"FINISHED"}
    settings.device = "cpu"
    scene.frame_start, scene.frame_end = 7, 70
    yield scene
    talking_head.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


class WindowManager:
    """What the operator asks of bpy's window manager, recorded."""

    def __init__(self, fail_on: str = "") -> None:
        self.timers: list = []
        self.progress = None
        self.handler = None
        self.fail_on = fail_on

    def event_timer_add(self, step, window=None):
        if self.fail_on == "timer":
            raise RuntimeError("no timer today")
        self.timers.append(object())
        return self.timers[-1]

    def event_timer_remove(self, timer) -> None:
        self.timers.remove(timer)

    def modal_handler_add(self, operator) -> None:
        self.handler = operator

    def progress_begin(self, low, high) -> None:
        self.progress = low

    def progress_update(self, value) -> None:
        self.progress = value

    def progress_end(self) -> None:
        self.progress = None


class Workspace:
    status = None

    def status_text_set(self, text) -> None:
        self.status = text


class Context:
    def __init__(self, scene, wm: WindowManager) -> None:
        self.scene, self.window_manager, self.workspace = scene, wm, Workspace()
        self.window = self.screen = None


class Event:
    def __init__(self, kind: str) -> None:
        self.type = kind


class FinishedProcess:
    """A worker process that has already exited."""

    returncode = 0

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode

    def terminate(self) -> None:
        pass

    kill = terminate


def animation_for(template: np.ndarray, n_frames: int = 5) -> Animation:
    rng = np.random.default_rng(0)
    faces = (template[None] + 1e-3 * rng.standard_normal((n_frames, *template.shape))).astype(np.float32)
    return Animation(
        vertices=faces, neutral=faces.copy(), emotional=faces.copy(),
        rotation=np.repeat(np.eye(3, dtype=np.float32)[None], n_frames, 0),
        translation=np.zeros((n_frames, 3), np.float32),
        emotion_probs=np.full((n_frames, 2), 0.5, np.float32), emotion_labels=["neutral", "happy"],
        pivot=np.zeros(3, np.float32),
    )


class Animate(WorkerOperator):
    """The Animate operator with its worker replaced by one that has already finished: its
    messages are the worker protocol's last lines, its result files are in its own folder."""

    prepare = TALKINGHEAD_OT_animate.prepare
    apply = TALKINGHEAD_OT_animate.apply
    summary = TALKINGHEAD_OT_animate.summary

    def __init__(self, tmp_path: Path, n_vertices: int = VERTICES) -> None:
        self.tmp_path, self.n_vertices, self.reports, self.worker = tmp_path, n_vertices, [], None

    def start(self, request):
        work_dir = self.tmp_path / "worker"
        work_dir.mkdir()
        template = read_bundle_info(request.task.bundle).template().vertices[: self.n_vertices]
        animation_for(template).save_npz(work_dir / "animation.npz")
        np.save(work_dir / "template.npy", template)
        messages = queue.Queue()
        for message in ({"progress": "generating", "done": 3, "total": 5},
                        {"done": str(work_dir / "animation.npz"), "template": str(work_dir / "template.npy"), "frames": 5},
                        None):
            messages.put(message)
        self.worker = WorkerProcess(FinishedProcess(), work_dir, messages, work_dir / "worker.log")
        return self.worker

    def report(self, kind, message) -> None:
        self.reports.append((next(iter(kind)), message))


def run_modal(operator, context, events=("TIMER",)):
    result = operator.invoke(context, Event("LEFTMOUSE"))
    if result != {"RUNNING_MODAL"}:
        return result
    assert context.scene.talking_head.running and context.window_manager.handler is operator
    for kind in events:
        result = operator.modal(context, Event(kind))
        if result not in ({"RUNNING_MODAL"}, {"PASS_THROUGH"}):
            return result
    return result


def assert_ended_cleanly(operator, context, scene_before: dict) -> None:
    settings = context.scene.talking_head
    assert not settings.running and settings.status == "" and settings.progress == 0.0
    assert context.window_manager.timers == [] and context.window_manager.progress is None
    assert context.workspace.status is None
    assert operator.worker is None or not operator.worker.work_dir.exists()
    assert scene_state(context.scene) == scene_before
    assert TALKINGHEAD_OT_animate.poll(bpy.context)  # the button is usable again


def scene_state(scene) -> dict:
    obj = scene.talking_head.target
    return {"take": writer.has_take(obj), "shape_keys": obj.data.shape_keys is not None,
            "actions": len(bpy.data.actions), "range": (scene.frame_start, scene.frame_end)}


@pytest.mark.parametrize("failure, expected", [
    (TalkingHeadError("not a Talking Head animation file (truncated): x.npz"), "not a Talking Head animation file (truncated): x.npz"),
    (KeyError("emotional"), "the animation worker's result cannot be read: KeyError: 'emotional'"),
    (RuntimeError("a bug in reading"), "RuntimeError: a bug in reading (traceback in the system console)"),
])
def test_a_result_that_cannot_be_read_ends_the_run_cleanly(scene, tmp_path, monkeypatch, capsys, failure, expected):
    def load_npz(path):
        raise failure

    monkeypatch.setattr(worker_client.Animation, "load_npz", load_npz)
    context, before = Context(scene, WindowManager()), scene_state(scene)
    operator = Animate(tmp_path)
    assert run_modal(operator, context) == {"CANCELLED"}
    assert operator.reports == [("ERROR", expected)]
    assert_ended_cleanly(operator, context, before)
    assert ("Traceback" in capsys.readouterr().err) == isinstance(failure, RuntimeError)  # only a bug's


def test_a_worker_whose_polling_fails_is_stopped_and_removed(scene, tmp_path):
    context, before = Context(scene, WindowManager()), scene_state(scene)
    operator = Animate(tmp_path)
    assert operator.invoke(context, Event("LEFTMOUSE")) == {"RUNNING_MODAL"}
    cancelled = []
    operator.worker.poll = lambda: (_ for _ in ()).throw(TalkingHeadError("the worker said nonsense"))
    operator.worker.cancel = lambda original=operator.worker.cancel: (cancelled.append(True), original())
    assert operator.modal(context, Event("TIMER")) == {"CANCELLED"}
    assert operator.reports == [("ERROR", "the worker said nonsense")] and cancelled
    assert_ended_cleanly(operator, context, before)
    assert operator.modal(context, Event("TIMER")) == {"CANCELLED"}  # a late event finds nothing to do


@pytest.mark.parametrize("failure", ["mismatch", "bug"])
def test_a_result_that_cannot_be_written_leaves_the_scene_unchanged(scene, tmp_path, monkeypatch, capsys, failure):
    if failure == "mismatch":  # a result for another topology: the writer refuses it before touching the scene
        operator, expected = Animate(tmp_path, n_vertices=VERTICES - 1), "has 200 vertices but the model bundle's template has 199"
    else:
        def write_take(*args, **kwargs):
            raise KeyError("shape key")

        monkeypatch.setattr(writer, "write_take", write_take)
        operator, expected = Animate(tmp_path), "KeyError: 'shape key' (traceback in the system console)"
    context, before = Context(scene, WindowManager()), scene_state(scene)
    assert run_modal(operator, context) == {"CANCELLED"}
    [(kind, message)] = operator.reports
    assert kind == "ERROR" and expected in message and "\n" not in message
    assert_ended_cleanly(operator, context, before)
    assert ("Traceback" in capsys.readouterr().err) == (failure == "bug")


def test_a_finished_run_writes_the_take_and_removes_the_worker_folder(scene, tmp_path):
    context = Context(scene, WindowManager())
    operator = Animate(tmp_path)
    assert run_modal(operator, context) == {"FINISHED"}
    assert operator.reports == [("INFO", "Talking Head: line 'clip', 5 PCA shape keys, frames 1-4")]  # compact: the default
    assert writer.has_take(scene.talking_head.target) and not operator.worker.work_dir.exists()
    assert not scene.talking_head.running and context.window_manager.timers == []


def test_esc_cancels_and_a_failing_start_of_the_timer_cancels_too(scene, tmp_path):
    context, before = Context(scene, WindowManager()), scene_state(scene)
    operator = Animate(tmp_path / "esc")
    (tmp_path / "esc").mkdir()
    assert run_modal(operator, context, events=("MOUSEMOVE", "ESC")) == {"CANCELLED"}
    assert operator.reports == [("WARNING", "Talking Head: cancelled, the scene is unchanged")]
    assert_ended_cleanly(operator, context, before)

    context = Context(scene, WindowManager(fail_on="timer"))
    operator = Animate(tmp_path)
    assert operator.invoke(context, Event("LEFTMOUSE")) == {"CANCELLED"}
    assert operator.reports[0][1].startswith("RuntimeError: no timer today") and context.window_manager.handler is None
    assert_ended_cleanly(operator, context, before)


def test_the_workers_user_error_reaches_blender_as_the_line_the_cli_prints(scene, data):
    """A silent sound: Blender takes the strip, the worker refuses it."""
    settings = scene.talking_head
    assert bpy.ops.talking_head.load_audio(filepath=str(data["silent"])) == {"FINISHED"}
    context, before = Context(scene, WindowManager()), scene_state(scene)
    reports = []

    class RealAnimate(Animate):
        start = TALKINGHEAD_OT_animate.start

        def report(self, kind, message) -> None:
            reports.append((next(iter(kind)), message))

    operator = RealAnimate(Path("."))
    assert operator.invoke(context, Event("LEFTMOUSE")) == {"RUNNING_MODAL"}
    work_dir = operator._worker.work_dir
    result, deadline = {"RUNNING_MODAL"}, time.monotonic() + 120
    while result == {"RUNNING_MODAL"} and time.monotonic() < deadline:
        time.sleep(0.05)
        result = operator.modal(context, Event("TIMER"))
    assert result == {"CANCELLED"} and not work_dir.exists()
    assert_ended_cleanly(operator, context, before)
    cli = subprocess.run([sys.executable, "-m", "talking_head", "animate", str(data["silent"]), "--bundle", str(data["small"]),
                          "--out", str(data["small"].parent / "silent.npz"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2
    assert reports == [("ERROR", cli.stderr.strip().removeprefix("talking-head: error: "))]
    assert settings.strip == "silent"
