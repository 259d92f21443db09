"""Sliding-window (local) attention and its dense mask."""

from __future__ import annotations

import math

import torch

from agentos.kernels.attention._checks import _check_positive, _check_qkv, _scale
from agentos.kernels.attention._tasks import _Task, _TaskAttention

__all__ = ["sliding_window_attention", "sliding_window_mask"]


def sliding_window_mask(
    seq_len: int, window: int, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean ``[T, T]`` mask of :func:`sliding_window_attention`'s pattern.

    Causal: ``i - window < j <= i``. Bidirectional: ``|i - j| < window``.
    """
    i = torch.arange(seq_len, device=device)[:, None]  # [T, 1]
    j = torch.arange(seq_len, device=device)[None, :]  # [1, T]
    if causal:
        return (j <= i) & (j > i - window)
    return (j - i).abs() < window



def _window_tasks(
    seq_len: int, window: int, causal: bool, block: int, device: torch.device
) -> list[_Task]:
    tasks: list[_Task] = []
    for qs in range(0, seq_len, block):
        qe = min(qs + block, seq_len)
        ks = max(0, qs - window + 1)
        ke = qe if causal else min(seq_len, qe + window - 1)
        i = torch.arange(qs, qe, device=device)[:, None]  # [Q, 1]
        j = torch.arange(ks, ke, device=device)[None, :]  # [1, K]
        allowed = ((j <= i) & (j > i - window)) if causal else ((j - i).abs() < window)
        bias = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, -math.inf)  # [Q, K]
        tasks.append(_Task(slice(None), slice(qs, qe), slice(ks, ke), bias=bias))
    return tasks


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    causal: bool = True,
    block_size: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Local attention: each query sees the keys within ``window`` positions.

    Legend: B batch, H heads, T sequence length, D head dim.

    Causal: query ``i`` sees ``i - window < j <= i``; bidirectional: ``|i - j| < window``
    (see :func:`sliding_window_mask`). Queries run in blocks of ``block_size`` (default
    ``window``), each against the key span it can reach, so work grows linearly in T.

    Args:
        q, k, v: ``[B, H, T, D]``, same T.
        window: keys per side, counting the query's own position; ``window >= T`` is dense.

    Returns:
        ``[B, H, T, D]`` in q's dtype, differentiable in q, k, v.

    Raises:
        ValueError: bad shapes/dtypes, q and k of different length, window or block_size < 1.
    """
    _check_qkv(q, k, v)
    _check_positive("window", window)
    block = window if block_size is None else block_size
    _check_positive("block_size", block)
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"sliding_window_attention needs q and k of one length, got {q.shape[2]} and {k.shape[2]}")
    tasks = _window_tasks(q.shape[2], window, causal, block, q.device)
    out, _ = _TaskAttention.apply(q, k, v, tasks, _scale(q.shape[-1], scale))
    return out
