"""The shipped demo bundle: trained, loadable through the hub code path, and its mouth follows speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weights" / "demo"
SAMPLE = ROOT / "samples" / "demo_speech.wav"

pytestmark = pytest.mark.skipif(not (DEMO / "config.json").is_file(), reason="no demo bundle in weights/demo")


def test_demo_bundle_is_trained_small_and_documented():
    config = json.loads((DEMO / "config.json").read_text())
    assert config["trained"] is True and config["head_trained"] is True
    assert config["context_encoder"] == "encoders/context" and config["emotion_encoder"] == "encoders/emotion"
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size < 60 * 2**20
    card = (DEMO / "README.md").read_text()
    assert "Rebuild" in card and "Limits" in card


@pytest.mark.slow
def test_demo_mouth_opens_with_speech_and_closes_in_pauses():
    from talking_head.core.audio import load_audio
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    landmarks = json.loads((ROOT / "core" / "assets" / "head.json").read_text())["landmarks"]
    bundle = ModelBundle.load(DEMO)
    audio = load_audio(SAMPLE)
    take = Animator(bundle, "cpu").animate(audio, with_head=False)
    opening = np.linalg.norm(take.emotional[:, landmarks["upper_lip"]] - take.emotional[:, landmarks["lower_lip"]], axis=-1)
    hop = 16000 // 25
    loudness = np.array([20 * np.log10(np.sqrt(np.mean(audio[i * hop : (i + 1) * hop] ** 2)) + 1e-6) for i in range(len(opening))])
    pause = loudness < loudness.max() - 35
    assert pause.sum() > 10 and (~pause).sum() > 100
    # Measured when the bundle was made: correlation 0.55, opening 0.044 in speech vs 0.0125 in pauses.
    assert np.corrcoef(opening, loudness)[0, 1] > 0.3
    assert opening[~pause].mean() > 1.5 * opening[pause].mean()


def test_demo_directed_emotions_show_on_the_face():
    """The shipped learned expressions: happy widens the mouth, angry lowers the brows, and the
    two takes differ visibly (measured when fitted: mouth width 0.253 against the voice's 0.207,
    angry vs happy 0.0039 mean per vertex)."""
    from talking_head.core.audio import load_audio
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.emotion_direction import parse_emotion
    from talking_head.core.pipeline import Animator

    landmarks = json.loads((ROOT / "core" / "assets" / "head.json").read_text())["landmarks"]
    animator = Animator(ModelBundle.load(DEMO), "cpu", "fp32")
    assert animator.bundle.emotion_prototypes.expressions is not None
    audio = load_audio(SAMPLE)
    takes = {name: animator.animate(audio, with_head=False, direction=None if name == "voice" else parse_emotion(name)).emotional
             for name in ("voice", "happy:1", "angry:1")}
    width = {n: np.linalg.norm(f[:, landmarks["mouth_corner_left"]] - f[:, landmarks["mouth_corner_right"]], axis=-1).mean() for n, f in takes.items()}
    brows = [landmarks[k] for k in ("brow_inner_left", "brow_inner_right")]
    assert width["happy:1"] > width["voice"] + 0.02
    assert takes["angry:1"][:, brows, 1].mean() < takes["voice"][:, brows, 1].mean() - 0.002  # y up: the brows come down
    assert np.linalg.norm(takes["angry:1"] - takes["happy:1"], axis=-1).mean() > 0.002
