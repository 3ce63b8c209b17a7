"""How long writing a take into Blender takes: 275 frames (11 s at 25 fps) onto the BIWI
topology (23,370 vertices), one shape key per frame plus head-motion keys.

    .venv/bin/python bench/blender_write.py [--frames 275] [--vertices 23370] [--fps 25] [--compact]

Prints the seconds `writer.write_take` takes (the model is not run: the animation is random).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=275)
    parser.add_argument("--vertices", type=int, default=23_370)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--compact", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import bpy

    from talking_head.blender import session, writer
    from talking_head.core.animation import Animation
    from talking_head.training.tiny import sphere_mesh

    rng = np.random.default_rng(0)
    template = sphere_mesh(args.vertices)
    n, v = args.frames, args.vertices
    emotional = template.vertices[None] + 0.002 * rng.standard_normal((n, v, 3)).astype(np.float32)
    angles = 0.05 * np.sin(np.linspace(0, 6, n))
    rotation = np.stack([np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) for a in angles])
    animation = Animation(
        vertices=emotional, neutral=emotional, emotional=emotional,
        rotation=rotation.astype(np.float32), translation=np.zeros((n, 3), np.float32),
        emotion_probs=np.zeros((n, 5), np.float32), emotion_labels=["a", "b", "c", "d", "e"],
        pivot=template.vertices.mean(axis=0), fps=25, faces=template.faces,
    )
    times = []
    for _ in range(args.repeat):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps = args.fps
        obj = session.mesh_object("head", template.vertices, template.faces, scene.collection)
        began = time.perf_counter()
        take = writer.write_take(obj, animation, template.vertices, scene, start=1, compact=args.compact)
        times.append(time.perf_counter() - began)
    kind = f"{take.n_shape_keys} PCA shape keys" if args.compact else f"{take.n_shape_keys} shape keys"
    print(f"write_take: {args.frames} frames x {args.vertices:,} vertices at {args.fps} fps ({kind}): "
          f"best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s")


if __name__ == "__main__":
    main()
