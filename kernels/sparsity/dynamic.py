"""Dynamic sparsity at a fixed budget: RigL's prune-and-regrow (Evci et al., 2020).

Every ``ΔT`` steps, in each layer: drop the ``k`` active weights of smallest magnitude, then grow
the ``k`` inactive connections with the largest dense-gradient magnitude (new weights start at
zero). The number of active weights never changes, so the sparsity stays exactly what it was.
``k = drop_fraction(step) * active``, with ``drop_fraction`` decaying by a cosine to zero.

Ties: lower magnitude / gradient first, then the earlier index (as in
:mod:`agentos.kernels.sparsity.masks`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["rigl_drop_fraction", "rigl_update", "rigl_update_reference"]


def rigl_drop_fraction(step: int, total_steps: int, initial: float = 0.3) -> float:
    """Cosine-decayed drop fraction ``initial / 2 * (1 + cos(pi * step / total_steps))``.

    Raises:
        ValueError: ``initial`` outside ``[0, 1]`` or ``total_steps < 1``.
    """
    if not 0.0 <= initial <= 1.0 or total_steps < 1:
        raise ValueError(f"need 0 <= initial <= 1 and total_steps >= 1, got {initial}, {total_steps}")
    return initial / 2 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def rigl_update(weight: Tensor, mask: Tensor, grad: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """One prune-and-regrow step on one layer.

    Args:
        weight: the layer's weight (pruned entries are zero), any shape.
        mask: its ``bool`` mask, same shape.
        grad: the dense gradient (of the loss w.r.t. the *masked* weight, at every entry).
        fraction: share of the active weights to drop and regrow, in ``[0, 1]``.

    Returns:
        ``(new_mask, new_weight)``: same number of ``True`` as ``mask``; grown entries are zero in
        ``new_weight``, dropped entries are zeroed.

    Raises:
        ValueError: shapes differ or ``fraction`` outside ``[0, 1]``.
    """
    if weight.shape != mask.shape or grad.shape != mask.shape:
        raise ValueError(f"weight {tuple(weight.shape)}, mask {tuple(mask.shape)} and grad "
                         f"{tuple(grad.shape)} must have one shape")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    flat_mask = mask.reshape(-1)
    active = int(flat_mask.sum())
    k = min(int(fraction * active), flat_mask.numel() - active) if active else 0
    new_mask = flat_mask.clone()
    if k == 0:
        return mask.clone(), weight.detach() * mask
    w = weight.detach().reshape(-1).abs().to(torch.float64)
    g = grad.detach().reshape(-1).abs().to(torch.float64)
    # drop: the k smallest-magnitude active entries (inactive ones sort last)
    drop_key = torch.where(flat_mask, w, torch.full_like(w, math.inf))
    new_mask[torch.argsort(drop_key, stable=True)[:k]] = False
    # grow: the k largest-gradient entries not active after the drop (may regrow a dropped one)
    grow_key = torch.where(new_mask, torch.full_like(g, -math.inf), g)
    order = torch.argsort(-grow_key, stable=True)[:k]
    grown = torch.zeros_like(new_mask)
    grown[order] = True
    new_mask |= grown
    new_weight = torch.where(new_mask & ~grown & flat_mask, weight.detach().reshape(-1), torch.zeros_like(weight.detach().reshape(-1)))
    return new_mask.reshape(mask.shape), new_weight.reshape(weight.shape)


def rigl_update_reference(weight: Tensor, mask: Tensor, grad: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """Plain reference for :func:`rigl_update`: Python sorts over ``(key, index)`` pairs."""
    w = weight.detach().reshape(-1).tolist()
    g = grad.detach().reshape(-1).tolist()
    m = mask.reshape(-1).tolist()
    active = sum(m)
    k = min(int(fraction * active), len(m) - active) if active else 0
    after = list(m)
    for _, i in sorted((abs(w[i]), i) for i in range(len(m)) if m[i])[:k]:
        after[i] = False
    grown = {i for _, i in sorted((-abs(g[i]), i) for i in range(len(m)) if not after[i])[:k]}
    final = [after[i] or i in grown for i in range(len(m))]
    new_w = [w[i] if (final[i] and m[i] and i not in grown) else 0.0 for i in range(len(m))]
    return (torch.tensor(final, dtype=torch.bool).reshape(mask.shape),
            torch.tensor(new_w, dtype=weight.dtype).reshape(weight.shape))
