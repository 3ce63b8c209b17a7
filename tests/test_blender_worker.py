"""The worker process and the dependency set-up, without running the model."""

from __future__ import annotations

import sys

import pytest

from talking_head.blender import dependencies
from talking_head.blender.worker_client import WorkerError, run_worker


def test_worker_reports_a_user_error_in_one_line(tmp_path):
    job = {"audio": str(tmp_path / "missing.wav"), "bundle": str(tmp_path), "seed": 0}
    with pytest.raises(WorkerError, match="audio file not found"):
        run_worker(sys.executable, job, timeout=120)


def test_tuning_worker_reports_too_few_clips_in_one_line(tmp_path):
    job = {"task": "tune", "bundle": str(tmp_path), "clips": [{"audio": "a.wav", "mesh": "a.npy"}]}
    with pytest.raises(WorkerError, match="at least 2 clips"):
        run_worker(sys.executable, job, timeout=120)


def test_worker_that_cannot_start_says_so(tmp_path):
    with pytest.raises(WorkerError, match="cannot start the animation worker"):
        run_worker(str(tmp_path / "no-python"), {"audio": "x.wav", "bundle": "."})


def test_missing_python_says_what_to_do(tmp_path):
    with pytest.raises(dependencies.MissingDependencies, match="Install dependencies"):
        dependencies.worker_python(str(tmp_path / "python-that-is-not-there"))
    ready, message = dependencies.status(str(tmp_path / "python-that-is-not-there"))
    assert not ready and "Preferences" in message


def test_this_python_has_torch_so_the_worker_can_run_here():
    python, paths = dependencies.worker_python("")
    assert python == sys.executable


def test_install_command_targets_the_extension_folder(tmp_path):
    cpu = dependencies.install_command(tmp_path, cuda=False)
    assert cpu[1:4] == ["-m", "pip", "install"] and str(tmp_path) in cpu and "torch" in cpu
    if sys.platform != "darwin":
        assert cpu[cpu.index("--extra-index-url") + 1].endswith("/cpu")
        cuda = dependencies.install_command(tmp_path, cuda=True)
        assert cuda[cuda.index("--extra-index-url") + 1].endswith("/cu126")
