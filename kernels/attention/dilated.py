"""Dilated attention (LongNet) and its dense reference mask."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from agentos.kernels.attention._checks import _check_positive, _check_qkv, _scale
from agentos.kernels.attention._tasks import _Task, _TaskAttention
from agentos.kernels.attention.vanilla import causal_mask

__all__ = ["dilated_attention", "dilated_mask"]


def dilated_mask(
    seq_len: int,
    heads: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    causal: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """How many times each key enters each query's softmax in :func:`dilated_attention`.

    Returns an integer ``[H, T, T]`` tensor. Branch ``(w, r)`` lets query ``i`` see key ``j`` in
    head ``h`` when both lie in the same length-``w`` segment and both sit at in-segment offsets
    ``= h mod r (mod r)``. Merging branches by their softmax denominators is exactly dense
    attention with an additive bias of ``log(count)`` (a key two branches share counts twice), so
    the reference is ``vanilla_attention(q, k, v, mask=count.log())``.
    """
    _check_dilated_args(segment_lengths, dilation_rates)
    pos = torch.arange(seq_len, device=device)  # [T]
    count = torch.zeros(heads, seq_len, seq_len, dtype=torch.int64, device=device)  # [H, T, T]
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        same_segment = (pos[:, None] // w) == (pos[None, :] // w)  # [T, T]
        offset = pos % w % r  # [T]
        for h in range(heads):
            s = h % r
            hit = same_segment & (offset[:, None] == s) & (offset[None, :] == s)  # [T, T]
            count[h] += hit.to(torch.int64)
    if causal:
        count = count * causal_mask(seq_len, seq_len, device=device).to(torch.int64)
    return count



def _check_dilated_args(segment_lengths: Sequence[int], dilation_rates: Sequence[int]) -> None:
    if len(segment_lengths) == 0 or len(segment_lengths) != len(dilation_rates):
        raise ValueError(
            "segment_lengths and dilation_rates must be non-empty and of equal length (one "
            f"(w, r) pair per branch), got {list(segment_lengths)} and {list(dilation_rates)}"
        )
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        _check_positive("segment length", w)
        _check_positive("dilation rate", r)
        if r > w:
            raise ValueError(f"dilation rate {r} exceeds its segment length {w}; use r <= w")


def _dilated_tasks(
    seq_len: int,
    heads: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    causal: bool,
    device: torch.device,
) -> tuple[list[_Task], int]:
    """Tasks of every branch and the padded length they index into."""
    unit = math.lcm(*segment_lengths)
    padded = -(-seq_len // unit) * unit  # T rounded up to a multiple of every w
    tasks: list[_Task] = []
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        n = padded // w
        seg_starts = torch.arange(n, device=device) * w  # [N]
        for s in range(min(r, heads)):
            rows = seg_starts[:, None] + torch.arange(s, w, r, device=device)[None, :]  # [N, L]
            bias = None
            if not causal and padded > seq_len:
                pad_key = rows >= seq_len  # [N, L]
                bias = torch.zeros(pad_key.shape, device=device).masked_fill(pad_key, -math.inf)
                bias = bias[:, None, None, :]  # [N, 1, 1, L]
            tasks.append(_Task(slice(s, None, r), rows, rows, causal=causal, bias=bias))
    return tasks, padded


def dilated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """LongNet dilated attention (Ding et al., 2023), exact for its pattern.

    Legend: B batch, H heads, T sequence length, D head dim, N segments, L selected per segment.

    For each branch ``(w, r)``: cut the sequence into segments of length ``w``; in head ``h``
    keep every ``r``-th position of each segment starting at offset ``h mod r``; attend densely
    among the kept positions of each segment (all segments batched in one call); scatter back.
    Branches merge weighted by their softmax denominators (log-sum-exp), which equals dense
    attention with bias ``log(count)`` from :func:`dilated_mask`. A position no branch keeps in
    some head gets a zero output there (include an ``r = 1`` branch to cover every position).
    T need not be a multiple of ``w``: the sequence is padded internally and padded keys masked.

    Args:
        q, k, v: ``[B, H, T, D]``, same T.
        segment_lengths, dilation_rates: one ``(w, r)`` per branch, ``1 <= r <= w``.
        causal: within each selection, query sees only earlier keys.

    Returns:
        ``[B, H, T, D]`` in q's dtype, differentiable in q, k, v.

    Raises:
        ValueError: bad shapes/dtypes, q and k of different length, mismatched or invalid
            ``(w, r)`` lists.
    """
    _check_qkv(q, k, v)
    _check_dilated_args(segment_lengths, dilation_rates)
    seq_len = q.shape[2]
    if k.shape[2] != seq_len:
        raise ValueError(f"dilated_attention needs q and k of one length, got {seq_len} and {k.shape[2]}")
    tasks, padded = _dilated_tasks(seq_len, q.shape[1], segment_lengths, dilation_rates, causal, q.device)
    if padded > seq_len:
        pad = (0, 0, 0, padded - seq_len)
        q, k, v = (torch.nn.functional.pad(x, pad) for x in (q, k, v))  # [B, H, T', D]
    out, _ = _TaskAttention.apply(q, k, v, tasks, _scale(q.shape[-1], scale))
    return out[:, :, :seq_len]
