"""`--transcript`, `--recognise`, `--no-phone-loop` and `--no-pause-rest`, shared by `animate` and `bake` (core/alignment.py, core/pauses.py)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transcript", metavar="TEXT_OR_FILE.txt", help="the words spoken (the text, or a .txt file): forced alignment "
                        "(pocketsphinx, English) times each phone and Gn reads the bundle's phone prototypes (`bundle phones`); "
                        "with several inputs, NAME.txt beside each sound file is used when this is the word 'beside'")
    parser.add_argument("--recognise", action="store_true", help="where no transcript is given: recognise the words by pocketsphinx's "
                        "full search (English, about a third of the clip's length more on 2 CPU cores, here and not beside the model's "
                        "loading) instead of the faster one the default hears them by, and weigh their phones against what the content "
                        "encoder hears (bundle phones must have built a phone classifier)")
    parser.add_argument("--no-phone-loop", action="store_true", help="read the content encoder alone: by default, without a "
                        "transcript or --recognise, the phones pocketsphinx hears (the words it recognises, aligned, or its phone loop's "
                        "where it recognises none; English, about 0.2 s per second of audio, beside the model's loading) are weighed "
                        "against it, when the bundle has a phone classifier")
    parser.add_argument("--no-pause-rest", action="store_true", help="leave the mouth as the model made it in pauses (by default the "
                        "channels that open it are faded out where silero-vad, or the transcript, hears no speech)")


def transcript_for(args: argparse.Namespace, audio) -> str:
    """The transcript text for one sound file ("" for none); one-line TranscriptError when unusable."""
    from pathlib import Path

    from ..core.alignment import read_transcript

    value = getattr(args, "transcript", None)
    if value is None:
        return ""
    if value == "beside":
        beside = Path(audio).with_suffix(".txt")
        return read_transcript(str(beside)) if beside.is_file() else ""
    return read_transcript(value)
