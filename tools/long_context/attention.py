"""agentos' attention kernels inside transformers models, for long contexts.

Registers two attention implementations in transformers' ``AttentionInterface`` so any model that
supports ``attn_implementation`` runs on them:

- ``"agentos_blockwise"``: :func:`agentos.kernels.attention.blockwise_attention` (exact, memory
  linear in T, one process).
- ``"agentos_ring"``: :func:`agentos.kernels.ring.ring_attention` across a ``torch.distributed``
  group. Every rank runs the model on its shard of the tokens (``shard_sequence``) with
  ``position_ids = ring_positions(...)`` inside ``with ring_context(seq_len=T): ...``; the logits
  of each rank are its shard's (``unshard_sequence`` puts them together).

Both are prefill-only causal self-attention without padding (a batch of unpadded sequences, no KV
cache); anything else raises ``ValueError`` naming the supported path.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "BLOCKWISE",
    "RING",
    "RingSettings",
    "register_attention",
    "ring_context",
    "ring_inputs",
]

BLOCKWISE = "agentos_blockwise"
RING = "agentos_ring"


@dataclass(frozen=True)
class RingSettings:
    """How the sequence is split for ``"agentos_ring"``: set by :func:`ring_context`."""

    seq_len: int
    layout: str = "zigzag"
    group: Any = None  # torch.distributed.ProcessGroup | None
    timeout_s: float | None = None


_RING_SETTINGS: contextvars.ContextVar[RingSettings | None] = contextvars.ContextVar("agentos_ring", default=None)


@contextlib.contextmanager
def ring_context(
    seq_len: int, layout: str = "zigzag", group: Any = None, timeout_s: float | None = None
) -> Iterator[RingSettings]:
    """Tell ``"agentos_ring"`` attention the true sequence length and layout for a forward pass."""
    settings = RingSettings(seq_len, layout, group, timeout_s)
    token = _RING_SETTINGS.set(settings)
    try:
        yield settings
    finally:
        _RING_SETTINGS.reset(token)


def _check_prefill(module: Any, query: torch.Tensor, key: torch.Tensor, attention_mask: Any, name: str) -> None:
    if attention_mask is not None:
        raise ValueError(
            f"{name} attention supports causal self-attention without padding only, but the model "
            "passed an attention mask; run unpadded sequences (batch of one, or equal lengths with "
            "no attention_mask) or use attn_implementation='sdpa'"
        )
    if query.shape[2] != key.shape[2]:
        raise ValueError(
            f"{name} attention is prefill-only (queries {query.shape[2]} != keys {key.shape[2]}, "
            "a KV cache is in use); call the model with use_cache=False or use 'sdpa' to decode"
        )
    if not getattr(module, "is_causal", True):
        raise ValueError(f"{name} attention implements causal (decoder) attention only")


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, Hkv, T, D]`` -> ``[B, Hkv * groups, T, D]`` (grouped-query attention)."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def _blockwise_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: q ``[B, H, T, D]``, k/v ``[B, Hkv, T, D]`` -> ``[B, T, H, D]``."""
    from agentos.kernels.attention import blockwise_attention

    _check_prefill(module, query, key, attention_mask, BLOCKWISE)
    groups = query.shape[1] // key.shape[1]
    out, _ = blockwise_attention(
        query, _repeat_kv(key, groups), _repeat_kv(value, groups), causal=True, scale=scaling
    )  # [B, H, T, D]
    return out.transpose(1, 2).contiguous(), None


def _ring_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function over the ring; this rank's rows in, this rank's rows out."""
    from agentos.kernels.ring import ring_attention

    settings = _RING_SETTINGS.get()
    if settings is None:
        raise ValueError(
            f"{RING} attention needs the global sequence length: run the model inside "
            "`with ring_context(seq_len=T):` on every rank"
        )
    _check_prefill(module, query, key, None, RING)  # local masks are meaningless on the ring
    groups = query.shape[1] // key.shape[1]
    out = ring_attention(
        query,
        _repeat_kv(key, groups),
        _repeat_kv(value, groups),
        causal=True,
        group=settings.group,
        layout=settings.layout,
        seq_len=settings.seq_len,
        scale=scaling,
        timeout_s=settings.timeout_s,
    )  # [B, H, L, D]
    return out.transpose(1, 2).contiguous(), None


def _no_mask(*args: Any, **kwargs: Any) -> None:
    """Mask builder for the ring: causality is global and handled by ring_attention itself."""
    return None


def register_attention() -> None:
    """Register ``"agentos_blockwise"`` and ``"agentos_ring"`` with transformers (idempotent).

    Afterwards ``model.set_attn_implementation("agentos_blockwise")`` (or
    ``from_pretrained(..., attn_implementation=...)``) selects them.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(BLOCKWISE, _blockwise_forward)
    AttentionInterface.register(RING, _ring_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(BLOCKWISE, sdpa_mask)  # None when plainly causal
    ALL_MASK_ATTENTION_FUNCTIONS.register(RING, _no_mask)


def ring_inputs(
    input_ids: torch.Tensor, rank: int, world_size: int, layout: str = "zigzag", pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's ``(input_ids [B, L], position_ids [B, L])`` of a full ``[B, T]`` batch.

    Padded tail positions get ``pad_id`` and positions past T; their logits are dropped by
    ``unshard_sequence(..., dim=1)``.
    """
    import torch

    from agentos.kernels.ring import ring_positions, shard_sequence

    batch, seq_len = input_ids.shape
    ids = shard_sequence(input_ids, rank, world_size, layout, dim=1)
    pad = ring_positions(rank, world_size, seq_len, layout, device=input_ids.device) >= seq_len
    ids = ids.masked_fill(pad[None, :], pad_id)
    pos = ring_positions(rank, world_size, seq_len, layout, device=input_ids.device)
    return ids, pos[None, :].expand(batch, -1).to(torch.long)

