"""The naive reference decoder that tests compare `TalkingHeadModel.generate` against.

The plain reading of METHOD.md: autoregressive, and every step recomputes its whole current
window in vertex space (no key/value cache, no latent shortcut), feeding each generator the
3V-sized faces it produced. Slow, but obviously right; it uses the model's own submodules, so
the same weights give the same outputs as the incremental path up to rounding.
"""

from __future__ import annotations

import torch

from talking_head.core.model import FaceMotion, TalkingHeadModel, _decode_motion
from talking_head.core.transformer import Decoder, window_start


@torch.no_grad()
def generate_reference(
    model: TalkingHeadModel,
    context: torch.Tensor,
    emotion: torch.Tensor,
    subject: torch.Tensor,
    noise: torch.Tensor | None = None,
    person: torch.Tensor | None = None,
    with_head: bool = True,
) -> FaceMotion:
    """Gn -> Ge -> Gh frame by frame, each step recomputing its whole window in vertex space."""
    cfg = model.cfg
    frames = context.shape[1] // cfg.k

    # Gn: q_1 = W_id s; q_t = W_v(yn_{t-1} - T) + W_id s.
    n = model.neutral
    base = n.subject_in(model._subject_onehot(subject)).unsqueeze(1)  # (B, 1, d)
    neutral: list[torch.Tensor] = []
    _decode(
        n.decoder,
        n.audio_in(context),
        frames,
        lambda t: base if t == 0 else base + n.face_in(neutral[t - 1]),
        lambda h: neutral.append(n.viseme_out(h)),
        cfg,
    )
    faces = neutral

    # Ge: q_t = W_n(yn_t - T) + W_e(ye_{t-1} - T) + p, ye_0 = T; ye_t = yn_t + D_e(h_t).
    e = model.emotion
    if e is not None:
        p = model._person(subject, person).unsqueeze(1)
        zero = torch.zeros_like(neutral[0])
        emotional: list[torch.Tensor] = []

        def emotion_query(t: int) -> torch.Tensor:
            previous = emotional[t - 1] if t else zero
            return e.neutral_in(neutral[t]) + e.face_in(previous) + p

        def keep(h: torch.Tensor) -> None:
            emotional.append(neutral[len(emotional)] + e.expression_out(h))

        _decode(e.decoder, e.audio_in(emotion), frames, emotion_query, keep, cfg)
        faces = emotional

    # Gh: q_t = W_f(ye_t - T) + W_r(r_{t-1}) + W_tau(tau_{t-1}), r_0 = I, tau_0 = 0.
    h = model.head
    motions: list[torch.Tensor] = []
    if h is not None and with_head:
        if noise is None:
            noise = torch.randn(emotion.shape[0], emotion.shape[1], cfg.d_model, device=emotion.device)
        memory = h.memory(emotion, noise)
        b = emotion.shape[0]
        eye = torch.eye(3, dtype=memory.dtype, device=memory.device).reshape(1, 1, 9).expand(b, 1, 9)
        still = torch.zeros(b, 1, 3, dtype=memory.dtype, device=memory.device)

        def head_query(t: int) -> torch.Tensor:
            if t == 0:
                pose = h.rotation_in(eye) + h.translation_in(still)
            else:
                rotation, translation = _decode_motion(motions[t - 1])
                pose = h.rotation_in(rotation.reshape(b, 1, 9)) + h.translation_in(translation)
            return h.face_in(faces[t]) + pose

        _decode(h.decoder, memory, frames, head_query, lambda x: motions.append(h.motion_out(x)), cfg)

    neutral_all = torch.cat(neutral, dim=1)
    emotional_all = torch.cat(faces, dim=1)
    if motions:
        rotation, translation = _decode_motion(torch.cat(motions, dim=1))
    else:
        rotation, translation = model._identity_motion(emotional_all)
    return FaceMotion(neutral_all, emotional_all, rotation, translation)


def _decode(decoder: Decoder, memory, frames, query, keep, cfg) -> None:
    """Frame by frame, recomputing the whole current window each step (no cache)."""
    for t in range(frames):
        start = window_start(t, cfg.max_frames, cfg.window_overlap)
        queries = torch.cat([query(s) for s in range(start, t + 1)], dim=1)
        keep(decoder(queries, memory, start)[:, -1:])
