"""The worker process: animation and tuning tasks, run outside Blender (never imports `bpy`).

    python -m talking_head.core.worker TASK.json      one task, then exit
    python -m talking_head.core.worker --serve        tasks one per line on stdin, the bundle kept loaded

The file holds a task of core/tasks.py (`AnimateTask` or `TuneTask`, as `to_json` writes it).
The worker prints one JSON object per line on stdout:

    {"progress": "generating", "done": 40, "total": 275}
    {"done": "OUT/animation.npz", "template": "OUT/template.npy", "frames": 275, "loaded": true, "loads": 1}
    {"style": "OUT/style.json", "name": "me", "loaded": false, "loads": 1}
    {"error": "audio file not found: ..."}

and exits 0 on success, 2 on a user error, 1 on a crash. An animation task writes the
`Animation` (npz) and the bundle's template vertices (V, 3) as .npy into `out`; a tuning task
writes the style JSON. Cancelling is terminating the process: the result files are written
last and renamed into place, so a killed worker leaves no result.

Serving (what Blender runs, blender/worker_client.py `WorkerServer`): each line on stdin is a
task file's path or a task's JSON. The tasks run one after another with the bundle loaded once
(`AnimatorCache`); each task's messages end with the line {"end": true}. A result says whether
this task loaded the bundle (`loaded`) and how many loads the worker has made (`loads`). A user
error is that task's {"error": ...} and the worker waits for the next task; a crash prints its
error and exits 1; the end of stdin (Blender closed the pipe, or exited) exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from .errors import TalkingHeadError
from .tasks import Task, TaskError, TuneTask, task_from_json

ANIMATION_FILE = "animation.npz"
TEMPLATE_FILE = "template.npy"
STYLE_FILE = "style.json"
END = {"end": True}  # a served task's last line
# The bundle's files whose change makes the serving worker load it again: its top-level files
# (config.json, model.safetensors, template.ply) and its encoder folders.
ENCODERS_FOLDER = "encoders"


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class AnimatorCache:
    """The loaded bundle a serving worker keeps between tasks (core/pipeline.py `Animator`). It is
    loaded again when a task asks for another bundle, device or precision, or when the bundle's
    files changed (their modification times and sizes); the old one is dropped first."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.animator = None
        self.loads = 0  # bundles loaded so far
        self.loaded = False  # whether the last `get` loaded one

    def get(self, bundle: str, device: str = "auto", precision: str = "auto"):
        from .device import resolve_device
        from .pipeline import load_animator

        device = resolve_device(device)
        key = (str(Path(bundle).resolve()), bundle_stamp(bundle), device, precision)
        self.loaded = key != self.key or self.animator is None
        if self.loaded:
            self.key = self.animator = None  # a failed load leaves nothing cached
            self.animator = load_animator(bundle, device, precision)
            self.key, self.loads = key, self.loads + 1
        return self.animator

    def report(self) -> dict:
        return {"loaded": self.loaded, "loads": self.loads}


