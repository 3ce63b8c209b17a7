"""What a command says on stderr after a run, the same for `animate` and `stream`."""

from __future__ import annotations

import sys


def say_notes(animator) -> None:
    """What the takes lack (blinks and gaze, rest in pauses, recognised words) and an untrained bundle."""
    for problem in (animator.eyes_problem, animator.pauses_problem, animator.recognise_problem):
        if problem:
            print(f"note: {problem}", file=sys.stderr)
    if not animator.bundle.config.trained:
        print("note: this bundle is UNTRAINED (random weights); its motion is meaningless", file=sys.stderr)
