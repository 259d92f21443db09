"""Knowledge distillation from the dense teacher: logit KL plus hidden-state MSE.

    loss = T^2 * KL(softmax(t / T) || softmax(s / T))  +  hidden_weight * mean_l MSE(h_s^l, h_t^l)

(Hinton et al., 2015, for the logits; TinyBERT-style hidden-state matching, layer by layer, over
the real tokens only). Both terms are zero when student and teacher agree exactly.

Legend: B batch, T tokens, C classes, D width, L hidden-state layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["distillation_loss"]


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 2.0,
    student_hidden: Sequence[Tensor] = (),
    teacher_hidden: Sequence[Tensor] = (),
    attention_mask: Tensor | None = None,
    hidden_weight: float = 1.0,
) -> Tensor:
    """The distillation loss of a batch (a scalar).

    Args:
        student_logits, teacher_logits: ``[B, C]``.
        temperature: softens both distributions; the KL term is scaled by ``T^2``.
        student_hidden, teacher_hidden: per-layer hidden states ``[B, T, D]`` (same count).
        attention_mask: ``[B, T]``, 1 for real tokens; padding is not matched.
        hidden_weight: weight of the hidden-state term.

    Raises:
        ValueError: a non-positive temperature or different numbers of hidden-state layers.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if len(student_hidden) != len(teacher_hidden):
        raise ValueError(f"{len(student_hidden)} student and {len(teacher_hidden)} teacher hidden states")
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits.detach() / t, dim=-1),
                  reduction="batchmean", log_target=True) * t * t
    if not student_hidden or hidden_weight == 0:
        return kl
    weights = (attention_mask.to(student_logits.dtype) if attention_mask is not None
               else torch.ones(student_hidden[0].shape[:2], dtype=student_logits.dtype))  # [B, T]
    total = weights.sum() * student_hidden[0].shape[-1]
    mse = sum(((s - h.detach()).pow(2) * weights[..., None]).sum() / total for s, h in zip(student_hidden, teacher_hidden))
    return kl + hidden_weight * mse / len(student_hidden)
