"""The worker process: one animation job, run outside Blender (never imports `bpy`).

    python -m talking_head.core.worker JOB.json

JOB.json holds {"audio", "bundle", "out", "subject", "seed", "with_head", "device"}. The worker
prints one JSON object per line on stdout:

    {"progress": "generating", "done": 40, "total": 275}
    {"done": "OUT/animation.npz", "template": "OUT/template.npy", "frames": 275}
    {"error": "audio file not found: ..."}

and exits 0 on success, 2 on a user error, 1 on a crash. It writes the `Animation` (npz) and
the bundle's template vertices (V, 3) as .npy into `out`. Cancelling is terminating the process:
the result files are written last and renamed into place, so a killed worker leaves no result.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from .errors import TalkingHeadError

ANIMATION_FILE = "animation.npz"
TEMPLATE_FILE = "template.npy"


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run_job(job: dict) -> dict:
    """Run one job (see the module docstring); returns the final message."""
    from .audio import load_audio

    emit({"progress": "loading", "done": 0, "total": 1})
    samples = load_audio(job["audio"])  # check the audio before importing torch
    import numpy as np

    from .bundle import ModelBundle
    from .device import resolve_device
    from .pipeline import Animator

    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(job.get("device", "auto"))
    bundle = ModelBundle.load(job["bundle"], device)
    subject = job.get("subject") or None
    if subject:
        bundle.config.subject_index(subject)
    animator = Animator(bundle, device)

    def progress(stage: str, done: int, total: int) -> None:
        emit({"progress": stage, "done": int(done), "total": int(total)})

    animation = animator.animate(
        samples, subject=subject, seed=int(job.get("seed", 0)), with_head=bool(job.get("with_head", True)), progress=progress
    )
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m talking_head.core.worker JOB.json", file=sys.stderr)
        return 2
    try:
        job = json.loads(Path(argv[0]).read_text())
        emit(run_job(job))
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
