"""Time to tune a style from 6 clips (+1 to stop early) with the demo bundle; target under 60 s.

The clips are cut from the bundled sample speech; their mesh sequences are the bundle's own
animation of them with its last subject's style, so tuning has a real person to recover. Only the
time matters here (`make results` measures what tuning buys on held-out clips).
Usage: python bench/tuning.py [--bundle weights/demo] [--mode convex|direct] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--audio", type=Path, default=ROOT / "samples" / "demo_speech.wav")
    parser.add_argument("--mode", choices=("convex", "direct"), default="convex")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import soundfile
    import torch

    from talking_head.core.audio import SAMPLE_RATE, load_audio
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator
    from talking_head.core.tuning import TuningClip, tune_style

    torch.set_grad_enabled(True)
    bundle = ModelBundle.load(args.bundle)
    animator = Animator(bundle, "cpu")
    audio = load_audio(args.audio)
    length = int(args.seconds * SAMPLE_RATE)
    person = bundle.config.subjects[-1]
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips + 1):
            start = int((len(audio) - length) * i / args.clips)
            piece = audio[start : start + length]
            path = Path(tmp) / f"clip{i}.wav"
            soundfile.write(path, piece, SAMPLE_RATE)
            faces = animator.animate(piece, subject=person, with_head=False).emotional
            clips.append(TuningClip(str(path), f"clip{i}", faces))
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            style = tune_style(animator, clips, [], "bench", mode=args.mode)
            times.append(time.perf_counter() - started)
    print(f"bundle {args.bundle} ({bundle.config.n_vertices} vertices, trained={bundle.config.trained}), "
          f"{args.clips} clips of {args.seconds:.0f} s + 1 to stop early, mode {args.mode}, {torch.get_num_threads()} threads")
    print(f"tuning time: median {np.median(times):.1f} s over {len(times)} run(s) (target < 60 s)")
    print(f"alpha: {np.round(style.alpha, 3).tolist()} (target person: {person})")


if __name__ == "__main__":
    sys.exit(main())
