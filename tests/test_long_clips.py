"""Long clips in bounded memory: the (N, V, 3) arrays are combined a chunk of frames at a time,
with the same numbers as the whole-clip formulas (bench/long_audio_memory.py has the figure)."""

from __future__ import annotations

import numpy as np
import torch

from talking_head.core import animation as animation_module
from talking_head.core import arkit
from talking_head.core.arkit import ARKIT_NAMES, ArkitSolver
from talking_head.core.audio import load_audio
from talking_head.core.model import head_noise
from talking_head.core.pipeline import load_animator
from talking_head.training.tiny import make_tiny_bundle


def test_faces_in_chunks_are_the_whole_clip_formula(tiny_bundle_dir, clip_3s, monkeypatch):
    """v_t = R_t (ye_t - P) + P + tau_t, chunk by chunk, bit for bit."""
    monkeypatch.setattr(animation_module, "CHUNK_FRAMES", 7)  # 75 frames: ten chunks, the last one short
    animator = load_animator(tiny_bundle_dir, "cpu")
    animation = animator.animate(clip_3s, seed=5)
    template, pivot = animator.bundle.template.vertices, animator.bundle.pivot
    assert animation.n_frames > 7 * 5 and all(a.dtype == np.float32 for a in (animation.vertices, animation.emotional))
    whole = np.matmul(animation.emotional - pivot, animation.rotation.transpose(0, 2, 1)) + (pivot + animation.translation[:, None, :])
    np.testing.assert_array_equal(animation.vertices, whole)
    assert not np.shares_memory(animation.neutral, animation.emotional)
    assert np.abs(animation.emotional - template).max() < np.abs(template).max()  # displacements, around the template
    # A file without stages gives the face back from the final vertices, chunk by chunk too.
    recovered = animation_module.remove_head_motion(animation.vertices, animation.rotation, animation.translation, pivot)
    np.testing.assert_allclose(recovered, animation.emotional, atol=1e-5)


def test_arkit_solve_from_faces_in_chunks_is_the_solve_of_displacements(monkeypatch):
    rng = np.random.default_rng(0)
    shapes = np.zeros((len(ARKIT_NAMES), 60, 3), np.float32)
    shapes[:10, :40] = rng.normal(0, 0.01, (10, 40, 3))
    rest = rng.normal(0, 0.1, (60, 3)).astype(np.float32)
    weights = np.clip(rng.normal(0.3, 0.4, (50, 10)), 0, 1)
    faces = (rest + np.einsum("nk,kvc->nvc", weights, shapes[:10]) + rng.normal(0, 1e-4, (50, 60, 3))).astype(np.float32)
    solver = ArkitSolver(shapes)
    whole = solver.solve(faces - rest)
    monkeypatch.setattr(arkit, "SOLVE_CHUNK_FRAMES", 8)
    np.testing.assert_allclose(solver.solve(faces, rest=rest), whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(solver.solve(faces - rest), whole, rtol=0, atol=1e-6)


def test_a_bundle_without_emotion_stage_animates_around_its_template(tmp_path, clip_3s):
    """Gn's faces are also the emotional faces: the template is added once, not twice."""
    bundle = tmp_path / "baseline"
    make_tiny_bundle(bundle, n_vertices=200, use_emotion_stage=False, use_contrastive=False, use_head=False)
    animator = load_animator(bundle, "cpu")
    animation = animator.animate(clip_3s, seed=1)
    cfg, model = animator.bundle.config, animator.bundle.model
    context, emotion, _ = animator.features(load_audio(clip_3s))
    motion = model.generate(context, emotion, torch.tensor([0]), noise=head_noise(1, emotion.shape[1], cfg.d_model))
    expected = motion.neutral[0].numpy().reshape(-1, cfg.n_vertices, 3) + animator.bundle.template.vertices
    np.testing.assert_array_equal(animation.neutral, expected)
    np.testing.assert_array_equal(animation.emotional, expected)
