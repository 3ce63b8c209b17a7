"""The generators: masks, incremental decoding, rotations, losses, ablation switches."""

from __future__ import annotations

import math

import pytest
import numpy as np
import torch

from talking_head.core.config import ModelConfig
from talking_head.core.losses import contrastive_loss, diversity_loss, rotation_loss, total_loss, translation_loss, vertex_loss
from talking_head.core.model import ContrastiveHead, FaceMotion, TalkingHeadModel, head_noise
from talking_head.core.rotation import rotation_from_6d
from talking_head.core.transformer import alignment_bias, causal_bias, window_start

from reference_decoder import generate_reference

NEG = float("-inf")


def small_config(**kwargs) -> ModelConfig:
    base = dict(n_vertices=20, subjects=["A", "B", "C"], context_dim=12, emotion_dim=10, max_frames=16, window_overlap=6)
    return ModelConfig(**{**base, **kwargs})


def rough(model: TalkingHeadModel) -> TalkingHeadModel:
    """Output layers at PyTorch's default (large) init, so comparisons have large values to check."""
    for module in model.modules():
        if module in (model.neutral.viseme_out, getattr(model.emotion, "expression_out", None), getattr(model.head, "motion_out", None)):
            module.reset_parameters()
    return model


def random_inputs(frames: int, cfg: ModelConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(1, cfg.k * frames, cfg.context_dim, generator=g)
    emotion = torch.randn(1, cfg.k * frames, cfg.emotion_dim, generator=g)
    return context, emotion, head_noise(seed, cfg.k * frames, cfg.d_model)


def test_alignment_mask_exact_values():
    # METHOD.md section 2, 1-indexed: B(i, j) = 0 iff k(i-1) < j <= k i.
    expected = torch.tensor(
        [
            [0, 0, NEG, NEG, NEG, NEG],
            [NEG, NEG, 0, 0, NEG, NEG],
            [NEG, NEG, NEG, NEG, 0, 0],
        ]
    )
    assert torch.equal(alignment_bias(3, k=2), expected)
    k3 = alignment_bias(2, k=3)
    assert torch.equal(k3[1], torch.tensor([NEG, NEG, NEG, 0, 0, 0]))


def test_causal_mask_exact_values():
    assert torch.equal(causal_bias(3), torch.tensor([[0, NEG, NEG], [0, 0, NEG], [0, 0, 0]]))


def test_window_schedule_keeps_overlap_as_prompt():
    assert [window_start(t, 10, 4) for t in (0, 9, 10, 15, 16, 21, 22)] == [0, 0, 6, 6, 12, 12, 18]


@pytest.mark.parametrize("frames", [1, 7, 16, 45])
@pytest.mark.parametrize("variant", ["full", "no-head", "baseline"])
def test_incremental_decoding_equals_naive_recomputation(frames, variant):
    torch.manual_seed(1)
    cfg = ModelConfig.for_variant(variant, **dict(n_vertices=20, subjects=["A", "B"], context_dim=12, emotion_dim=10, max_frames=16, window_overlap=6))
    model = rough(TalkingHeadModel(cfg)).eval()
    context, emotion, noise = random_inputs(frames, cfg)
    subject = torch.tensor([1])
    fast = model.generate(context, emotion, subject, noise)
    slow = generate_reference(model, context, emotion, subject, noise)
    assert fast.emotional.shape == (1, frames, 60)
    for name in ("neutral", "emotional", "rotation", "translation"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert torch.allclose(a, b, atol=1e-5, rtol=0), (name, (a - b).abs().max())
    # the check has teeth: the outputs move from frame to frame
    if frames > 1:
        assert fast.emotional.std(dim=1).mean() > 1e-3


def test_a_take_decodes_with_the_weights_of_its_time():
    """`Decoder.step` gathers a block's weights once per cache (one clip or stream): a take made
    after the weights change (a training step, a fine-tune) must use the new ones, as the naive
    recomputation does."""
    torch.manual_seed(2)
    cfg = small_config()
    model = rough(TalkingHeadModel(cfg)).eval()
    context, emotion, noise = random_inputs(12, cfg)
    subject = torch.tensor([0])
    before = model.generate(context, emotion, subject, noise)
    with torch.no_grad():
        for block in model.neutral.decoder.blocks:
            block.self_attn.value.weight.mul_(-1.5)
            block.ff[3].bias.add_(0.3)
    after = model.generate(context, emotion, subject, noise)
    reference = generate_reference(model, context, emotion, subject, noise)
    assert not torch.allclose(before.neutral, after.neutral, atol=1e-3)
    assert torch.allclose(after.neutral, reference.neutral, atol=1e-5, rtol=0)


def test_generators_are_causal_in_their_features():
    cfg = small_config()
    model = rough(TalkingHeadModel(cfg)).eval()
    context, emotion, noise = random_inputs(30, cfg)
    before = model.generate(context, emotion, torch.tensor([0]), noise)
    context2, emotion2 = context.clone(), emotion.clone()
    context2[:, 2 * 20 :] += 1.0
    emotion2[:, 2 * 20 :] += 1.0
    after = model.generate(context2, emotion2, torch.tensor([0]), noise)
    assert torch.equal(before.emotional[:, :20], after.emotional[:, :20])
    assert torch.equal(before.rotation[:, :20], after.rotation[:, :20])
    assert not torch.allclose(before.emotional[:, 20:], after.emotional[:, 20:])


def test_rotations_are_proper_for_any_decoder_output():
    raw = torch.randn(500, 6) * 3
    r = rotation_from_6d(raw)
    eye = torch.eye(3).expand(500, 3, 3)
    assert torch.allclose(r @ r.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(500), atol=1e-5)
    assert torch.allclose(rotation_from_6d(torch.zeros(6)), torch.eye(3))


def test_head_noise_depends_on_seed_not_length():
    a = head_noise(3, 600, 8)
    assert torch.equal(a[:, :100], head_noise(3, 100, 8))
    assert not torch.equal(a, head_noise(4, 600, 8))


def test_smoothed_head_noise_is_smooth_unit_and_the_same_in_chunks():
    from talking_head.core.model import draw_noise

    z = head_noise(3, 4000, 16, sigma=4.0)[0].numpy()
    assert 0.85 < z.std() < 1.15  # the kernel keeps unit variance
    lag1 = np.mean([np.corrcoef(z[:-1, c], z[1:, c])[0, 1] for c in range(16)])
    assert lag1 > 0.9 and abs(np.mean([np.corrcoef(head_noise(3, 4000, 16)[0, :-1, c], head_noise(3, 4000, 16)[0, 1:, c])[0, 1] for c in range(16)])) < 0.1
    whole = head_noise(3, 700, 16, sigma=4.0)
    for first in (0, 5, 13, 256, 690):  # a stream's chunks, near the start (mirrored) and across blocks
        assert torch.allclose(head_noise(3, 700, 16, first=first, sigma=4.0), whole[:, first:], atol=1e-6)
    assert torch.allclose(head_noise(3, 300, 16, sigma=4.0), whole[:, :300], atol=1e-6)  # the clip's end reads on
    fresh = draw_noise(2, 500, 8, 4.0, "cpu")
    assert fresh.shape == (2, 500, 8) and 0.8 < float(fresh.std()) < 1.2
    assert torch.equal(head_noise(3, 600, 8, sigma=0.0), head_noise(3, 600, 8))


def test_person_embedding_override_changes_only_expression():
    cfg = small_config()
    model = TalkingHeadModel(cfg).eval()
    context, emotion, noise = random_inputs(10, cfg)
    subject = torch.tensor([0])
    own = model.generate(context, emotion, subject, noise)
    pivots = model.person_embeddings()
    same = model.generate(context, emotion, subject, noise, person=pivots[0:1])
    other = model.generate(context, emotion, subject, noise, person=pivots[2:3])
    assert torch.allclose(own.emotional, same.emotional, atol=1e-6)
    assert torch.equal(own.neutral, other.neutral)
    assert not torch.allclose(own.emotional, other.emotional)


# ------------------------------------------------------------------ losses, hand-checked


def test_vertex_loss_is_squared_distance_per_vertex():
    pred = torch.zeros(1, 2, 6)  # 2 frames, 2 vertices
    target = torch.tensor([[[3.0, 4.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]])
    # per-vertex squared norms: 25, 0, 1, 0 -> mean 6.5
    assert vertex_loss(pred, target).item() == pytest.approx(6.5)


def test_rotation_and_translation_losses():
    eye = torch.eye(3).expand(1, 2, 3, 3)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0])).expand(1, 2, 3, 3)
    assert rotation_loss(flip, eye).item() == pytest.approx(8.0)  # two entries differ by 2
    tau = torch.tensor([[[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]]])
    assert translation_loss(tau, torch.zeros_like(tau)).item() == pytest.approx(4.5)


