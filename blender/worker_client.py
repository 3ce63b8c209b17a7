"""Start the animation worker (core/worker.py) in its own Python, read its progress, cancel it.

No `bpy` and no torch here: Blender talks to the worker through a JSON task (a core/tasks.py
`Task`), JSON progress lines on the worker's stdout and the result files it leaves (an
`Animation` .npz and the template vertices .npy, or a tuned style's JSON). The modal operators
poll `WorkerProcess.poll()` from a timer; scripts, tests and the headless `bake` command call
`WorkerProcess.wait()`.

Two ways to run a task, with the same handle: `WorkerProcess.start(...)` starts a worker for that
task alone (`run_worker`), and `WorkerProcess.start(..., persistent=True)` hands it to `SERVER`,
the worker that stays alive between tasks with the bundle loaded (`core/worker.py --serve`), so
only the first Animate pays for importing torch and loading the model. Cancelling a task stops
that worker; the next task starts a new one.
"""

from __future__ import annotations

import atexit
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
LOG_FILE = "worker.log"  # the worker's stderr, in its folder

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
    loaded: bool = True  # False: a serving worker had the bundle loaded already
    note: str = ""  # what the worker could not add, in one line (e.g. no blinks: no face landmarks)


@dataclass
class TuneResult:
    """What a finished tuning task hands back: the style file's content (core/style.py `Style`)."""

    style: dict
    loaded: bool = True  # False: a serving worker had the bundle loaded already


@dataclass
class WorkerProcess:
    """One task's handle on its worker process: a worker of its own, or the serving worker
    (`WorkerServer`), whose `process` it shares with the tasks before and after it."""

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
    def start(cls, python: str, task: Task, python_paths: list[str] = (), work_dir: Path | None = None,
              persistent: bool = False) -> "WorkerProcess":
        """Start `python` on `task` (see core/worker.py). `work_dir`, a fresh temporary folder by
        default, holds the task's files and is deleted with everything in it by `cleanup()`.
        `persistent`: the task goes to the worker that stays loaded (`SERVER`)."""
        if persistent:
            return SERVER.submit(python, task, python_paths, work_dir)
        work_dir, task = _task_folder(task, work_dir)
        task_path = work_dir / "task.json"
        task_path.write_text(json.dumps(task.to_json()))
        try:
            process = _popen(python, [str(task_path)], python_paths, work_dir, subprocess.DEVNULL)
        except WorkerError:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        messages: queue.Queue = queue.Queue()
        self = cls(process=process, work_dir=work_dir, messages=messages, log_path=work_dir / LOG_FILE)
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
        """Stop the worker now and delete its files; nothing it did reaches the scene. A task that
        has finished leaves its worker alone (a serving worker waits for the next task)."""
        if not self.finished:
            stop_process(self.process)
        if not self.finished:
            self.finished, self.error = True, "cancelled"
        self.cleanup()

    def cleanup(self) -> None:
        """Delete the task's files; a task still running is cancelled first (it would write there)."""
        if not self.finished:
            self.cancel()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _take(self, message: dict | None) -> None:
        if message is None:  # stdout closed: the process has ended
            code = self.process.wait()
            self.finished = True
            if self.result is None and self.error is None:
                self.error = f"the animation worker stopped (exit code {code}) without a result; {self._log_tail()}"
            return
        if "end" in message:  # a serving worker finished this task and waits for the next
            self.finished = True
            if self.result is None and self.error is None:
                self.error = f"the animation worker ended the task without a result; {self._log_tail()}"
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
            self.result = TuneResult(style, bool(message.get("loaded", True)))
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
            self.result = WorkerResult(animation, template, bool(message.get("trained", True)), bool(message.get("loaded", True)),
                                       str(message.get("note", "")))
            self.progress, self.stage = 1.0, "Done"

    def _log_tail(self) -> str:
        return _log_tail(self.log_path)


def _json_lines(stream):
    """The worker's messages, one JSON object per line, until its stdout closes."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("{"):
            continue  # something a library printed; the protocol is JSON lines only
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue
    stream.close()


def _read_lines(stream, messages: queue.Queue) -> None:
    for message in _json_lines(stream):
        messages.put(message)
    messages.put(None)


def _task_folder(task: Task, work_dir: Path | None) -> tuple[Path, Task]:
    """The task's folder (a fresh temporary one by default) and the task writing its result there."""
    work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="talking_head_"))
    return work_dir, dataclasses.replace(task, out=str(work_dir / "result"))


