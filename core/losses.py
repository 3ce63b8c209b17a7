"""Training losses of METHOD.md section 7: Lrec, Lcon, Ldiv and their sum.

Faces are (B, N, 3V) displacements from the template; "per-vertex MSE" is the squared L2
distance of each vertex, averaged over vertices and frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .model import ContrastiveHead, FaceMotion, interpolate_frames


def vertex_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_t ||y_t - ybar_t||^2 per vertex: (B, N, 3V) -> scalar (Ln, Le)."""
    b, n, v3 = prediction.shape
    return (prediction - target).reshape(b, n, v3 // 3, 3).pow(2).sum(-1).mean()


def rotation_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lr = mean_t ||R_t - Rbar_t||_F^2 over (B, N, 3, 3)."""
    return (prediction - target).pow(2).sum((-2, -1)).mean()


def translation_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lt = mean_t ||tau_t - taubar_t||^2 over (B, N, 3)."""
    return (prediction - target).pow(2).sum(-1).mean()


def contrastive_loss(
    head: ContrastiveHead, context: torch.Tensor, emotion: torch.Tensor, expression: torch.Tensor
) -> torch.Tensor:
    """Lcon: frames of speech and of expression (ye - yn) must pick each other out of the clip.

    context (B, kN, Dc), emotion (B, kN, De) raw encoder features; expression (B, N, 3V).
    f_t = Interp_{kN->N}([c; e]); g_t = ye_t - yn_t; S = f g^T / tau over the N frames of
    each clip; CE against the identity, symmetric over rows and columns as CLIP.
    """
    frames = expression.shape[1]
    speech = interpolate_frames(torch.cat([context, emotion], dim=-1), frames)
    f = F.normalize(head.speech(speech), dim=-1, eps=1e-8)
    g = F.normalize(head.face(expression), dim=-1, eps=1e-8)
    logits = head.log_inv_temperature.exp() * f @ g.transpose(1, 2)  # (B, N, N)
    labels = torch.arange(frames, device=logits.device).expand(logits.shape[0], -1)
    rows = F.cross_entropy(logits.transpose(1, 2), labels)  # class axis must be dim 1
    columns = F.cross_entropy(logits, labels)
    return 0.5 * (rows + columns)


def diversity_loss(
    rotation_1: torch.Tensor,
    translation_1: torch.Tensor,
    rotation_2: torch.Tensor,
    translation_2: torch.Tensor,
    noise_1: torch.Tensor,
    noise_2: torch.Tensor,
) -> torch.Tensor:
    """Ldiv = 1 / (D + 1e-5), D = (mean|R1 - R2| + mean|tau1 - tau2|) / mean|z1 - z2| (mode seeking)."""
    motion = (rotation_1 - rotation_2).abs().mean() + (translation_1 - translation_2).abs().mean()
    distance = motion / (noise_1 - noise_2).abs().mean()
    return 1.0 / (distance + 1e-5)


def total_loss(
    cfg: ModelConfig,
    prediction: FaceMotion,
    target: FaceMotion,
    contrastive: torch.Tensor | None = None,
    diversity: torch.Tensor | None = None,
    with_head: bool = True,
) -> dict[str, torch.Tensor]:
    """L = Lrec + lambda_con Lcon + lambda_div Ldiv, with each term reported by name.

    Lrec = Ln + Le + lambda_r Lr + lambda_t Lt; the single-stage ablation drops Ln, and the
    baseline (no emotion stage) has only Le on its one output.
    """
    terms: dict[str, torch.Tensor] = {"Le": vertex_loss(prediction.emotional, target.emotional)}
    if cfg.use_emotion_stage and not cfg.single_stage:
        terms["Ln"] = vertex_loss(prediction.neutral, target.neutral)
    if cfg.use_head and with_head:
        terms["Lr"] = rotation_loss(prediction.rotation, target.rotation)
        terms["Lt"] = translation_loss(prediction.translation, target.translation)
    total = terms["Le"] + terms.get("Ln", 0.0) + cfg.lambda_r * terms.get("Lr", 0.0) + cfg.lambda_t * terms.get("Lt", 0.0)
    terms["Lrec"] = total
    if contrastive is not None:
        terms["Lcon"] = contrastive
        total = total + cfg.lambda_con * contrastive
    if diversity is not None:
        terms["Ldiv"] = diversity
        total = total + cfg.lambda_div * diversity
    terms["loss"] = total
    return terms