def bundle_stamp(bundle: str | Path) -> tuple:
    """(relative path, mtime_ns, size) of the bundle's model files, sorted: what tells a changed bundle."""
    root = Path(bundle)
    if not root.is_dir():
        return ()
    files = [p for p in root.iterdir() if p.is_file()]
    if (root / ENCODERS_FOLDER).is_dir():
        files += [p for p in (root / ENCODERS_FOLDER).rglob("*") if p.is_file()]
    stamp = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        stamp.append((str(path.relative_to(root)), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(stamp))


def run_task(task: Task, cache: AnimatorCache | None = None) -> dict:
    """Run one task (see the module docstring); returns the final message. With `cache`, the
    bundle comes from it (serving); without, it is loaded for this task alone."""
    if isinstance(task, TuneTask):
        return run_tuning(task, cache)
    from .audio import load_audio

    emit({"progress": "loading", "done": 0, "total": 1})
    samples = load_audio(task.audio)  # check the audio before importing torch
    job = None
    if cache is None or cache.animator is None:  # the model is still to load: phones are heard beside it
        from .phone_loop import start_for

        job = start_for(task, samples)
    import numpy as np

    from .pipeline import animate_task

    out = Path(task.out)
    out.mkdir(parents=True, exist_ok=True)

    def progress(stage: str, done: int, total: int) -> None:
        emit({"progress": stage, "done": int(done), "total": int(total)})

    try:
        animator = cache.get(task.bundle, task.device, task.precision) if cache is not None else None
    except BaseException:
        if job is not None:
            job.cancel()
        raise
    animation, animator = animate_task(task, animator=animator, progress=progress, samples=samples, phone_job=job)
    bundle = animator.bundle
    emit({"progress": "saving", "done": 0, "total": 1})
    # Write under temporary names, then rename: a result file is always complete.
    partial_npz, partial_npy = out / ("partial_" + ANIMATION_FILE), out / ("partial_" + TEMPLATE_FILE)
    animation.save_npz(partial_npz)
    np.save(partial_npy, bundle.template.vertices.astype(np.float32))
    os.replace(partial_npy, out / TEMPLATE_FILE)
    os.replace(partial_npz, out / ANIMATION_FILE)
    return {
        "done": str(out / ANIMATION_FILE),
        "template": str(out / TEMPLATE_FILE),
        "frames": animation.n_frames,
        "trained": bool(bundle.config.trained),
        "note": "; ".join(n for n in (animator.eyes_problem if task.blinks and animation.blink_weights is None else "",
                                      animator.pauses_problem if task.rest_in_pauses else "",
                                      animator.recognise_problem if task.recognise and not task.transcript else "") if n),
        **(cache.report() if cache is not None else {"loaded": True, "loads": 1}),
    }


def run_tuning(task: TuneTask, cache: AnimatorCache | None = None) -> dict:
    """Tune a style on the task's clips (section 9) and write it as OUT/style.json. Tuning leaves
    the bundle's weights as they are, so a served worker's loaded bundle serves it too."""
    from .style import MIN_CLIPS, TuningError

    if len(task.clips) < MIN_CLIPS:  # check before importing torch
        raise TuningError(f"tuning needs at least {MIN_CLIPS} clips (one is held out to stop early), got {len(task.clips)}")
    emit({"progress": "loading", "done": 0, "total": 1})
    from .pipeline import load_animator
    from .tuning import TuningClip, read_mesh_sequence, tune_style

    out = Path(task.out)
    out.mkdir(parents=True, exist_ok=True)
    animator = cache.get(task.bundle, task.device) if cache is not None else load_animator(task.bundle, task.device)
    n_vertices = animator.bundle.config.n_vertices
    clips = [TuningClip(c.audio, c.mesh, read_mesh_sequence(c.mesh, n_vertices)) for c in task.clips]
    emit({"progress": "preparing", "done": 0, "total": 1})

    def progress(done: int, total: int) -> None:
        emit({"progress": "tuning", "done": int(done), "total": int(total)})

    style = tune_style(animator, clips, [], task.name or "style", task.mode, task.speaking_style or None, progress=progress)
    style.clips = [list(c.label or (c.audio, c.mesh)) for c in task.clips]
    emit({"progress": "saving", "done": 0, "total": 1})
    partial = out / ("partial_" + STYLE_FILE)
    style.save(partial)
    os.replace(partial, out / STYLE_FILE)
    return {"style": str(out / STYLE_FILE), "name": style.name,
            **(cache.report() if cache is not None else {"loaded": True, "loads": 1})}


def read_task(line: str) -> Task:
    """The task a served line names: its JSON, or the path of a task file."""
    line = line.strip()
    try:
        return task_from_json(json.loads(line if line.startswith("{") else Path(line).read_text()))
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read the worker task {line[:80]!r}: {exc}") from None


def serve(lines) -> int:
    """Run each task line with the bundle kept loaded (see the module docstring)."""
    cache = AnimatorCache()
    for line in lines:
        if not line.strip():
            continue
        try:
            emit(run_task(read_task(line), cache))
        except TalkingHeadError as exc:
            emit({"error": str(exc)})
        except Exception as exc:  # a crash: the loaded state may be broken, so the worker ends
            traceback.print_exc(file=sys.stderr)
            emit({"error": f"the animation worker crashed: {type(exc).__name__}: {exc}"})
            return 1
        emit(END)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve(iter(sys.stdin.readline, ""))
    if len(argv) != 1 or argv[0].startswith("--"):
        print("usage: python -m talking_head.core.worker TASK.json | --serve", file=sys.stderr)
        return 2
    try:
        task = task_from_json(json.loads(Path(argv[0]).read_text()))
        emit(run_task(task))
        return 0
    except TalkingHeadError as exc:
        emit({"error": str(exc)})
        return 2
    except Exception as exc:  # a crash: say so in one line, keep the traceback for the log
        traceback.print_exc(file=sys.stderr)
        emit({"error": f"the animation worker crashed: {type(exc).__name__}: {exc}"})
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
