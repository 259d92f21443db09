"""The dense reference: materialised-scores attention and the causal mask.

Every other kernel in :mod:`agentos.kernels.attention` is checked against
:func:`vanilla_attention`.
"""

from __future__ import annotations

import math

import torch

from agentos.kernels.attention._checks import _acc_dtype, _check_qkv, _scale

__all__ = ["causal_mask", "vanilla_attention"]


def causal_mask(
    q_len: int,
    k_len: int,
    q_offset: int = 0,
    k_offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean ``[Q, K]`` mask, True where query ``q_offset + i`` may see key ``k_offset + j``."""
    qi = torch.arange(q_len, device=device)[:, None] + q_offset  # [Q, 1]
    kj = torch.arange(k_len, device=device)[None, :] + k_offset  # [1, K]
    return kj <= qi  # [Q, K]



def vanilla_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Materialised-scores attention: the reference every other kernel is checked against.

    Legend: B batch, H heads, Q queries, K keys, D head dim.

    Args:
        q: ``[B, H, Q, D]``; k, v: ``[B, H, K, D]``.
        causal: query ``i`` sees keys ``j <= i`` (top-left aligned when ``Q != K``).
        mask: optional, broadcastable to ``[B, H, Q, K]``: boolean (True = attend) or an additive
            float bias (``-inf`` = never attend).
        scale: score scale, default ``1 / sqrt(D)``.

    Returns:
        ``[B, H, Q, D]`` in q's dtype. Rows with no visible key come out as zeros.
        Scores are computed in float32 for half types, in float64 for float64.

    Raises:
        ValueError: shapes or dtypes that do not fit together.
    """
    _check_qkv(q, k, v)
    acc = _acc_dtype(q.dtype)
    sc = _scale(q.shape[-1], scale)
    scores = (q.to(acc) @ k.to(acc).transpose(-1, -2)) * sc  # [B, H, Q, K]
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, -math.inf)
        else:
            scores = scores + mask.to(acc)
    if causal:
        cm = causal_mask(q.shape[2], k.shape[2], device=q.device)  # [Q, K]
        scores = scores.masked_fill(~cm, -math.inf)
    empty = torch.isneginf(scores).all(dim=-1, keepdim=True)  # [B, H, Q, 1] rows with no key
    probs = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1) * ~empty  # [B, H, Q, K]
    return (probs @ v.to(acc)).to(q.dtype)  # [B, H, Q, D]
