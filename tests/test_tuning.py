"""Personalized tuning: a style from a few clips of a person the bundle never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from talking_head.core.bundle import ModelBundle
from talking_head.app.cli import main
from talking_head.training.dataset import Corpus
from talking_head.core.pipeline import Animator
from talking_head.training.tiny import save_random_encoders
from talking_head.training.train import TrainingConfig, train
from talking_head.core.pipeline import person_for
from talking_head.core.tuning import Style, TuningClip, TuningError, read_mesh_sequence, tune_style

from conftest import speech_like
from tiny_corpus import make_corpus

SENTENCES = (1, 2, 3, 4, 5, 33, 37)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained on two seen subjects who smile little (F2) and a lot (M3)."""
    root = tmp_path_factory.mktemp("tuning")
    corpus = make_corpus(root / "corpus", sentences=SENTENCES, smile_gain={"F2": 0.2, "M3": 1.6, "F1": 1.2})
    encoders = save_random_encoders(root / "enc", "tiny")
    # lambda_con / lambda_div at the scale of these small displacements (see README, training):
    # METHOD.md's 1 and 0.01 swamp Le here and leave a model worse than the template.
    model = {"d_model": 32, "ff_dim": 64, "max_frames": 40, "window_overlap": 10, "lambda_con": 1e-4, "lambda_div": 1e-7}
    settings = TrainingConfig(epochs=15, lr=2e-3, model=model)
    train(corpus, root / "bundle", settings, context_encoder=str(encoders[0]), emotion_encoder=str(encoders[1]), progress=False)
    return corpus, root / "bundle"


def clips_of(corpus_dir, bundle, subject, sentences):
    corpus = Corpus(corpus_dir)
    out = []
    for s in sentences:
        name = f"{subject}_e{s:02d}"
        faces = corpus.vertices(name) - corpus.template(subject) + bundle.template.vertices
        out.append(TuningClip(str(corpus.wav_path(name)), name, faces))
    return out


def test_tuned_weights_stay_on_the_simplex(trained):
    corpus_dir, bundle_dir = trained
    bundle = ModelBundle.load(bundle_dir)
    animator = Animator(bundle)
    tuning = clips_of(corpus_dir, bundle, "F1", (1, 2, 3, 4))
    held_out = clips_of(corpus_dir, bundle, "F1", (5, 33))
    style = tune_style(animator, tuning, held_out, "F1 style", subject="F2")
    alpha = np.array(style.alpha)
    assert np.all(alpha >= 0) and abs(alpha.sum() - 1) < 1e-5  # projection onto the simplex
    pivots = bundle.model.person_embeddings().detach().numpy()
    assert np.allclose(alpha @ pivots, style.p, atol=1e-5)
    assert style.error_before > 0 and style.error_after > 0
    direct = tune_style(animator, tuning, held_out, "direct", mode="direct", subject="F2")
    assert direct.mode == "direct" and len(direct.p) == bundle.config.d_model


def test_tuning_lowers_a_held_out_subjects_error_on_other_clips(trained):
    """F1 smiles 1.2 on emotional takes; the untuned F2 style smiles 0.2, M3 1.6."""
    corpus_dir, bundle_dir = trained
    bundle = ModelBundle.load(bundle_dir)
    animator = Animator(bundle)
    tuning = clips_of(corpus_dir, bundle, "F1", (1, 2, 3, 4, 5))
    unseen_clips = clips_of(corpus_dir, bundle, "F1", (33, 37))  # never used for tuning
    convex = tune_style(animator, tuning, unseen_clips, "convex", subject="F2")
    assert convex.error_after < 0.8 * convex.error_before
    assert convex.alpha[bundle.config.subject_index("M3")] > 0.5  # towards the stronger smiler
    direct = tune_style(animator, tuning, unseen_clips, "direct", mode="direct", subject="F2")
    assert direct.error_after < 0.8 * direct.error_before
    picked = tune_style(animator, tuning, unseen_clips, "picked")  # speaking style chosen by the clips
    assert picked.subject == "M3" and picked.error_after < 0.8 * picked.error_before


def test_style_file_round_trip_and_animate_with_it(tmp_path, trained):
    corpus_dir, bundle_dir = trained
    out = tmp_path / "f1.json"
    code = main(["tune", "--bundle", str(bundle_dir), "--out", str(out), "--data", str(corpus_dir), "--subject", "F1", "--clips", "3", "--speaking-style", "F2"])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("name", "bundle", "alpha", "p", "clips", "error_before", "error_after"):
        assert key in data
    assert len(data["clips"]) == 4  # 3 for tuning, 1 to stop early
    style = Style.load(out)
    wav = Corpus(corpus_dir).wav_path("F1_e33")
    assert main(["animate", str(wav), "--bundle", str(bundle_dir), "--out", str(tmp_path / "a.npz"), "--style", str(out), "--stages"]) == 0
    assert main(["animate", str(wav), "--bundle", str(bundle_dir), "--out", str(tmp_path / "b.npz"), "--subject", "F2", "--stages"]) == 0
    with_style, plain = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert not np.allclose(with_style["emotional"], plain["emotional"])
    assert np.array_equal(with_style["neutral"], plain["neutral"])  # the style changes Ge only
    assert style.subject == "F2"


