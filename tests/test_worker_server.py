"""The worker that stays loaded between Animate clicks (core/worker.py --serve and
blender/worker_client.py `SERVER`): the second task of a bundle does not load it again, a bad
task is only that task's error, a changed bundle is loaded again, a killed worker leaves no
result and the next task starts a new one, and the add-on's unregister stops it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from talking_head.blender import worker_client
from talking_head.blender.worker_client import SERVER, WorkerProcess
from talking_head.core.tasks import AnimateTask, TuneClipFile, TuneTask

from conftest import write_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_worker_left():
    """Each test starts without a serving worker and leaves none."""
    SERVER.close()
    yield
    SERVER.close()


def served(task, python_paths=(), work_dir=None) -> WorkerProcess:
    return WorkerProcess.start(sys.executable, task, list(python_paths), work_dir, persistent=True)


def finish(worker: WorkerProcess, timeout: float = 300):
    """Wait for the task; (result or None, error or None). The task's folder is removed."""
    try:
        return worker.wait(timeout), None
    except worker_client.WorkerError as exc:
        return None, str(exc)
    finally:
        worker.cleanup()


def missing_audio(tmp_path: Path) -> AnimateTask:
    return AnimateTask(audio=str(tmp_path / "missing.wav"), bundle=str(tmp_path), device="cpu")


