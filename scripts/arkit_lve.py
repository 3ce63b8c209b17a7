"""What the ARKit channels cost in lip accuracy: LVE of the model's output against ground truth, and
of the same output after the ARKit solve (52 weights, blended back on the clip's subject template).

Clips and predictions are those of `talking-head evaluate` (training/evaluate.py: Evaluator,
lip_vertex_error, the corpus' lip vertices). Also reports the ground truth's own ARKit round trip,
which is the basis' representation error alone.
Usage: python scripts/arkit_lve.py --data CORPUS --bundle weights/demo [--subsets SE UE] [--smoothness 0.05]
       [--figure lips.png [--figure-clip NAME]]  (lip opening over one clip: truth, model, model -> ARKit)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="corpus folder (BIWI layout, with corpus.json)")
    parser.add_argument("--bundle", required=True, help="model bundle folder")
    parser.add_argument("--subsets", nargs="+", default=["SE", "UE"])
    parser.add_argument("--smoothness", type=float, default=0.05)
    parser.add_argument("--cache", default=None, help="feature cache folder (default CORPUS/.cache)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument("--figure", default=None, help="PNG: lip opening over one test clip (truth, model, model -> ARKit)")
    parser.add_argument("--figure-clip", default=None, help="the clip of --figure (default: the first clip of the last subset)")
    args = parser.parse_args(argv)

    from talking_head.core.arkit import ArkitSolver, template_arkit_shapes
    from talking_head.core.bundle import ModelBundle
    from talking_head.training.dataset import Corpus
    from talking_head.training.evaluate import Evaluator
    from talking_head.training.metrics import lip_vertex_error

    corpus = Corpus(args.data)
    bundle = ModelBundle.load(args.bundle)
    regions = corpus.regions()
    if regions is None:
        raise SystemExit(f"{args.data}/corpus.json lists no lip_vertices")
    lip = regions[0]
    evaluator = Evaluator(bundle, corpus, Path(args.cache) if args.cache else Path(args.data) / ".cache")
    # config.json has no `landmarks` yet; a bundle on another template would need them.
    shapes = template_arkit_shapes(bundle.template.vertices, bundle.template.faces, getattr(bundle.config, "landmarks", None))
    solver = ArkitSolver(shapes, smoothness=args.smoothness)
    report: dict = {"bundle": str(args.bundle), "corpus": str(args.data), "smoothness": args.smoothness, "subsets": {}}
    solve_seconds, frames = 0.0, 0
    figure_clip = None
    for subset in args.subsets:
        rows = []
        for clip in corpus.subset(subset):
            target = corpus.vertices(clip.name)
            template = corpus.template(clip.subject)
            prediction, _ = evaluator.predict(clip)
            start = time.perf_counter()
            weights = solver.solve(prediction - template)
            solve_seconds += time.perf_counter() - start
            frames += len(weights)
            arkit = template + solver.reconstruct(weights)
            truth_arkit = template + solver.reconstruct(solver.solve(target - template))
            if args.figure and (clip.name == args.figure_clip or (args.figure_clip is None and not rows)):
                figure_clip = (clip.name, target, prediction, arkit)
            rows.append({
                "clip": clip.name,
                "model": lip_vertex_error(prediction, target, lip),
                "model_arkit": lip_vertex_error(arkit, target, lip),
                "truth_arkit": lip_vertex_error(truth_arkit, target, lip),
                "arkit_vs_model": lip_vertex_error(arkit, prediction, lip),
            })
        if rows:
            report["subsets"][subset] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "clip"} | {"clips": len(rows)}
    report["solve_ms_per_10s"] = 1e3 * solve_seconds / max(frames, 1) * 250
    print(f"LVE (x1e-4; lower is better), bundle {args.bundle}, corpus {args.data}, smoothness {args.smoothness}")
    print("| clips | model | model -> ARKit | ground truth -> ARKit | ARKit vs model |")
    print("| --- | --- | --- | --- | --- |")
    for subset, row in report["subsets"].items():
        print(f"| {subset} ({row['clips']}) | {row['model'] * 1e4:.2f} | {row['model_arkit'] * 1e4:.2f} | "
              f"{row['truth_arkit'] * 1e4:.3f} | {row['arkit_vs_model'] * 1e4:.3f} |")
    print(f"solve time: {report['solve_ms_per_10s']:.1f} ms per 10 s of animation")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.figure and figure_clip is not None:
        _lip_figure(args.figure, *figure_clip, bundle.config.fps, smoothness=args.smoothness)
        print(f"wrote {args.figure}")
    return report


def _lip_figure(path: str, name: str, truth: np.ndarray, model: np.ndarray, arkit: np.ndarray, fps: int, smoothness: float) -> None:
    """Lip opening (upper to lower lip landmark of the project's head) over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    marks = load_template_head().landmarks
    seconds = np.arange(len(truth)) / fps
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=120)
    for faces, label, style in ((truth, "ground truth", "k-"), (model, "model (per vertex)", "C0-"), (arkit, f"model -> 52 ARKit weights (smoothness {smoothness})", "C3--")):
        ax.plot(seconds, lip_distance(faces, marks["upper_lip"], marks["lower_lip"]), style, lw=1.2, label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("lip opening (head units)")
    ax.set_title(f"{name}: lip opening, per-vertex output and its ARKit solve")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
