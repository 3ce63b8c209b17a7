"""`--precision auto`: bf16 encoders only where the CPU does bf16 in hardware, float32 elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.core import device
from talking_head.core.errors import DeviceError
from talking_head.core.pipeline import load_animator


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, native):
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: native)
    assert device.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert device.resolve_precision("auto", "cuda") == "fp32"  # not measured on GPUs: float32 there
    assert device.resolve_precision("fp32", "cpu") == "fp32" and device.resolve_precision("bf16", "cuda") == "bf16"
    with pytest.raises(DeviceError, match="unknown precision 'fp16'"):
        device.resolve_precision("fp16", "cpu")


def test_auto_precision_animates_close_to_float32(tiny_bundle_dir, clip_3s, monkeypatch):
    """The precision the animator settled on is the one it reports, and bf16 encoders move the
    faces by a small fraction of the motion (the demo bundle's figure is in the README)."""
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: True)
    fast = load_animator(tiny_bundle_dir, "cpu")  # auto
    exact = load_animator(tiny_bundle_dir, "cpu", "fp32")
    assert (fast.precision, exact.precision) == ("bf16", "fp32")
    a, b = fast.animate(clip_3s), exact.animate(clip_3s)
    template = exact.bundle.template.vertices
    motion = np.abs(b.emotional - template).mean()
    assert np.abs(a.emotional - b.emotional).mean() < 0.1 * motion
