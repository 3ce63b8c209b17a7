"""`talking-head corpus build | preview | speech | emotion-voices | mix | revoice`: wired into the main parser by register()."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands) -> None:
    """Add the `corpus` command to the main parser's subparsers object."""
    corpus = commands.add_parser("corpus", help="build and look at the synthetic demo corpus")
    kinds = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")

    build = kinds.add_parser("build", help="faces, speech, head poses and labels in the BIWI layout")
    build.add_argument("--out", required=True, type=Path, help="corpus folder to write")
    build.add_argument("--subjects", type=int, default=14, help="number of subjects (1-14, BIWI names)")
    build.add_argument("--sentences", type=int, default=40, help="sentences per subject (1-40)")
    build.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    build.add_argument("--template", default="ours", help="'ours' (the project's head) or a path to BIWI.ply")
    build.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    build.set_defaults(run=_run_build)

    preview = kinds.add_parser("preview", help="render a clip with Cycles (png grid or mp4)")
    preview.add_argument("corpus", type=Path, help="corpus folder")
    preview.add_argument("--clip", required=True, help="clip name, e.g. F2_e01, F2_01 or neutral/F2_e01")
    preview.add_argument("--out", required=True, type=Path, help="OUT.png (grid of frames) or OUT.mp4")
    preview.add_argument("--frames", type=int, default=8, help="frames in a png grid")
    preview.add_argument("--size", type=int, default=256, help="pixels per frame")
    preview.add_argument("--no-pose", action="store_true", help="without the head pose")
    preview.set_defaults(run=_run_preview)

    speech = kinds.add_parser("speech", help="speech-only set with phone and emotion labels (no faces)")
    speech.add_argument("--out", required=True, type=Path, help="folder to write")
    speech.add_argument("--utterances", type=int, required=True, help="how many utterances")
    speech.add_argument("--seed", type=int, default=0)
    speech.add_argument("--workers", type=int, default=None)
    speech.set_defaults(run=_run_speech)

    voices = kinds.add_parser("emotion-voices", help="a copy of a speech set whose emotions can be heard (WORLD resynthesis, "
                              "training/corpus/emotion_voice.py); held-out voices left out")
    voices.add_argument("--speech", required=True, type=Path, help="speech set to copy (`corpus speech`, or FSDD's from `encoders real-voices`)")
    voices.add_argument("--out", required=True, type=Path, help="folder to write")
    voices.add_argument("--assign-emotions", action="store_true", help="draw each copy's emotion (for neutral speech such as FSDD)")
    voices.add_argument("--seed", type=int, default=0)
    voices.add_argument("--workers", type=int, default=2)
    voices.set_defaults(run=_run_emotion_voices)

    mix = kinds.add_parser("mix", help="one speech set that links to the files of several (ids must not clash)")
    mix.add_argument("sets", nargs="+", type=Path, help="speech sets to mix")
    mix.add_argument("--out", required=True, type=Path, help="folder to write")
    mix.set_defaults(run=_run_mix)

    revoice = kinds.add_parser("revoice", help="a corpus whose takes are resynthesised with audible emotion (timing kept; "
                               "everything but wav/ linked)")
    revoice.add_argument("corpus", type=Path, help="corpus folder (BIWI layout, from `corpus build`)")
    revoice.add_argument("--out", required=True, type=Path, help="corpus folder to write (resumable)")
    revoice.add_argument("--seed", type=int, default=0)
    revoice.add_argument("--workers", type=int, default=2)
    revoice.set_defaults(run=_run_revoice)


def _run_build(args: argparse.Namespace) -> int:
    from ..training.corpus.build import build_corpus

    info = build_corpus(args.out, args.subjects, args.sentences, args.seed, args.template, args.workers)
    print(f"wrote {len(info['clips'])} clips of {len(info['subjects'])} subjects to {args.out} in {info['build_seconds']:.0f} s")
    return 0


def _run_preview(args: argparse.Namespace) -> int:
    from .corpus_preview import preview_clip

    out = preview_clip(args.corpus, args.clip, args.out, frames=args.frames, size=args.size, with_pose=not args.no_pose)
    print(f"wrote {out}")
    return 0


def _run_speech(args: argparse.Namespace) -> int:
    from ..training.corpus.build import CorpusError
    from ..training.corpus.speech_set import build_speech_set

    if args.utterances < 1:
        raise CorpusError("--utterances must be at least 1")
    records = build_speech_set(args.out, args.utterances, args.seed, args.workers)
    print(f"wrote {len(records)} utterances to {args.out}")
    return 0


def _run_emotion_voices(args: argparse.Namespace) -> int:
    from ..training.emotion_voices import emotional_speech_set

    _require_speech_set(args.speech)
    records = emotional_speech_set(args.speech, args.out, args.seed, args.workers, assign_emotions=args.assign_emotions)
    print(f"wrote {len(records)} utterances to {args.out}")
    return 0


def _run_revoice(args: argparse.Namespace) -> int:
    from ..training.corpus.build import CorpusError
    from ..training.emotion_voices import revoice_corpus

    if not (args.corpus / "corpus.json").is_file():
        raise CorpusError(f"{args.corpus} is not a corpus (no corpus.json): build one with `talking-head corpus build`")
    if args.out.resolve() == args.corpus.resolve():
        raise CorpusError("--out must be a new folder: revoice never overwrites the corpus it reads")
    written = revoice_corpus(args.corpus, args.out, args.seed, args.workers)
    print(f"wrote {written} takes to {args.out / 'wav'} (the rest of {args.out} links to {args.corpus})")
    return 0


def _run_mix(args: argparse.Namespace) -> int:
    from ..training.corpus.build import CorpusError
    from ..training.speech_mix import mix_speech_sets

    for folder in args.sets:
        _require_speech_set(folder)
    try:
        count = mix_speech_sets(args.sets, args.out)
    except ValueError as exc:
        raise CorpusError(str(exc)) from None
    print(f"wrote {args.out}: {count} utterances from {len(args.sets)} speech sets (files linked)")
    return 0


def _require_speech_set(folder: Path) -> None:
    from ..training.corpus.build import CorpusError

    if not (folder / "labels.jsonl").is_file():
        raise CorpusError(f"{folder} is not a speech set (no labels.jsonl)")
