"""`--emotion` and `--emotion-track`, shared by `animate` and `bake` (core/emotion_direction.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--emotion", metavar="LABEL:W[,...]", help="direct the emotion for the whole take, e.g. happy:0.8 "
                       "(the voice keeps 1 - 0.8) or happy:0.8,voice:0.2; needs the bundle's emotion prototypes (`bundle emotions`); "
                       "a bundle with learned expressions (`bundle expressions`) also adds each class's shape at its weight; "
                       "heard:W gives each class W times what the voice is heard as, moment by moment (needs the bundle's emotion hearing, `bundle hearing`)")
    parser.add_argument("--no-heard-expressions", action="store_true", help="the voice's faces without the learned expressions of the emotion "
                        "it is heard as (added at half weight by default, with a bundle that has an emotion hearing and learned expressions)")
    group.add_argument("--emotion-track", type=Path, metavar="FILE.json", help='keyed emotion over time: {"keys": [{"time": 0.0, "happy": 0.8}, '
                       '{"frame": 120, "angry": 1.0, "voice": 0}]} (frames at the bundle\'s fps; linear between keys, held outside)')


def direction(args: argparse.Namespace, bundle: Path):
    """The `EmotionDirection` the options ask for, or None; one-line EmotionError when malformed."""
    from ..core.emotion_direction import parse_emotion, read_emotion_track

    if getattr(args, "emotion", None):
        return parse_emotion(args.emotion)
    if getattr(args, "emotion_track", None):
        from ..core.bundle_info import read_bundle_info

        return read_emotion_track(args.emotion_track, read_bundle_info(bundle).config.fps)
    return None
