"""Where torch runs: an NVIDIA GPU (CUDA), an Apple Silicon GPU (MPS) or the CPU; the user may insist
on any of them. torch is imported only when a device is resolved, so the command line's parser can
read CHOICES without loading torch."""

from __future__ import annotations

from .errors import DeviceError

CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


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


def native_bf16_cpu() -> bool:
    """The CPU does bfloat16 arithmetic in hardware (AVX-512 BF16 or AMX): there bf16 encoders run
    about twice as fast; elsewhere bf16 is emulated and slower than float32."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and bool(probe()) for probe in probes)


def resolve_precision(name: str, device: str) -> str:
    """The encoders' precision for `name` on the resolved `device`: "auto" is bf16 on a CPU with
    native bf16 (measured harmless on the demo bundle: faces within 0.15% of their motion of the
    float32 ones, README "Speed") and float32 everywhere else, GPUs included (not measured there)."""
    if name not in PRECISIONS:
        raise DeviceError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if device == "cpu" and native_bf16_cpu() else "fp32"
    return name
