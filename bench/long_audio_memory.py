"""Peak resident memory of `talking-head animate` on 10 minutes of audio with the demo bundle.

Tiles a speech clip (samples/demo_speech.wav, or ../shared/speech/real_speech_11s.wav with
--real) to --minutes of 16 kHz audio in a temporary file, runs the whole command as a child
process on the CPU to an .npz, and reports the child's peak RSS (ru_maxrss) and wall time.
Goal: under 4 GB for 10 minutes (issue 16).
Usage: python bench/long_audio_memory.py [--minutes 10] [--bundle weights/demo] [--real] [--keep OUT.npz] [--no-phone-loop]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO_SPEECH = ROOT / "samples" / "demo_speech.wav"
REAL_SPEECH = ROOT.parent / "shared" / "speech" / "real_speech_11s.wav"
GOAL_GB = 4.0


def long_speech(path: Path, seconds: float, source: Path) -> float:
    """Write `source` tiled to `seconds` of 16 kHz mono as a WAV at `path`; returns its length in s."""
    from talking_head.core.audio import SAMPLE_RATE, load_audio

    import soundfile

    clip = load_audio(source)  # 16 kHz mono float32
    n = int(seconds * SAMPLE_RATE)
    samples = np.resize(clip, n)  # repeats the clip
    soundfile.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    return n / SAMPLE_RATE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--real", action="store_true", help="tile the real speech clip instead of the demo sample")
    parser.add_argument("--keep", type=Path, help="keep the .npz here (to compare takes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-phone-loop", action="store_true", help="animate --no-phone-loop: the content encoder alone")
    args = parser.parse_args()

    source = REAL_SPEECH if args.real else DEMO_SPEECH
    command_line = shutil.which("talking-head", path=str(Path(sys.executable).parent)) or ""
    with tempfile.TemporaryDirectory(prefix="talking_head_bench_") as tmp:
        audio = Path(tmp) / "long_speech.wav"
        seconds = long_speech(audio, 60 * args.minutes, source)
        out = args.keep or Path(tmp) / "take.npz"
        command = [command_line] if command_line else [sys.executable, "-m", "talking_head"]
        command += ["animate", str(audio), "--bundle", str(args.bundle), "--out", str(out),
                    "--device", "cpu", "--seed", str(args.seed)] + (["--no-phone-loop"] if args.no_phone_loop else [])
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}")
            return 1
        size = out.stat().st_size
    if peak_kb <= before:
        print("note: an earlier child of this process peaked higher; the figure below is that one's")
    peak_gb = peak_kb * 1024 / 1e9  # ru_maxrss is in KiB on Linux
    print(f"audio {seconds:.0f} s ({source.name} tiled), bundle {args.bundle.name}, CPU")
    print(f"  {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''} ({size / 1e6:.0f} MB)")
    print(f"peak RSS {peak_gb:.2f} GB (goal < {GOAL_GB:g} GB: {'met' if peak_gb < GOAL_GB else 'NOT met'}), wall {wall:.0f} s")
    return 0 if peak_gb < GOAL_GB else 1


if __name__ == "__main__":
    raise SystemExit(main())