def test_diversity_loss_matches_formula():
    r1, r2 = torch.zeros(1, 2, 3, 3), torch.full((1, 2, 3, 3), 0.5)
    t1, t2 = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    z1, z2 = torch.zeros(1, 4, 8), torch.full((1, 4, 8), 2.0)
    d = (0.5 + 1.0) / 2.0
    assert diversity_loss(r1, t1, r2, t2, z1, z2).item() == pytest.approx(1 / (d + 1e-5))


def test_contrastive_loss_hand_computed():
    cfg = small_config(context_dim=2, emotion_dim=2, n_vertices=2, contrastive_dim=2)
    head = ContrastiveHead(cfg)
    with torch.no_grad():
        head.speech.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        head.speech.bias.zero_()
        head.face.weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0]]))
        head.face.bias.zero_()
        head.log_inv_temperature.fill_(0.0)  # tau = 1
    # two frames; speech features (after kN -> N) [1,0] and [0,1]; faces [1,0] and [1,1]/sqrt2
    context = torch.tensor([[[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]]])
    emotion = torch.zeros(1, 4, 2)
    expression = torch.tensor([[[1.0, 0, 0, 0, 0, 0], [1.0, 1.0, 0, 0, 0, 0]]])
    c = 1 / math.sqrt(2)
    s = torch.tensor([[1.0, c], [0.0, c]])  # S[i, j] = f_i . g_j
    rows = torch.nn.functional.cross_entropy(s, torch.arange(2))
    cols = torch.nn.functional.cross_entropy(s.t(), torch.arange(2))
    # context is interpolated from 4 to 2 frames with align_corners: frames 0 and 3 survive
    assert contrastive_loss(head, context, emotion, expression).item() == pytest.approx(0.5 * (rows + cols).item(), rel=1e-5)


