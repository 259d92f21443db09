"""Exact attention, dense and structured, with log-sum-exp partials that merge.

Every kernel here takes tensors shaped ``[B, H, T, D]`` and computes

    out[b, h, i] = sum_j softmax_j(scale * q[b, h, i] . k[b, h, j] + bias[i, j]) * v[b, h, j]

over the keys ``j`` its pattern allows. ``vanilla_attention`` materialises the whole score matrix
and is the reference; the others split the work into *tasks* (a block of queries against a block
of keys), run each task with torch's fused CPU flash kernel (which also returns the per-row
log-sum-exp), and merge the partial results in float32 with :func:`merge_partials`. The backward
pass re-runs every task's block backward against the *merged* output and log-sum-exp, the way
FlashAttention does, so nothing bigger than one block of scores is ever held.

Legend of dimension letters used in shape comments:

    B  batch            H  heads           T  sequence length     D  head dim
    Q  queries in a block                  K  keys in a block     N  segments (dilated)

Patterns:

- ``blockwise_attention``: dense (optionally causal) attention, online softmax over key blocks.
- ``sliding_window_attention``: each query sees the ``window`` nearest keys (causal: itself and
  the ``window - 1`` before it; bidirectional: ``|i - j| < window``).
- ``dilated_attention``: LongNet's mix of segment lengths and dilation rates.

Each pattern has a dense mask builder (the reference) and a FLOP count of what the kernel computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "blockwise_attention",
    "blockwise_flops",
    "causal_mask",
    "dense_flops",
    "dilated_attention",
    "dilated_flops",
    "dilated_mask",
    "merge_partials",
    "sliding_window_attention",
    "sliding_window_flops",
    "sliding_window_mask",
    "vanilla_attention",
]

_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float64, torch.float16)


# --------------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------------


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise ValueError unless q, k, v are ``[B, H, T, D]`` tensors that fit together."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != 4:
            raise ValueError(
                f"{name} must be 4-D [batch, heads, seq_len, head_dim], got shape "
                f"{tuple(x.shape)}; add missing dims with .unsqueeze() or transpose from "
                "[B, T, H, D] with .transpose(1, 2)"
            )
        if x.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(f"{name} has dtype {x.dtype}; cast it to float32, bfloat16 or float64")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[1] != k.shape[1] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree on batch, heads and head_dim; "
            "for grouped-query attention repeat k/v heads with .repeat_interleave(groups, dim=1)"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype partial outputs and log-sum-exps are merged in: float64 stays, the rest float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _scale(head_dim: int, scale: float | None) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


# --------------------------------------------------------------------------------------------
# Dense reference and mask builders
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Partials: one block with its log-sum-exp, and the merge
# --------------------------------------------------------------------------------------------


def merge_partials(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine two attention partials over disjoint key sets into the partial over their union.

    Legend: B batch, H heads, Q queries, D head dim.

    Args:
        out_a, out_b: ``[B, H, Q, D]`` softmax-normalised outputs of each partial.
        lse_a, lse_b: ``[B, H, Q]`` log-sum-exp of each partial's scores; ``-inf`` marks a row
            that saw no key (its output is ignored).

    Returns:
        ``(out, lse)`` in float32 (float64 if either input is float64). No overflow: only
        differences of log-sum-exps are exponentiated, and rows empty on both sides stay
        ``(0, -inf)``.
    """
    acc = torch.promote_types(_acc_dtype(out_a.dtype), _acc_dtype(out_b.dtype))
    lse_a, lse_b = lse_a.to(acc), lse_b.to(acc)
    lse = torch.logaddexp(lse_a, lse_b)  # [B, H, Q]
    safe = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    w_a = torch.exp(lse_a - safe).unsqueeze(-1)  # [B, H, Q, 1]
    w_b = torch.exp(lse_b - safe).unsqueeze(-1)  # [B, H, Q, 1]
    out = w_a * out_a.to(acc) + w_b * out_b.to(acc)  # [B, H, Q, D]
    return out, lse


