"""Rotations for head motion: the continuous 6-D representation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Added to the decoder's raw 6 numbers so that a zero output is the identity rotation.
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """Two 3-vectors -> proper rotation matrix by Gram-Schmidt (Zhou et al. 2019).

    x: (..., 6) raw decoder output; returns (..., 3, 3) with columns b1, b2, b3 = b1 x b2,
    so R R^T = I and det R = 1 for any input (METHOD.md section 6, Decision).
    """
    offset = x.new_tensor(IDENTITY_6D)
    a = x + offset
    b1 = F.normalize(a[..., 0:3], dim=-1, eps=1e-8)
    a2 = a[..., 3:6]
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)