def test_total_loss_weights_and_ablations():
    cfg = small_config()
    zeros = FaceMotion(torch.zeros(1, 2, 60), torch.zeros(1, 2, 60), torch.eye(3).expand(1, 2, 3, 3), torch.zeros(1, 2, 3))
    pred = FaceMotion(torch.ones(1, 2, 60), torch.ones(1, 2, 60) * 2, torch.eye(3).expand(1, 2, 3, 3) * 0, torch.ones(1, 2, 3))
    terms = total_loss(cfg, pred, zeros, contrastive=torch.tensor(0.5), diversity=torch.tensor(10.0))
    assert terms["Ln"].item() == pytest.approx(3.0)
    assert terms["Le"].item() == pytest.approx(12.0)
    assert terms["Lr"].item() == pytest.approx(3.0)
    assert terms["Lt"].item() == pytest.approx(3.0)
    assert terms["loss"].item() == pytest.approx(3 + 12 + 0.01 * 3 + 0.01 * 3 + 0.5 + 0.01 * 10)
    single = total_loss(small_config(single_stage=True), pred, zeros)
    assert "Ln" not in single and single["Lrec"].item() == pytest.approx(12 + 0.06)


@pytest.mark.parametrize("variant", ["full", "two-stage", "single-stage", "no-head", "baseline"])
def test_teacher_forcing_trains_every_variant(variant):
    torch.manual_seed(0)
    cfg = ModelConfig.for_variant(variant, n_vertices=20, subjects=["A", "B"], context_dim=12, emotion_dim=10, max_frames=16, window_overlap=6)
    model = TalkingHeadModel(cfg).train()
    context, emotion, noise = random_inputs(8, cfg)
    # targets that follow the audio features, so there is something to learn
    g = torch.Generator().manual_seed(5)
    frames_in = context[:, ::2]
    neutral = frames_in @ torch.randn(12, 60, generator=g) * 0.05
    emotional = neutral + frames_in @ torch.randn(12, 60, generator=g) * 0.02
    rotation = rotation_from_6d(frames_in @ torch.randn(12, 6, generator=g) * 0.05)
    target = FaceMotion(neutral, emotional, rotation, frames_in @ torch.randn(12, 3, generator=g) * 0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        pred = model(context, emotion, torch.tensor([1]), target, noise)
        con = contrastive_loss(model.contrastive, context, emotion, pred.emotional - pred.neutral) if model.contrastive else None
        terms = total_loss(cfg, pred, target, contrastive=con)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["Lrec"].item())
    assert losses[-1] < 0.5 * losses[0]
    assert (model.head is None) == (variant in ("no-head", "baseline"))
    assert (model.emotion is None) == (variant == "baseline")
