"""The worker process: one animation or tuning task, run outside Blender (never imports `bpy`).

    python -m talking_head.core.worker TASK.json

The file holds a task of core/tasks.py (`AnimateTask` or `TuneTask`, as `to_json` writes it).
The worker prints one JSON object per line on stdout:

    {"progress": "generating", "done": 40, "total": 275}
    {"done": "OUT/animation.npz", "template": "OUT/template.npy", "frames": 275}
    {"style": "OUT/style.json", "name": "me"}
    {"error": "audio file not found: ..."}

and exits 0 on success, 2 on a user error, 1 on a crash. An animation task writes the
`Animation` (npz) and the bundle's template vertices (V, 3) as .npy into `out`; a tuning task
writes the style JSON. Cancelling is terminating the process: the result files are written
last and renamed into place, so a killed worker leaves no result.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from .errors import TalkingHeadError
from .tasks import Task, TuneTask, task_from_json

ANIMATION_FILE = "animation.npz"
TEMPLATE_FILE = "template.npy"
STYLE_FILE = "style.json"


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run_task(task: Task) -> dict:
    """Run one task (see the module docstring); returns the final message."""
    if isinstance(task, TuneTask):
        return run_tuning(task)
    from .audio import load_audio

    emit({"progress": "loading", "done": 0, "total": 1})
    samples = load_audio(task.audio)  # check the audio before importing torch
    import numpy as np

    from .pipeline import animate_task

    out = Path(task.out)
    out.mkdir(parents=True, exist_ok=True)

    def progress(stage: str, done: int, total: int) -> None:
        emit({"progress": stage, "done": int(done), "total": int(total)})

    animation, animator = animate_task(task, progress=progress, samples=samples)
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
    }


def run_tuning(task: TuneTask) -> dict:
    """Tune a style on the task's clips (section 9) and write it as OUT/style.json."""
    from .style import MIN_CLIPS, TuningError

    if len(task.clips) < MIN_CLIPS:  # check before importing torch
        raise TuningError(f"tuning needs at least {MIN_CLIPS} clips (one is held out to stop early), got {len(task.clips)}")
    emit({"progress": "loading", "done": 0, "total": 1})
    from .pipeline import load_animator
    from .tuning import TuningClip, read_mesh_sequence, tune_style

    out = Path(task.out)
    out.mkdir(parents=True, exist_ok=True)
    animator = load_animator(task.bundle, task.device)
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
    return {"style": str(out / STYLE_FILE), "name": style.name}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m talking_head.core.worker TASK.json", file=sys.stderr)
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
