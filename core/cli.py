"""The `talking-head` command line. User errors print one line and exit 2; no tracebacks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import TalkingHeadError

# Show a progress bar only when a clip is at least this long (frames at 25 fps).
PROGRESS_MIN_FRAMES = 250


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talking-head", description="Animate a 3D face from a sound file.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bundle = commands.add_parser("bundle", help="write model bundles")
    kinds = bundle.add_subparsers(dest="kind", required=True, metavar="KIND")
    tiny = kinds.add_parser("tiny", help="an UNTRAINED random bundle for tests and timings")
    tiny.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    size = tiny.add_mutually_exclusive_group()
    size.add_argument("--vertices", type=int, help="vertex count of a generated sphere template")
    size.add_argument("--template", type=Path, help="template mesh (.ply or .obj)")
    tiny.add_argument("--encoders", choices=("tiny", "base"), default="tiny", help="encoder size (base = wav2vec2-base)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_run_bundle_tiny)

    animate = commands.add_parser("animate", help="sound file -> animation arrays or meshes")
    animate.add_argument("audio", type=Path, help="sound file (WAV, FLAC, OGG, MP3, ...)")
    animate.add_argument("--bundle", required=True, type=Path, help="model bundle folder")
    animate.add_argument("--out", required=True, type=Path, help="OUT.npz, OUT.ply / OUT.obj (one mesh per frame), or a folder")
    animate.add_argument("--subject", help="speaking style: a subject of the bundle (default: its first)")
    animate.add_argument("--seed", type=int, default=0, help="head-motion variation (same seed, same motion)")
    animate.add_argument("--no-head", action="store_true", help="no head motion")
    animate.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    animate.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="encoder precision (bf16: about 2x faster on recent CPUs)")
    animate.add_argument("--mesh-format", choices=("ply", "obj"), default="ply", help="per-frame meshes in a folder")
    animate.set_defaults(run=_run_animate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except TalkingHeadError as exc:
        print(f"talking-head: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("talking-head: cancelled", file=sys.stderr)
        return 130


def _run_bundle_tiny(args: argparse.Namespace) -> int:
    from .tiny import make_tiny_bundle

    bundle = make_tiny_bundle(args.out, n_vertices=args.vertices, template=args.template, encoders=args.encoders, seed=args.seed)
    print(f"wrote UNTRAINED bundle ({bundle.config.n_vertices} vertices, {args.encoders} encoders) to {args.out}")
    return 0


def _run_animate(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .bundle import ModelBundle
    from .device import resolve_device
    from .pipeline import Animator

    device = resolve_device(args.device)
    samples = load_audio(args.audio)  # check the audio before loading anything heavy
    bundle = ModelBundle.load(args.bundle, device)
    if args.subject:
        bundle.config.subject_index(args.subject)
    animator = Animator(bundle, device, args.precision)
    with _ProgressBar() as bar:
        animation = animator.animate(samples, subject=args.subject, seed=args.seed, with_head=not args.no_head, progress=bar)
    out: Path = args.out
    if out.suffix.lower() == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        animation.save_npz(out)
        print(f"wrote {animation.n_frames} frames to {out}")
    else:
        paths = animation.write_frames(out, args.mesh_format)
        print(f"wrote {len(paths)} meshes ({paths[0].name} ... {paths[-1].name}) to {paths[0].parent}")
    if not bundle.config.trained:
        print("note: this bundle is UNTRAINED (random weights); its motion is meaningless", file=sys.stderr)
    return 0


class _ProgressBar:
    """tqdm over generated frames, shown on long clips only."""

    def __init__(self) -> None:
        self.bar = None

    def __enter__(self) -> "_ProgressBar":
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != "generating" or total < 3 * PROGRESS_MIN_FRAMES:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="generating", unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
