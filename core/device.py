"""Where torch runs: an NVIDIA GPU (CUDA), an Apple Silicon GPU (MPS) or the CPU; the user may insist
on any of them. torch is imported only when a device is resolved, so the command line's parser can
read CHOICES without loading torch."""

from __future__ import annotations

from .errors import DeviceError

CHOICES = ("auto", "cpu", "cuda", "mps")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    """An Apple Silicon GPU through Metal (torch's macOS arm64 wheels)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(name: str = "auto") -> str:
    """The torch device for `name`: "auto" picks CUDA, then MPS, then the CPU."""
    if name not in CHOICES:
        raise DeviceError(f"unknown device {name!r}; use one of {', '.join(CHOICES)}")
    if name == "auto":
        return "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    if name == "cuda" and not cuda_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not mps_available():
        raise DeviceError("--device mps was asked for but torch sees no Apple Silicon GPU (MPS); use --device cpu or auto")
    return name
