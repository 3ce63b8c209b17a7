"""Inference time for 11 s of audio with a paper-size model: encoders vs generators.

Paper-size: wav2vec2-base-sized encoders (random weights: timing only) and 23,370 vertices
(the BIWI template from ../shared/biwi when present, else a sphere of that size).
Targets on a 2-core CPU: generators under 1 s for 275 frames; whole pipeline under 3 s.
Usage: python bench/inference.py [--device auto|cpu|cuda] [--repeat 3] [--minutes 0] [--static]
--static also times the generators with each way of stepping a frame: the exact growing cache,
the fixed-shape static step, and (on CUDA) that step replayed from a CUDA graph.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BIWI = ROOT.parent / "shared" / "biwi" / "BIWI.ply"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="encoder precision")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=11.0)
    parser.add_argument("--minutes", type=float, default=0.0, help="also encode this many minutes (memory check)")
    parser.add_argument("--static", action="store_true", help="compare the static step (and the CUDA graph on CUDA)")
    args = parser.parse_args()

    from talking_head.core.bundle import ModelBundle
    from talking_head.core.device import resolve_device
    from talking_head.core.model import head_noise
    from talking_head.core.pipeline import Animator
    from talking_head.training.tiny import make_tiny_bundle

    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.seconds * 16_000))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        template = {"template": BIWI} if BIWI.exists() else {"n_vertices": 23_370}
        make_tiny_bundle(Path(tmp) / "paper", encoders="base", **template)
        bundle = ModelBundle.load(Path(tmp) / "paper", device)
        animator = Animator(bundle, device, args.precision)
        cfg, model = bundle.config, bundle.model
        params = sum(p.numel() for p in model.parameters())
        enc_params = sum(p.numel() for e in (animator.context.model, animator.emotion.model) for p in e.parameters())
        print(f"device {device}, encoders in {args.precision}, torch threads {torch.get_num_threads()}, {cfg.n_vertices} vertices, "
              f"generators {params / 1e6:.1f}M + encoders {enc_params / 1e6:.1f}M parameters")
        enc_times, gen_times, total_times = [], [], []
        for _ in range(args.repeat + 1):  # first run warms up
            t0 = time.perf_counter()
            context, emotion, _ = animator.features(audio)
            t1 = time.perf_counter()
            noise = head_noise(0, emotion.shape[1], cfg.d_model, sigma=cfg.head_noise_sigma)
            model.generate(context.to(device), emotion.to(device), torch.tensor([0], device=device), noise.to(device))
            if device == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            animator.animate(audio)
            t3 = time.perf_counter()
            enc_times.append(t1 - t0)
            gen_times.append(t2 - t1)
            total_times.append(t3 - t2)
        frames = context.shape[1] // cfg.k
        med = lambda xs: float(np.median(xs[1:]))
        print(f"audio {args.seconds:.1f} s -> {frames} frames (median of {args.repeat})")
        print(f"  encoders (both)      {med(enc_times):6.3f} s")
        print(f"  generators Gn+Ge+Gh  {med(gen_times):6.3f} s   ({1000 * med(gen_times) / frames:.2f} ms/frame)")
        print(f"  whole animate()      {med(total_times):6.3f} s   (audio array in, Animation arrays out)")
        if args.static:
            inputs = context.to(device), emotion.to(device), torch.tensor([0], device=device), noise.to(device)
            ways = {"exact step": dict(static=False, cuda_graph=False), "static step": dict(static=True, cuda_graph=False)}
            if device == "cuda":
                ways["static, CUDA graph"] = dict(static=True, cuda_graph=True)
            outputs = {}
            for name, options in ways.items():
                times = []
                for _ in range(args.repeat + 1):
                    t0 = time.perf_counter()
                    outputs[name] = model.generate(*inputs, **options)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                exact = outputs["exact step"].emotional
                error = (outputs[name].emotional - exact).abs().max().item()
                print(f"  generators, {name:19s} {med(times):6.3f} s   ({1000 * med(times) / frames:.2f} ms/frame, "
                      f"max difference from the exact step {error:.1e})")
        if args.minutes:
            long_audio = (0.1 * rng.standard_normal(int(args.minutes * 60 * 16_000))).astype(np.float32)
            t0 = time.perf_counter()
            animator.features(long_audio)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  encoders on {args.minutes:.0f} min: {time.perf_counter() - t0:.1f} s, peak memory {peak:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
