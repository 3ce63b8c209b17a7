"""Where torch runs: CUDA when present, else the CPU; the user may insist on either."""

from __future__ import annotations

import torch

from .errors import DeviceError

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    if name not in CHOICES:
        raise DeviceError(f"unknown device {name!r}; use one of {', '.join(CHOICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return name
