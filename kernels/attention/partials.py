"""Partials: one block of attention with its log-sum-exp, its backward, and the merge.

A block runs in torch's fused flash kernel (CPU; CUDA for half precision) or, elsewhere, as a small
materialised block. :func:`merge_partials` combines two partials over disjoint key sets exactly.
"""

from __future__ import annotations

import math

import torch

from agentos.kernels.attention._checks import _acc_dtype
from agentos.kernels.attention.vanilla import causal_mask

__all__ = ["merge_partials"]


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
