"""What a user waits for: `talking-head animate` as a whole process, next to `animate()` alone.

Times, as separate processes (start-up, imports, loading, inference, writing the .npz):
  - the paper-size bundle (wav2vec2-base-sized encoders, BIWI's 23,370 vertices, random
    weights: timing only) on the 11.5 s real recording in ../shared/speech/;
  - the demo bundle (weights/demo) on the 10.5 s sample;
then, in this process, where one run's time goes (imports, bundle, encoders, animate(), save), and
FaceFormer's reference `predict` on the same audio when its source folder is given
(`--faceformer DIR`: bench/faceformer.py; nothing is downloaded).

Targets on the 2-core CPU: paper-size <= 6 s and >= 3.5x faster than FaceFormer's predict;
demo bundle <= 4 s.

Usage: python bench/whole_process.py [--repeat 3] [--paper-bundle DIR] [--faceformer DIR]
       [--device cpu|cuda|auto] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BIWI = SHARED / "biwi" / "BIWI.ply"
REAL_SPEECH = SHARED / "speech" / "real_speech_11s.wav"
DEMO_BUNDLE = ROOT / "weights" / "demo"
DEMO_SAMPLE = ROOT / "samples" / "demo_speech.wav"
CLI = [sys.executable, "-m", "talking_head"]

# Run in a fresh interpreter: where one whole run's time goes, stage by stage.
STAGES = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy, torch
t1 = time.perf_counter()
from talking_head.core.audio import load_audio
from talking_head.core.bundle import ModelBundle
from talking_head.core.pipeline import Animator
t2 = time.perf_counter()
samples = load_audio(sys.argv[2])
bundle = ModelBundle.load(sys.argv[1], sys.argv[4])
t3 = time.perf_counter()
animator = Animator(bundle, sys.argv[4], sys.argv[5])
t4 = time.perf_counter()
animation = animator.animate(samples)
t5 = time.perf_counter()
animation.save_npz(sys.argv[3])
t6 = time.perf_counter()
print(json.dumps({"import torch": t1 - t0, "import talking_head": t2 - t1, "audio + bundle": t3 - t2,
                  "encoders load": t4 - t3, "animate()": t5 - t4, "save .npz": t6 - t5,
                  "transformers imported": "transformers" in sys.modules, "frames": animation.n_frames}))
"""


def whole_process(bundle: Path, audio: Path, out: Path, device: str, precision: str, repeat: int) -> list[float]:
    """Wall seconds of `talking-head animate` runs (a fresh process each)."""
    times = []
    for _ in range(repeat):
        command = [*CLI, "animate", str(audio), "--bundle", str(bundle), "--out", str(out), "--device", device, "--precision", precision]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT.parent)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"talking-head animate failed: {done.stderr.strip().splitlines()[-1]}")
    return times


def stages(bundle: Path, audio: Path, out: Path, device: str, precision: str) -> dict:
    done = subprocess.run([sys.executable, "-c", STAGES, str(bundle), str(audio), str(out), device, precision],
                          capture_output=True, text=True, cwd=ROOT.parent)
    if done.returncode != 0:
        raise SystemExit(f"stage timing failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, times: list[float], target: float) -> float:
    median = statistics.median(times)
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(f"{name}: whole process {median:.2f} s median (runs {runs}); target <= {target:g} s: {'met' if median <= target else 'NOT met'}")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paper-bundle", type=Path, help="an existing paper-size bundle (default: made in a temporary folder)")
    parser.add_argument("--faceformer", type=Path, help="FaceFormer's source folder (faceformer.py, wav2vec.py): time its predict too")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="as animate's (default auto, as the command's)")
    args = parser.parse_args()
    if not REAL_SPEECH.is_file():
        raise SystemExit(f"the real recording is missing: {REAL_SPEECH}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paper = args.paper_bundle
        if paper is None:
            from talking_head.training.tiny import make_tiny_bundle

            paper = tmp / "paper"
            make_tiny_bundle(paper, encoders="base", template=BIWI)
        import torch

        from talking_head.core.device import resolve_device, resolve_precision

        used = resolve_precision(args.precision, resolve_device(args.device))
        print(f"{torch.get_num_threads()} torch threads, device {args.device}, --precision {args.precision}: encoders in {used}")
        runs = [
            ("paper-size bundle, 11.5 s real recording", paper, REAL_SPEECH, 6.0),
            ("demo bundle, 10.5 s sample", DEMO_BUNDLE, DEMO_SAMPLE, 4.0),
        ]
        medians = {}
        for name, bundle, audio, target in runs:
            out = tmp / "take.npz"
            times = whole_process(bundle, audio, out, args.device, args.precision, args.repeat)
            medians[name] = report(name, times, target)
            print(f"  .npz written: {out.stat().st_size / 2**20:.1f} MiB")
            split = stages(bundle, audio, out, args.device, args.precision)
            print("  one run in stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items() if isinstance(v, float))
                  + f"; transformers imported: {split['transformers imported']}")
        if args.faceformer:
            sys.path.insert(0, str(ROOT / "bench"))
            from faceformer import time_faceformer_predict

            found = time_faceformer_predict(args.faceformer, REAL_SPEECH, paper / "encoders" / "context", args.device)
            ratio = found["predict_s"] / medians[runs[0][0]]
            print(f"FaceFormer predict (random weights, same audio): {found['predict_s']:.2f} s (build {found['build_s']:.2f} s); "
                  f"talking-head animate whole process is {ratio:.1f}x faster than predict alone (target >= 3.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
