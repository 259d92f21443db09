"""FLOP counts of what each attention kernel computes.

Score entries x 4 x D: ``Q K^T`` and ``P V``, 2 FLOPs a multiply-accumulate. Each count walks the
same blocks its kernel runs, so it is exact for that kernel (causal blocks counted in full).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agentos.kernels.attention.blockwise import _block_tasks
from agentos.kernels.attention.dilated import _check_dilated_args, _dilated_tasks

__all__ = ["blockwise_flops", "dense_flops", "dilated_flops", "sliding_window_flops"]


def dense_flops(batch: int, heads: int, seq_len: int, head_dim: int) -> int:
    """FLOPs of materialised attention: every ``T x T`` score, causal or not (``4 B H T^2 D``)."""
    return 4 * batch * heads * seq_len * seq_len * head_dim


def blockwise_flops(
    batch: int, heads: int, seq_len: int, head_dim: int, causal: bool = False, block_size: int = 1024
) -> int:
    """FLOPs of :func:`blockwise_attention`: every computed block counted in full.

    Causal skips blocks above the diagonal, so it tends to half of :func:`dense_flops`.
    """
    entries = 0
    for t in _block_tasks(seq_len, causal, block_size, slice(None)):
        entries += (t.q_rows.stop - t.q_rows.start) * (t.k_rows.stop - t.k_rows.start)  # type: ignore[union-attr]
    return 4 * batch * heads * entries * head_dim


def sliding_window_flops(
    batch: int,
    heads: int,
    seq_len: int,
    head_dim: int,
    window: int,
    causal: bool = True,
    block_size: int | None = None,
) -> int:
    """FLOPs of :func:`sliding_window_attention`: about ``4 B H T D (2 w)`` (causal) — linear in T."""
    block = window if block_size is None else block_size
    entries = 0
    for qs in range(0, seq_len, block):
        qe = min(qs + block, seq_len)
        ke = qe if causal else min(seq_len, qe + window - 1)
        entries += (qe - qs) * (ke - max(0, qs - window + 1))
    return 4 * batch * heads * entries * head_dim


def dilated_flops(
    batch: int,
    heads: int,
    seq_len: int,
    head_dim: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
) -> int:
    """FLOPs of :func:`dilated_attention`: per branch ``4 B H (T'/w) (w/r)^2 D`` — ``T w / r^2``.

    ``T'`` is T padded to a multiple of every segment length. Causal runs the same blocks.
    """
    _check_dilated_args(segment_lengths, dilation_rates)
    tasks, _ = _dilated_tasks(seq_len, heads, segment_lengths, dilation_rates, True, torch.device("cpu"))
    flops = 0
    for t in tasks:
        n, length = t.q_rows.shape  # type: ignore[union-attr]
        n_heads = len(range(heads)[t.heads])
        flops += 4 * batch * n_heads * n * length * length * head_dim
    return flops
