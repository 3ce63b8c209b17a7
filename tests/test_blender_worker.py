"""The worker process and the dependency set-up, without running the model."""

from __future__ import annotations

import sys

import pytest

from talking_head.blender import dependencies
from talking_head.blender.worker_client import WorkerError, run_worker
from talking_head.core.tasks import AnimateTask, TuneClipFile, TuneTask, task_from_json


def test_worker_reports_a_user_error_in_one_line(tmp_path):
    task = AnimateTask(audio=str(tmp_path / "missing.wav"), bundle=str(tmp_path))
    with pytest.raises(WorkerError, match="audio file not found"):
        run_worker(sys.executable, task, timeout=120)


def test_tuning_worker_reports_too_few_clips_in_one_line(tmp_path):
    task = TuneTask(bundle=str(tmp_path), clips=[TuneClipFile("a.wav", "a.npy")])
    with pytest.raises(WorkerError, match="at least 2 clips"):
        run_worker(sys.executable, task, timeout=120)


def test_worker_that_cannot_start_says_so(tmp_path):
    with pytest.raises(WorkerError, match="cannot start the animation worker"):
        run_worker(str(tmp_path / "no-python"), AnimateTask(audio="x.wav", bundle="."))


def test_tasks_cross_the_worker_boundary_unchanged():
    from talking_head.core.tasks import StyleChoice, TaskError

    animate = AnimateTask("a.wav", "bundle", style=StyleChoice(file="me.json", subject="M3"),
                          blend_with=StyleChoice(subject="F2"), blend_weight=0.25, seed=7, with_head=False, device="cpu")
    tune = TuneTask("bundle", [TuneClipFile("a.wav", "a.npy", ["Strip", "Face"])], name="me", speaking_style="M3")
    for task in (animate, tune):
        assert task_from_json(task.to_json()) == task
    with pytest.raises(TaskError, match="not a Talking Head worker task"):
        task_from_json({"task": "render"})
    with pytest.raises(TaskError, match="broken animate task"):
        task_from_json({"task": "animate", "bundle": "b"})


def test_missing_python_says_what_to_do(tmp_path):
    with pytest.raises(dependencies.MissingDependencies, match="Install dependencies"):
        dependencies.worker_python(str(tmp_path / "python-that-is-not-there"))
    ready, message = dependencies.status(str(tmp_path / "python-that-is-not-there"))
    assert not ready and "Preferences" in message


def test_this_python_has_torch_so_the_worker_can_run_here():
    python, paths = dependencies.worker_python("")
    assert python == sys.executable


# The install commands (one flavour per --index-url, pinned versions) are tested in test_dependencies.py.


def test_operators_print_a_bugs_traceback_but_report_a_user_error_alone(capsys):
    pytest.importorskip("bpy")
    from talking_head.blender import session
    from talking_head.core.errors import AudioError

    assert session.report_message(AudioError("audio file not found: x.wav")) == "audio file not found: x.wav"
    assert capsys.readouterr().err == ""
    try:
        {}["missing"]
    except KeyError as exc:
        line = session.report_message(exc)
    assert line.startswith("KeyError: 'missing'") and "\n" not in line
    assert "Traceback" in capsys.readouterr().err