def _popen(python: str, args: list[str], python_paths, folder: Path, stdin) -> subprocess.Popen:
    """`python` running core/worker.py with `args` in `folder`: stdout piped, stderr into its log."""
    env = dict(os.environ)
    if python_paths:
        env["PYTHONPATH"] = os.pathsep.join([*python_paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(folder / LOG_FILE, "wb") as log:
        try:
            return subprocess.Popen(
                [python, "-c", BOOTSTRAP, str(PACKAGE_ROOT), *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=str(folder),
            )
        except OSError as exc:
            raise WorkerError(f"cannot start the animation worker {python!r}: {exc}") from None


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"last log line: {lines[-1]}" if lines else "no log output"


class WorkerServer:
    """The worker that stays alive between tasks with the bundle loaded (core/worker.py --serve).

    Started on the first task. A task is one JSON line on its stdin; its messages, up to the
    worker's {"end": true}, go to that task's `WorkerProcess`, which works as a one-shot worker's
    handle does. A new worker is started when the last one has ended (a crash, or a cancelled
    task: cancelling stops it) or when the Python or its import paths changed; the worker itself
    loads the bundle again when a task names another one or its files changed. One task at a
    time: a task given while another runs gets a one-shot worker. `close()` stops the worker and
    removes its folder (the add-on's unregister and Python's exit call it)."""

    def __init__(self) -> None:
        self._serving: _Serving | None = None
        self._lock = threading.Lock()

    @property
    def process(self) -> subprocess.Popen | None:
        """The serving worker's process while it runs, else None."""
        serving = self._serving
        return serving.process if serving is not None and serving.process.poll() is None else None

    def submit(self, python: str, task: Task, python_paths: list[str] = (), work_dir: Path | None = None) -> "WorkerProcess":
        """Give `task` to the serving worker, started first if need be; returns the task's handle.
        `work_dir` as for `WorkerProcess.start`; it is removed when the worker cannot start."""
        key = (python, tuple(python_paths), os.environ.get("PYTHONPATH", ""))
        with self._lock:
            if self._serving is not None and self._serving.busy():
                return WorkerProcess.start(python, task, python_paths, work_dir)
            work_dir, task = _task_folder(task, work_dir)
            try:
                for _ in range(2):  # a worker found ended when the task is sent: once more with a new one
                    serving = self._running(python, python_paths, key)
                    messages: queue.Queue = queue.Queue()
                    if serving.send(task, messages):
                        return WorkerProcess(process=serving.process, work_dir=work_dir, messages=messages, log_path=serving.log_path)
                    tail = _log_tail(serving.log_path)
                    self._close()
                raise WorkerError(f"the animation worker {python!r} stopped as soon as it started; {tail}")
            except BaseException:
                shutil.rmtree(work_dir, ignore_errors=True)
                raise

    def close(self) -> None:
        """Stop the serving worker (a task it runs ends as stopped) and remove its folder."""
        with self._lock:
            self._close()

    def _running(self, python: str, python_paths, key: tuple) -> "_Serving":
        serving = self._serving
        if serving is None or serving.key != key or serving.process.poll() is not None:
            self._close()
            serving = self._serving = _Serving.start(python, python_paths, key)
        return serving

    def _close(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.close()


@dataclass
class _Serving:
    """One serving worker: its process, its folder (the log), what started it (`key`) and the
    message queue of the task it runs (`current`, None while it waits)."""

    process: subprocess.Popen
    folder: Path
    key: tuple
    current: "queue.Queue[dict | None] | None" = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE

    @classmethod
    def start(cls, python: str, python_paths, key: tuple) -> "_Serving":
        folder = Path(tempfile.mkdtemp(prefix="talking_head_worker_"))
        try:
            process = _popen(python, ["--serve"], python_paths, folder, subprocess.PIPE)
        except WorkerError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self = cls(process, folder, key)
        threading.Thread(target=self._route, daemon=True).start()
        return self

    def busy(self) -> bool:
        with self.lock:
            return self.current is not None and self.process.poll() is None

    def send(self, task: Task, messages: queue.Queue) -> bool:
        """Give the worker `task`, its messages to go to `messages`; False when the worker has ended."""
        with self.lock:
            self.current = messages
        try:
            self.process.stdin.write((json.dumps(task.to_json()) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except (OSError, ValueError):  # a broken pipe, or a closed one: the worker has ended
            with self.lock:
                self.current = None
            return False
        return True

    def close(self) -> None:
        stop_process(self.process)
        try:
            self.process.stdin.close()
        except OSError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def _route(self) -> None:
        """Hand each message to the task it belongs to; when the worker ends, tell that task."""
        for message in _json_lines(self.process.stdout):
            with self.lock:
                target = self.current
                if "end" in message:
                    self.current = None
            if target is not None:
                target.put(message)
        with self.lock:
            target, self.current = self.current, None
        if target is not None:
            target.put(None)


# The one worker of this Blender session that stays loaded between tasks.
SERVER = WorkerServer()
atexit.register(SERVER.close)


def close_server() -> None:
    """Stop the worker that stays loaded (the add-on's unregister)."""
    SERVER.close()


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a worker that is still running, and kill it if it has not ended 5 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(python: str, task: Task, python_paths: list[str] = (), timeout: float | None = None) -> WorkerResult | TuneResult:
    """Start a worker and wait for it: the synchronous path (scripts, tests, `bake`)."""
    worker = WorkerProcess.start(python, task, python_paths)
    try:
        return worker.wait(timeout)
    finally:
        worker.cleanup()


def default_python() -> str:
    return sys.executable