def test_interpolation_reproduces_both_ends_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(128).astype(np.float32), rng.standard_normal(128).astype(np.float32)
    assert np.array_equal(Style.interpolate(a, b, 1.0), a)
    assert np.array_equal(Style.interpolate(a, b, 0.0), b)
    assert np.allclose(Style.interpolate(a, b, 0.25), 0.25 * a + 0.75 * b)


def test_bad_tuning_inputs(tmp_path, trained):
    corpus_dir, bundle_dir = trained
    bundle = ModelBundle.load(bundle_dir)
    animator = Animator(bundle)
    clips = clips_of(corpus_dir, bundle, "F1", (1, 2))
    with pytest.raises(TuningError, match="at least 2 clips"):
        tune_style(animator, clips[:1], [], "x")
    wrong = np.zeros((10, 59, 3), np.float32)
    np.save(tmp_path / "wrong.npy", wrong)
    with pytest.raises(TuningError, match="59 vertices per frame, the bundle's template has 60"):
        read_mesh_sequence(tmp_path / "wrong.npy", 60)
    long_audio = tmp_path / "long.wav"
    soundfile.write(str(long_audio), speech_like(3.0), 16_000)
    mismatched = TuningClip(str(long_audio), "m", clips[0].vertices)  # about 1.2 s of faces
    with pytest.raises(TuningError, match="must match within 0.5 s"):
        tune_style(animator, [mismatched, clips[1]], [], "x")
    code = main(["tune", "--bundle", str(bundle_dir), "--out", str(tmp_path / "s.json"), "--clip", str(long_audio), str(tmp_path / "wrong.npy")])
    assert code == 2


def test_chosen_styles_give_the_person_embedding(tmp_path, tiny_bundle_dir):
    """Subjects, style files and a blend of two, as the panel's Style chooser sends them."""
    bundle = ModelBundle.load(tiny_bundle_dir)
    pivots = bundle.model.person_embeddings().detach().numpy()  # (S, d): F2 F3 F4 M3 M4 M5
    style = Style("s", str(tiny_bundle_dir), [0, 0.5, 0.5, 0, 0, 0], (0.5 * pivots[1] + 0.5 * pivots[2]).tolist(), subject="F4")
    style.save(tmp_path / "s.json")
    mine = {"file": str(tmp_path / "s.json")}
    assert person_for(bundle, {"subject": "F3"}) == ("F3", None)  # exactly the subject's own take
    subject, p = person_for(bundle, mine)
    assert subject == "F4" and np.array_equal(p, np.float32(style.p))
    assert person_for(bundle, dict(mine, subject="M3"))[0] == "M3"  # Gn speaking like another subject
    subject, p = person_for(bundle, {"subject": "F3"}, mine, 1.0)
    assert subject == "F3" and np.array_equal(p, pivots[1])
    subject, p = person_for(bundle, {"subject": "F3"}, mine, 0.0)
    assert subject == "F4" and np.array_equal(p, np.float32(style.p))
    subject, p = person_for(bundle, {"subject": "F3"}, {"subject": "M5"}, 0.25)
    assert subject == "M5" and np.allclose(p, 0.25 * pivots[1] + 0.75 * pivots[5], atol=1e-6)
    Style("other", "x", [1.0], [0.0] * 7, subject="F2").save(tmp_path / "other.json")
    with pytest.raises(TuningError, match="tuned for another bundle"):
        person_for(bundle, {"file": str(tmp_path / "other.json")})
    with pytest.raises(TuningError, match="between 0 and 1"):
        person_for(bundle, {"subject": "F3"}, mine, 1.5)


def test_alembic_clips_need_blenders_python_module(tmp_path, monkeypatch):
    import importlib.util

    clip = tmp_path / "clip.abc"
    clip.write_bytes(b"Ogawa")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else find_spec(name, *a))
    from talking_head.app.clips import read_clip

    with pytest.raises(TuningError, match="needs Blender's Python module: pip install bpy"):
        read_clip(clip, 60)  # the command line's reader
    with pytest.raises(TuningError, match="Alembic clips are read by `talking-head tune` or in Blender"):
        read_mesh_sequence(clip, 60)  # core alone never starts Blender
