"""Numeric and named options checked by the parser, so no bad value reaches the model or Blender.

Each function is an argparse `type=`: it returns the value or raises ArgumentTypeError. The
parser turns any mistake into a UsageError, which app/cli.py main() prints as one line
(`talking-head: error: argument --seed: ...`) with exit code 2, like every other user error.
"""

from __future__ import annotations

import argparse
import math

from ..core.device import CHOICES as DEVICES  # torch-free to import: torch loads only when a device is resolved
from ..core.errors import TalkingHeadError

SEED_MAX = 2**31 - 1  # Blender's int properties (the panel's Seed) hold 0 .. 2**31 - 1
FPS_RANGE = (1.0, 1000.0)  # Blender's scene rate is a whole number >= 1 times a base


class UsageError(TalkingHeadError):
    """A command line the parser refuses: an unknown option, a missing argument, a bad value."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is a UsageError (one line, exit code 2), not usage text and an exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see: {self.prog} --help)")


def device(text: str) -> str:
    """Where torch runs: one of DEVICES (checked again, with the GPU's presence, by core/device.py)."""
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use one of {', '.join(DEVICES)}")
    return text


def seed(text: str) -> int:
    """A head-motion seed: a whole number in 0 .. 2**31 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"the seed must be a whole number from 0 to {SEED_MAX}, not {text!r}")
    return value


def fps(text: str) -> float:
    """A scene frame rate: a finite number from 1 to 1000."""
    value = _number(text, "the frame rate")
    low, high = FPS_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"the frame rate must be from {low:g} to {high:g} frames per second, not {text!r}")
    return value


def weight(text: str) -> float:
    """A blend weight in [0, 1]."""
    value = _number(text, "the weight")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"the weight must be from 0 to 1, not {text!r}")
    return value


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what} must be a finite number, not {text!r}")
    return value
