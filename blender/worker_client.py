"""Start the animation worker (core/worker.py) in its own Python, read its progress, cancel it.

No `bpy` and no torch here: Blender talks to the worker through a JSON task file (a core/tasks.py
`Task`), JSON progress lines on the worker's stdout and the result files it leaves (an
`Animation` .npz and the template vertices .npy, or a tuned style's JSON). The modal operators
poll `WorkerProcess.poll()` from a timer; scripts, tests and the headless `bake` command call
`WorkerProcess.wait()`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.animation import Animation
from ..core.errors import TalkingHeadError
from ..core.bootstrap import bootstrap
from ..core.tasks import Task

# The extension folder, which is also the package `talking_head`.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

# Runs the worker with the extension's own code as `talking_head`, wherever the folder lives
# and whatever the folder is called (Blender installs it as `.../extensions/<repo>/talking_head`).
BOOTSTRAP = bootstrap("core.worker")

STAGE_NAMES = {
    "loading": "Loading model",
    "encoding": "Listening",
    "generating": "Animating",
    "preparing": "Reading clips",
    "tuning": "Tuning",
    "saving": "Saving",
}
# Share of the progress bar each stage fills, in order (animation: loading, encoding,
# generating, saving; tuning: loading, preparing, tuning, saving).
STAGE_SPANS = {
    "loading": (0.0, 0.1),
    "encoding": (0.1, 0.2),
    "generating": (0.2, 0.95),
    "preparing": (0.1, 0.3),
    "tuning": (0.3, 0.95),
    "saving": (0.95, 1.0),
}


class WorkerError(TalkingHeadError):
    """The worker stopped without a result: its message says why."""


@dataclass
class WorkerResult:
    """What a finished animation task hands back: the animation and the template it was made on (V, 3)."""

    animation: Animation
    template: np.ndarray
    trained: bool = True


@dataclass
class TuneResult:
    """What a finished tuning task hands back: the style file's content (core/style.py `Style`)."""

    style: dict


@dataclass
class WorkerProcess:
    """One running worker process (the handle; what it was asked is a core/tasks.py `Task`)."""

    process: subprocess.Popen
    work_dir: Path
    messages: "queue.Queue[dict | None]"
    log_path: Path
    progress: float = 0.0
    stage: str = "Starting"
    result: WorkerResult | TuneResult | None = None
    error: str | None = None
    finished: bool = False
    _reader: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(cls, python: str, task: Task, python_paths: list[str] = (), work_dir: Path | None = None) -> "WorkerProcess":
        """Start `python` on `task` (see core/worker.py). `work_dir`, a fresh temporary folder by
        default, holds the task's files and is deleted with everything in it by `cleanup()`."""
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="talking_head_"))
        task = dataclasses.replace(task, out=str(work_dir / "result"))
        task_path = work_dir / "task.json"
        task_path.write_text(json.dumps(task.to_json()))
        env = dict(os.environ)
        if python_paths:
            env["PYTHONPATH"] = os.pathsep.join([*python_paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log_path = work_dir / "worker.log"
        with open(log_path, "wb") as log:
            try:
                process = subprocess.Popen(
                    [python, "-c", BOOTSTRAP, str(PACKAGE_ROOT), str(task_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                    cwd=str(work_dir),
                )
            except OSError as exc:
                shutil.rmtree(work_dir, ignore_errors=True)
                raise WorkerError(f"cannot start the animation worker {python!r}: {exc}") from None
        messages: queue.Queue = queue.Queue()
        self = cls(process=process, work_dir=work_dir, messages=messages, log_path=log_path)
        self._reader = threading.Thread(target=_read_lines, args=(process.stdout, messages), daemon=True)
        self._reader.start()
        return self

    def poll(self) -> bool:
        """Take in what the worker said since the last call; True once it has finished."""
        while not self.finished:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return False
            self._take(message)
        return True

    def wait(self, timeout: float | None = None) -> WorkerResult:
        """Block until the worker finishes; return its result or raise `WorkerError`."""
        while not self.finished:
            try:
                message = self.messages.get(timeout=timeout)
            except queue.Empty:
                self.cancel()
                raise WorkerError(f"the animation worker took longer than {timeout:.0f} s and was stopped") from None
            self._take(message)
        if self.result is None:
            raise WorkerError(self.error or "the animation worker stopped without a result")
        return self.result

    def cancel(self) -> None:
        """Stop the worker now and delete its files; nothing it did reaches the scene."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.finished:
            self.finished, self.error = True, "cancelled"
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _take(self, message: dict | None) -> None:
        if message is None:  # stdout closed: the process has ended
            code = self.process.wait()
            self.finished = True
            if self.result is None and self.error is None:
                self.error = f"the animation worker stopped (exit code {code}) without a result; {self._log_tail()}"
            return
        if "progress" in message:
            stage = message["progress"]
            low, high = STAGE_SPANS.get(stage, (self.progress, self.progress))
            total = max(1, int(message.get("total", 1)))
            self.progress = low + (high - low) * min(1.0, int(message.get("done", 0)) / total)
            self.stage = STAGE_NAMES.get(stage, stage)
        elif "error" in message:
            self.error = message["error"]
        elif "style" in message:
            try:
                style = json.loads(Path(message["style"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                self.error = f"the tuning worker's style file cannot be read: {exc}"
                return
            self.result = TuneResult(style)
            self.progress, self.stage = 1.0, "Done"
        elif "done" in message:
            try:
                animation = Animation.load_npz(message["done"])
                template = np.load(message["template"], allow_pickle=False)
            except TalkingHeadError as exc:
                self.error = str(exc)
                return
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                self.error = f"the animation worker's result cannot be read: {type(exc).__name__}: {exc}"
                return
            self.result = WorkerResult(animation, template, bool(message.get("trained", True)))
            self.progress, self.stage = 1.0, "Done"

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f"last log line: {lines[-1]}" if lines else "no log output"


def _read_lines(stream, messages: queue.Queue) -> None:
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("{"):
            continue  # something a library printed; the protocol is JSON lines only
        try:
            messages.put(json.loads(line))
        except json.JSONDecodeError:
            continue
    stream.close()
    messages.put(None)


def run_worker(python: str, task: Task, python_paths: list[str] = (), timeout: float | None = None) -> WorkerResult | TuneResult:
    """Start a worker and wait for it: the synchronous path (scripts, tests, `bake`)."""
    worker = WorkerProcess.start(python, task, python_paths)
    try:
        return worker.wait(timeout)
    finally:
        worker.cleanup()


def default_python() -> str:
    return sys.executable
