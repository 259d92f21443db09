"""Tasks: the blocks an attention pattern is made of, run forward and backward (internal).

A pattern (blockwise, sliding window, dilated, one ring step) is a list of :class:`_Task`;
:class:`_TaskAttention` runs any such list as one autograd function that saves only q, k, v, the
output and the log-sum-exp, and recomputes every block in backward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentos.kernels.attention._checks import _acc_dtype
from agentos.kernels.attention.partials import _block_backward, _block_forward, merge_partials


Rows = slice | torch.Tensor
"""Positions along T: a slice (one contiguous block) or an int tensor ``[N, L]`` of N blocks."""


@dataclass(frozen=True)
class _Task:
    """One block of queries against one block of keys.

    ``q_rows``/``k_rows`` are both slices, or both ``[N, L]`` index tensors (N independent
    blocks batched together; rows inside one task are unique). ``causal`` is top-left aligned
    within the gathered rows; ``bias`` is additive, broadcastable to ``[B*N, H', Q, K]``
    (index-tensor tasks give it as ``[N, 1, Q, K]``-like and it is repeated over the batch).
    """

    heads: slice
    q_rows: Rows
    k_rows: Rows
    causal: bool = False
    bias: torch.Tensor | None = None


def _gather(x: torch.Tensor, heads: slice, rows: Rows) -> torch.Tensor:
    """``[B, H, T, D]`` -> ``[B, H', L, D]`` (slice rows) or ``[B*N, H', L, D]`` (``[N, L]`` rows)."""
    xh = x[:, heads]  # [B, H', T, D]
    if isinstance(rows, slice):
        return xh[:, :, rows]
    g = xh[:, :, rows]  # [B, H', N, L, D]
    b, h, n, length, d = g.shape
    return g.transpose(1, 2).reshape(b * n, h, length, d)  # [B*N, H', L, D]


def _scatter(acc: torch.Tensor, heads: slice, rows: Rows, val: torch.Tensor, add: bool) -> None:
    """Write (or add) a gathered block back into ``acc`` (``[B, H, T, D]`` or ``[B, H, T]``)."""
    view = acc[:, heads]  # basic indexing: a view of acc
    if isinstance(rows, slice):
        if add:
            view[:, :, rows] += val
        else:
            view[:, :, rows] = val
        return
    b, h = view.shape[0], view.shape[1]
    n, length = rows.shape
    trailing = val.shape[3:]
    v = val.reshape(b, n, h, length, *trailing).transpose(1, 2)  # [B, H', N, L, ...]
    if add:
        view[:, :, rows] += v
    else:
        view[:, :, rows] = v


def _task_bias(task: _Task, batch: int) -> torch.Tensor | None:
    if task.bias is None or isinstance(task.q_rows, slice):
        return task.bias
    return task.bias.repeat(batch, *([1] * (task.bias.dim() - 1)))  # [B*N, ...]


def _run_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    tasks: Sequence[_Task],
    scale: float,
    out_acc: torch.Tensor,
    lse_acc: torch.Tensor,
) -> None:
    """Run ``tasks`` and merge each result into ``out_acc [B, H, T, D]`` / ``lse_acc [B, H, T]``."""
    batch = q.shape[0]
    for t in tasks:
        o, lse = _block_forward(
            _gather(q, t.heads, t.q_rows),
            _gather(k, t.heads, t.k_rows),
            _gather(v, t.heads, t.k_rows),
            t.causal,
            _task_bias(t, batch),
            scale,
        )  # o [B', H', Q, D], lse [B', H', Q]
        o_prev = _gather(out_acc, t.heads, t.q_rows)
        l_prev = _gather(lse_acc.unsqueeze(-1), t.heads, t.q_rows).squeeze(-1)
        o_new, l_new = merge_partials(o_prev, l_prev, o, lse)
        _scatter(out_acc, t.heads, t.q_rows, o_new, add=False)
        _scatter(lse_acc.unsqueeze(-1), t.heads, t.q_rows, l_new.unsqueeze(-1), add=False)


def _run_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    tasks: Sequence[_Task],
    scale: float,
    dq_acc: torch.Tensor,
    dk_acc: torch.Tensor,
    dv_acc: torch.Tensor,
) -> None:
    """Add every task's block gradients into ``dq_acc``/``dk_acc``/``dv_acc`` (``[B, H, T, D]``)."""
    batch = q.shape[0]
    for t in tasks:
        dq, dk, dv = _block_backward(
            _gather(dout, t.heads, t.q_rows),
            _gather(q, t.heads, t.q_rows),
            _gather(k, t.heads, t.k_rows),
            _gather(v, t.heads, t.k_rows),
            _gather(out, t.heads, t.q_rows),
            _gather(lse.unsqueeze(-1), t.heads, t.q_rows).squeeze(-1),
            t.causal,
            _task_bias(t, batch),
            scale,
        )
        _scatter(dq_acc, t.heads, t.q_rows, dq.to(dq_acc.dtype), add=True)
        _scatter(dk_acc, t.heads, t.k_rows, dk.to(dk_acc.dtype), add=True)
        _scatter(dv_acc, t.heads, t.k_rows, dv.to(dv_acc.dtype), add=True)


class _TaskAttention(torch.autograd.Function):
    """Attention defined by a list of tasks; saves only q, k, v, out and lse for backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        tasks: list[_Task],
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, t, d = q.shape
        acc = _acc_dtype(q.dtype)
        out_acc = torch.zeros(b, h, t, d, dtype=acc, device=q.device)  # [B, H, T, D]
        lse_acc = torch.full((b, h, t), -math.inf, dtype=acc, device=q.device)  # [B, H, T]
        _run_forward(q, k, v, tasks, scale, out_acc, lse_acc)
        out = out_acc.to(q.dtype)
        ctx.save_for_backward(q, k, v, out_acc, lse_acc)
        ctx.tasks = tasks
        ctx.scale = scale
        ctx.mark_non_differentiable(lse_acc)
        return out, lse_acc

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, dout: torch.Tensor, _dlse: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        acc = _acc_dtype(q.dtype)
        dq = torch.zeros(q.shape, dtype=acc, device=q.device)
        dk = torch.zeros(k.shape, dtype=acc, device=k.device)
        dv = torch.zeros(v.shape, dtype=acc, device=v.device)
        _run_backward(dout, q, k, v, out, lse, ctx.tasks, ctx.scale, dq, dk, dv)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None
