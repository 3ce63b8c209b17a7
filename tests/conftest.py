"""Shared fixtures: a tiny untrained bundle and speech-like clips made on the spot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# The template-shape cache (core/shape_cache.py) in a folder of this test run, not the user's home;
# the command-line runs the tests start inherit it.
os.environ.setdefault("TALKING_HEAD_CACHE", tempfile.mkdtemp(prefix="talking-head-cache-"))


def speech_like(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-paced signal with pauses: enough structure for the encoders."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.4 * t) > -0.6)
    signal = 0.3 * voiced * syllables + 0.01 * rng.standard_normal(t.shape)
    return signal.astype(np.float32)


def write_clip(path: Path, seconds: float, rate: int = 16_000, seed: int = 0, **kwargs) -> Path:
    soundfile.write(str(path), speech_like(seconds, rate, seed), rate, **kwargs)
    return path


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory) -> Path:
    from talking_head.training.tiny import make_tiny_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    make_tiny_bundle(out, n_vertices=200, max_frames=40, window_overlap=15, encode_window_s=1.0, encode_context_s=0.5)
    return out


@pytest.fixture(scope="session")
def clip_3s(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("audio") / "clip.wav", 3.0, rate=22_050)


@pytest.fixture
def addon():
    """The add-on registered in an empty scene (bpy), the scene emptied and the add-on
    unregistered afterwards: what each Blender test starts from."""
    bpy = pytest.importorskip("bpy")
    import talking_head

    bpy.ops.wm.read_factory_settings(use_empty=True)
    talking_head.register()
    yield bpy.context.scene
    talking_head.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def model_never_loads(monkeypatch):
    """Fail the test if the command gets as far as loading a model (its inputs and outputs are
    checked before)."""
    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs and outputs were checked")

    from talking_head.core import bundle, pipeline

    for name in ("load_animator", "animate_task"):
        monkeypatch.setattr(pipeline, name, load)
    monkeypatch.setattr(bundle.ModelBundle, "load", load)


def run_cli_captured(capsys, *args) -> tuple[int, str, str]:
    """-> (exit code, stdout, stderr) of `talking-head ARGS`, parser errors included."""
    from talking_head.app.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