def _block_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    bias: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block of attention with its log-sum-exp.

    Legend: B batch, H heads, Q queries, K keys, D head dim.
    q ``[B, H, Q, D]``, k/v ``[B, H, K, D]``, bias additive, broadcastable to ``[B, H, Q, K]``.
    ``causal`` is top-left aligned (query i sees keys j <= i).
    Returns out ``[B, H, Q, D]`` (q's dtype) and lse ``[B, H, Q]`` (float32 / float64); rows with
    no visible key have out 0 and lse ``-inf``.
    """
    if q.device.type == "cpu":
        if bias is not None:
            bias = bias.to(q.dtype)
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, causal, attn_mask=bias, scale=scale
        )
        lse = lse.to(_acc_dtype(q.dtype))
    elif _cuda_flash_ok(q, bias):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, 0.0, causal, False, scale=scale
        )[:2]
    else:
        # Portable path (CUDA and others): materialised scores for this block only.
        acc = _acc_dtype(q.dtype)
        scores = (q.to(acc) @ k.to(acc).transpose(-1, -2)) * scale  # [B, H, Q, K]
        if bias is not None:
            scores = scores + bias.to(acc)
        if causal:
            scores = scores.masked_fill(~causal_mask(q.shape[2], k.shape[2], device=q.device), -math.inf)
        lse = torch.logsumexp(scores, dim=-1)  # [B, H, Q]
        safe = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
        out = (torch.exp(scores - safe.unsqueeze(-1)) @ v.to(acc)).to(q.dtype)
    if bias is not None:
        # The flash kernel reports lse = 0 for a row whose keys are all masked; make it -inf.
        empty = torch.isneginf(bias).all(dim=-1).expand(lse.shape)  # [B, H, Q]
        lse = lse.masked_fill(empty, -math.inf)
    return out, lse


def _cuda_flash_ok(q: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether a block runs in torch's CUDA flash kernel: half precision, no additive bias,
    head dim a multiple of 8 up to 256 (the kernel's limits)."""
    return (
        q.device.type == "cuda"
        and bias is None
        and q.dtype in (torch.float16, torch.bfloat16)
        and q.shape[-1] % 8 == 0
        and q.shape[-1] <= 256
        and torch.backends.cuda.flash_sdp_enabled()
    )


_FLASH_AUX: dict[torch.device, tuple[torch.Tensor, ...]] = {}


def _cuda_flash_aux(q: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The sequence-offset and RNG-state tensors the flash backward takes. Without dropout or
    variable lengths they are the same placeholders for every call: read them once, from a tiny
    forward, rather than keep each block's."""
    aux = _FLASH_AUX.get(q.device)
    if aux is None:
        t = torch.zeros(1, 1, 8, 8, dtype=q.dtype, device=q.device)
        res = torch.ops.aten._scaled_dot_product_flash_attention(t, t, t, 0.0, False, False)
        aux = _FLASH_AUX[q.device] = (res[2], res[3], res[6], res[7])
    return aux


def _block_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    bias: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of one block given the *final* (merged) output and log-sum-exp of its rows.

    Legend: B batch, H heads, Q queries, K keys, D head dim.
    dout/out ``[B, H, Q, D]``, lse ``[B, H, Q]``. With the merged out/lse the block's
    probabilities ``exp(s - lse)`` are its exact share of the full softmax, so summing the block
    gradients over all blocks gives the full gradient.
    Returns dq ``[B, H, Q, D]``, dk and dv ``[B, H, K, D]``.
    """
    lse = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)  # empty rows: p = 0 anyway
    if q.device.type == "cpu":
        if bias is not None:
            bias = bias.to(q.dtype)
        lse_k = lse.to(torch.float64 if q.dtype == torch.float64 else torch.float32)
        dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout.to(q.dtype).contiguous(),
            q,
            k,
            v,
            out.to(q.dtype).contiguous(),
            lse_k.contiguous(),
            0.0,
            causal,
            attn_mask=bias,
            scale=scale,
        )
        return dq, dk, dv
    if _cuda_flash_ok(q, bias):
        cum_q, cum_k, rng, unused = _cuda_flash_aux(q)
        dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_backward(
            dout.to(q.dtype).contiguous(), q, k, v, out.to(q.dtype).contiguous(),
            lse.float().contiguous(), cum_q, cum_k, q.shape[2], k.shape[2], 0.0, causal, rng,
            unused, scale=scale,
        )
        return dq, dk, dv
    acc = _acc_dtype(q.dtype)
    qa, ka, va, da, oa = (x.to(acc) for x in (q, k, v, dout, out))
    scores = (qa @ ka.transpose(-1, -2)) * scale  # [B, H, Q, K]
    if bias is not None:
        scores = scores + bias.to(acc)
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[2], k.shape[2], device=q.device), -math.inf)
    p = torch.exp(scores - lse.to(acc).unsqueeze(-1))  # [B, H, Q, K]
    dv = p.transpose(-1, -2) @ da  # [B, H, K, D]
    dp = da @ va.transpose(-1, -2)  # [B, H, Q, K]
    delta = (da * oa).sum(-1, keepdim=True)  # [B, H, Q, 1]
    ds = p * (dp - delta) * scale  # [B, H, Q, K]
    dq = ds @ ka  # [B, H, Q, D]
    dk = ds.transpose(-1, -2) @ qa  # [B, H, K, D]
    return dq.to(q.dtype), dk.to(q.dtype), dv.to(q.dtype)


# --------------------------------------------------------------------------------------------
# Tasks: the blocks a pattern is made of, run forward and backward
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Blockwise (dense) attention
# --------------------------------------------------------------------------------------------


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _block_tasks(seq_len: int, causal: bool, block_size: int, heads: slice) -> list[_Task]:
    tasks: list[_Task] = []
    starts = range(0, seq_len, block_size)
    for qs in starts:
        q_rows = slice(qs, min(qs + block_size, seq_len))
        for ks in starts:
            if causal and ks > qs:
                break  # keys after every query of this block: nothing to do
            k_rows = slice(ks, min(ks + block_size, seq_len))
            tasks.append(_Task(heads, q_rows, k_rows, causal=causal and ks == qs))
    return tasks


def blockwise_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_size: int | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact attention by online softmax over ``block_size`` blocks of queries and keys.

    Legend: B batch, H heads, T sequence length, D head dim.

    Each (query block, key block) pair runs in torch's fused flash kernel (the CPU one, or on
    CUDA the GPU one for half precision; a small materialised block elsewhere); partials merge in float32 by log-sum-exp. With ``causal``
    blocks above the diagonal are skipped. Memory beyond inputs and output is one block's worth.

    Args:
        q, k, v: ``[B, H, T, D]`` (float32, bfloat16 or float64); self-attention, same T.
        causal: query ``i`` sees keys ``j <= i``.
        block_size: queries/keys per block; default 4096 on CUDA (fewer launches and merges:
            7x faster than 1024 at 32k-64k tokens on an H200), 1024 elsewhere.
        scale: score scale, default ``1 / sqrt(D)``.

    Returns:
        ``(out [B, H, T, D] in q's dtype, lse [B, H, T] float32 (float64 for float64))``;
        differentiable in q, k, v through out.

    Raises:
        ValueError: bad shapes/dtypes, q and k of different length, block_size < 1.
    """
    _check_qkv(q, k, v)
    if block_size is None:
        block_size = 4096 if q.device.type == "cuda" else 1024
    _check_positive("block_size", block_size)
    if q.shape[2] != k.shape[2]:
        raise ValueError(
            f"blockwise_attention is self-attention: q has {q.shape[2]} positions, k has "
            f"{k.shape[2]}; use vanilla_attention for cross-attention"
        )
    tasks = _block_tasks(q.shape[2], causal, block_size, slice(None))
    return _TaskAttention.apply(q, k, v, tasks, _scale(q.shape[-1], scale))


# --------------------------------------------------------------------------------------------
# Sliding-window attention
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Dilated attention (LongNet)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# FLOP counts: what each kernel computes (score entries x 4 x D: QK^T and PV, 2 FLOPs a MAC)
# --------------------------------------------------------------------------------------------


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
