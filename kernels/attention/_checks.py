"""Input checks and dtype rules shared by every attention kernel (internal)."""

from __future__ import annotations

import math

import torch


_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float64, torch.float16)


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



def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")

