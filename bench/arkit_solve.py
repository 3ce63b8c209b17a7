"""ARKit solve: time for a 10 s clip (250 frames) on one thread, and how much motion the basis explains.

The animation is what the training corpus shows: the face rig driven by coarticulated visemes of a
random phone sequence plus an emotion's expression (training/corpus), on the demo head.
Target: the solve well under 0.1 s for 250 frames of the 4,482-vertex head on one core.
Usage: python bench/arkit_solve.py [--frames 250] [--repeat 5] [--smoothness 0.05] [--emotion happy]
"""

from __future__ import annotations

import argparse
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one thread, before numpy loads BLAS

import time  # noqa: E402

import numpy as np  # noqa: E402


def rig_animation(frames: int, emotion: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(displacements (N, V, 3) of the demo head, lip vertex indices) for a corpus-like take."""
    from talking_head.core.face_rig import CONTROLS, FaceRig
    from talking_head.core.template_head import RIGID_REGIONS, load_template_head
    from talking_head.training.corpus.emotions import expression_vector
    from talking_head.training.corpus.phones import PHONES
    from talking_head.training.corpus.visemes import viseme_controls

    rng = np.random.default_rng(seed)
    head = load_template_head()
    rig = FaceRig(head.vertices, head.faces, head.landmarks, head.region_mask(*RIGID_REGIONS))
    seconds = frames / 25
    phones, t = [], 0.2
    while t < seconds - 0.2:
        length = float(rng.uniform(0.05, 0.18))
        phones.append((str(rng.choice(PHONES[:-1])), t, t + length))
        t += length
    phones = [("pau", 0.0, 0.2)] + phones + [("pau", t, seconds)]
    times = (np.arange(frames) + 0.5) / 25
    mouth = viseme_controls(phones, times, len(CONTROLS))
    intensity = np.clip(np.minimum(times / 0.5, 1.0) * (0.8 + 0.2 * np.sin(2 * np.pi * 0.3 * times)), 0, 1)
    expression = intensity[:, None] * expression_vector(emotion, len(CONTROLS))[None, :]
    faces = rig.pose(mouth + expression)
    return faces - head.vertices[None], head.lip_vertices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoothness", type=float, default=0.05)
    parser.add_argument("--emotion", default="happy", choices=("neutral", "happy", "sad", "angry", "surprised"))
    args = parser.parse_args()

    from talking_head.core.arkit import ArkitSolver, arkit_shapes
    from talking_head.core.template_head import load_template_head

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above already ask for one thread
        threadpool_limits = None
    head = load_template_head()
    start = time.perf_counter()
    shapes = arkit_shapes(head.vertices, head.faces, head.landmarks, head.vertex_region)
    build = time.perf_counter() - start
    motion, lips = rig_animation(args.frames, args.emotion)
    print(f"basis: 52 shapes x {shapes.shape[1]} vertices in {build * 1e3:.0f} ms")

    for smoothness in sorted({0.0, args.smoothness}):
        solver = ArkitSolver(shapes, smoothness=smoothness)
        solver.solve(motion[:10])  # warm up (scipy.fft plans)
        times = []
        with threadpool_limits(1) if threadpool_limits else _nothing():
            for _ in range(args.repeat):
                start = time.perf_counter()
                weights = solver.solve(motion)
                times.append(time.perf_counter() - start)
        rebuilt = solver.reconstruct(weights)
        residual = motion - rebuilt
        explained = 1.0 - float(np.sum(residual**2) / np.sum(motion**2))
        lip_error = float(np.mean(np.max(np.sum(residual[:, lips] ** 2, axis=2), axis=1)))
        lip_motion = float(np.mean(np.max(np.sum(motion[:, lips] ** 2, axis=2), axis=1)))
        print(f"smoothness {smoothness:g}: solve {args.frames} frames ({args.frames / 25:.0f} s) on one thread: "
              f"median {np.median(times) * 1e3:.1f} ms, best {min(times) * 1e3:.1f} ms "
              f"({len(solver.vertices)} of {shapes.shape[1]} vertices moved by the basis)")
        print(f"  motion explained {explained:.2%}; lip vertex error of the ARKit blend {lip_error:.2e} "
              f"(lip motion itself {lip_motion:.2e}, same units: max squared lip displacement, mean over frames)")
        top = np.argsort(-weights.mean(axis=0))[:6]
        from talking_head.core.arkit import ARKIT_NAMES

        print("  strongest channels: " + ", ".join(f"{ARKIT_NAMES[i]} {weights[:, i].mean():.2f}" for i in top))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
