"""How long Animate takes on the worker path, as the panel runs it: the first click (the worker
starts, imports torch and loads the bundle), then clicks on the warm worker that stayed loaded,
and for comparison clicks that each start a worker of their own (as before it stayed loaded).

    .venv/bin/python bench/worker_path.py [--bundle weights/demo] [--audio samples/demo_speech.wav]
                                          [--clicks 3] [--one-shot 1] [--write] [--device cpu] [--threads N]

A click: `session.prepare` (checks, the task) -> `session.start` -> `poll()` every 0.1 s, as the
panel's timer does, until the result .npz and template are read back in Blender's Python; with
`--write`, `session.apply` then writes the take onto the template head (the panel's default:
compact shape keys), timed apart. Prints seconds per click and where the time went (the stage
the worker reported at each poll, so to about 0.1 s). `--threads N` starts the workers with
OMP_NUM_THREADS=N (torch's threads; default: torch's choice, one per core): on a CPU that other jobs
share, one thread can be many times faster than two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.1  # the modal operator's timer step (operators/animate.py)


def click(scene, settings, persistent: bool) -> tuple[float, dict[str, float], object, object]:
    """One Animate click without writing: (seconds, seconds per stage, request, result)."""
    from talking_head.blender import session
    from talking_head.blender.worker_client import WorkerProcess

    began = time.perf_counter()
    request = session.prepare(scene, settings)
    if persistent:
        worker = session.start(request)
    else:
        worker = WorkerProcess.start(request.python, request.task, request.python_paths, request.work_dir)
    stages: dict[str, float] = {}
    stage, since = "Starting", began
    try:
        while not worker.poll():
            time.sleep(POLL_S)
            if worker.stage != stage:
                now = time.perf_counter()
                stages[stage] = stages.get(stage, 0.0) + now - since
                stage, since = worker.stage, now
        now = time.perf_counter()
        stages[stage] = stages.get(stage, 0.0) + now - since
        if worker.result is None:
            raise SystemExit(f"the worker failed: {worker.error}")
        return now - began, stages, request, worker.result
    finally:
        worker.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--audio", type=Path, default=ROOT / "samples" / "demo_speech.wav")
    parser.add_argument("--clicks", type=int, default=3, help="clicks on the warm worker")
    parser.add_argument("--one-shot", type=int, default=1, help="clicks that each start their own worker")
    parser.add_argument("--write", action="store_true", help="also write each take into the scene (session.apply)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the worker (0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the workers inherit Blender's environment

    import bpy

    import talking_head
    from talking_head.blender import session, worker_client

    bpy.ops.wm.read_factory_settings(use_empty=True)
    talking_head.register()
    try:
        scene = bpy.context.scene
        settings = scene.talking_head
        settings.bundle_source, settings.bundle_folder, settings.device = "FOLDER", str(args.bundle.resolve()), args.device
        settings.target = session.add_head(scene.collection, str(args.bundle.resolve()))
        settings.strip = session.add_sound_strip(scene, str(args.audio.resolve()), frame=1).name
        threads = args.threads or "torch's choice"
        print(f"bundle {args.bundle}, audio {args.audio.name}, device {args.device}, worker threads: {threads}, "
              f"{os.cpu_count()} cores, polling every {POLL_S} s; load average before: {_load()}")

        def report(label: str, persistent: bool) -> float:
            seconds, stages, request, result = click(scene, settings, persistent)
            parts = ", ".join(f"{name} {value:.2f}" for name, value in stages.items())
            line = f"{label}: {seconds:.2f} s to the result in Blender ({parts}; {result.animation.n_frames} frames"
            line += ", bundle loaded)" if result.loaded else ", bundle already loaded)"
            if args.write:
                began = time.perf_counter()
                take = session.apply(scene, settings, request, result)
                line += f"; writing {take.n_shape_keys} shape keys {time.perf_counter() - began:.2f} s"
            print(line, flush=True)
            return seconds

        report("first Animate (new worker)", True)
        warm = [report(f"Animate {n + 2} (warm worker)", True) for n in range(args.clicks)]
        worker_client.close_server()
        one_shot = [report(f"one-shot worker {n + 1}", False) for n in range(args.one_shot)]
        if warm:
            print(f"warm worker: median {statistics.median(warm):.2f} s over {len(warm)} clicks")
        if one_shot:
            print(f"one-shot worker per click: median {statistics.median(one_shot):.2f} s over {len(one_shot)} clicks")
        print(f"load average after: {_load()}")
    finally:
        talking_head.unregister()


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