def test_the_serving_worker_answers_each_line_and_ends_each_task(tmp_path):
    """The protocol, without a model: bad tasks are each one error line, then the end line."""
    task_file = tmp_path / "task.json"
    task_file.write_text(json.dumps(missing_audio(tmp_path).to_json()))
    lines = [
        json.dumps(missing_audio(tmp_path).to_json()),
        str(task_file),
        json.dumps(TuneTask(bundle=str(tmp_path), clips=[TuneClipFile("a.wav", "a.npy")]).to_json()),
        "{not json",
        "",
    ]
    done = subprocess.run([sys.executable, "-c", worker_client.BOOTSTRAP, str(ROOT), "--serve"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # the end of stdin ends the worker
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    errors = [m["error"] for m in messages if "error" in m]
    assert len(errors) == 4 and messages.count({"end": True}) == 4 and messages[-1] == {"end": True}
    assert errors[0] == errors[1] == f"audio file not found: {tmp_path / 'missing.wav'}"
    assert "at least 2 clips" in errors[2] and errors[3].startswith("cannot read the worker task '{not json'")


def test_a_task_given_to_the_server_reports_its_error_and_the_server_waits(tmp_path):
    worker = served(missing_audio(tmp_path))
    process = worker.process
    result, error = finish(worker, 120)
    assert result is None and error == f"audio file not found: {tmp_path / 'missing.wav'}"
    assert not worker.work_dir.exists()
    assert process.poll() is None and SERVER.process is process  # still serving
    worker.cancel()  # cancelling a finished task leaves the worker alone
    assert process.poll() is None
    assert finish(served(missing_audio(tmp_path)), 120)[1] == error and SERVER.process is process


def test_a_new_server_when_it_died_or_its_python_paths_changed(tmp_path):
    first = served(missing_audio(tmp_path))
    finish(first, 120)
    second = served(missing_audio(tmp_path), python_paths=[str(tmp_path)])  # e.g. dependencies installed elsewhere
    finish(second, 120)
    assert second.process is not first.process and first.process.poll() is not None
    second.process.kill()
    second.process.wait()
    third = served(missing_audio(tmp_path), python_paths=[str(tmp_path)])
    assert finish(third, 120)[1].startswith("audio file not found")
    assert third.process is not second.process and SERVER.process is third.process


def test_a_worker_that_cannot_start_says_so_and_leaves_no_folder(tmp_path):
    work_dir = tmp_path / "task"
    work_dir.mkdir()
    with pytest.raises(worker_client.WorkerError, match="cannot start the animation worker"):
        WorkerProcess.start(str(tmp_path / "no-python"), missing_audio(tmp_path), work_dir=work_dir, persistent=True)
    assert not work_dir.exists() and SERVER.process is None


def test_unregister_stops_the_server_and_removes_its_folder(addon, tmp_path):
    import talking_head

    worker = served(missing_audio(tmp_path))
    process, log = worker.process, worker.log_path
    finish(worker, 120)
    assert process.poll() is None and log.is_file()
    talking_head.unregister()
    try:
        assert process.poll() is not None and not log.parent.exists() and SERVER.process is None
    finally:
        talking_head.register()  # the fixture unregisters


@pytest.mark.slow
def test_two_tasks_load_the_bundle_once_and_a_bad_task_between_them_changes_nothing(tiny_bundle_dir, tmp_path):
    first, second = write_clip(tmp_path / "first.wav", 1.6, seed=1), write_clip(tmp_path / "second.wav", 2.2, seed=2)
    bundle = str(tiny_bundle_dir)
    worker = served(AnimateTask(audio=str(first), bundle=bundle, seed=1, device="cpu"))
    process = worker.process
    result, error = finish(worker)
    assert error is None and result.loaded and result.animation.n_frames == 40

    assert finish(served(missing_audio(tmp_path)))[1] == f"audio file not found: {tmp_path / 'missing.wav'}"

    task = AnimateTask(audio=str(second), bundle=bundle, seed=7, with_head=True, device="cpu")
    task.style.subject = "M3"
    result, error = finish(served(task))
    assert error is None and not result.loaded  # the bundle stayed loaded
    assert SERVER.process is process
    from talking_head.core.pipeline import animate_task

    expected, animator = animate_task(task)
    assert result.animation.n_frames == expected.n_frames == 55
    np.testing.assert_allclose(result.animation.vertices, expected.vertices, atol=1e-5)
    np.testing.assert_allclose(result.animation.rotation, expected.rotation, atol=1e-6)
    np.testing.assert_allclose(result.template, animator.bundle.template.vertices, atol=1e-6)


@pytest.mark.slow
def test_a_changed_bundle_is_loaded_again(tiny_bundle_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    clip = write_clip(tmp_path / "clip.wav", 1.0)
    task = AnimateTask(audio=str(clip), bundle=str(bundle), device="cpu")
    loaded = [finish(served(task))[0].loaded, finish(served(task))[0].loaded]
    config = bundle / "config.json"
    later = config.stat().st_mtime + 10
    os.utime(config, (later, later))  # the bundle was saved again
    loaded.append(finish(served(task))[0].loaded)
    assert loaded == [True, False, True]


@pytest.mark.slow
def test_a_killed_server_leaves_no_result_and_the_next_task_starts_a_new_one(tiny_bundle_dir, tmp_path):
    clip = write_clip(tmp_path / "long.wav", 20.0)
    task = AnimateTask(audio=str(clip), bundle=str(tiny_bundle_dir), device="cpu")
    worker = served(task)
    process, result_dir = worker.process, worker.work_dir / "result"
    deadline = time.monotonic() + 300
    while worker.stage in ("Starting", "Loading model") and not worker.poll() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.stage in ("Listening", "Animating") and not worker.finished  # loaded, the 20 s clip not yet animated
    process.kill()  # as the system would, or Blender exiting
    while not worker.poll():
        time.sleep(0.01)
    assert worker.result is None and "stopped (exit code" in worker.error
    assert not any(result_dir.glob("*.np[yz]"))  # results are renamed into place when whole
    worker.cleanup()

    worker = served(AnimateTask(audio=str(write_clip(tmp_path / "short.wav", 1.0)), bundle=str(tiny_bundle_dir), device="cpu"))
    assert worker.process is not process
    result, error = finish(worker)
    assert error is None and result.loaded and result.animation.n_frames == 25

    worker = served(task)  # Esc: cancelling stops the server; the next task starts a new one
    process = worker.process
    while worker.stage in ("Starting", "Loading model") and not worker.poll():
        time.sleep(0.005)
    worker.cancel()
    assert worker.finished and worker.error == "cancelled" and not worker.work_dir.exists()
    assert process.poll() is not None and SERVER.process is None
