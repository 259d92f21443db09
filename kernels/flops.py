"""FLOP counts: measured for PyTorch code, analytic for agentos' kernels, estimated for LLMs.

Three kinds, and each :class:`~agentos.kernels.energy.quantity.Quantity` says which it is:

- **counted**: :func:`torch_flops` runs PyTorch code under ``torch.utils.flop_counter``
  (matmuls, convolutions and attention ops; elementwise ops count 0). It first teaches the
  counter torch's fused CPU flash-attention ops (forward and backward; :func:`teach_flop_counter`),
  which the attention kernels in :mod:`agentos.kernels.attention` run on CPU and torch does not
  count.
- **analytic**: exact counts of what our kernels compute, by walking the same blocks:
  :func:`attention_flops` (dense, blockwise, sliding-window, dilated, ring) and :func:`moe_flops`
  (router plus the experts each token is actually sent to).
- **estimated**: :func:`llm_flops`, ``2 x parameters`` FLOPs per token processed (a forward
  pass does one multiply-add per weight per token; Kaplan et al., 2020, "Scaling Laws for
  Neural Language Models", eq. 2.2, dropping the context-length term), for llama.cpp models
  and remote LLMs whose parameter count is known or assumed.

Counts are in FLOPs (a multiply-add is 2), as ``torch.utils.flop_counter`` counts them. torch is
imported only by the functions that need it, so :func:`llm_flops` is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Literal

from agentos.kernels.energy.quantity import Quantity

__all__ = [
    "AttentionPattern",
    "attention_flops",
    "llm_flops",
    "moe_flops",
    "ring_attention_flops",
    "teach_flop_counter",
    "torch_flops",
]

AttentionPattern = Literal["dense", "blockwise", "sliding_window", "dilated", "ring"]

#: The 2 x params rule ignores attention over the context (about 2 x layers x context x width
#: per token) and embedding lookups; for the small models and contexts here it is within ~20 %.
LLM_ESTIMATE_UNCERTAINTY = 0.2


@cache
def teach_flop_counter() -> None:
    """Register torch's fused CPU flash-attention ops (forward, backward) with
    ``torch.utils.flop_counter``, which does not count them; idempotent. Imports torch."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    pairs = [
        (getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None), flop_counter.sdpa_flop),
        (getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None),
         flop_counter.sdpa_backward_flop),
    ]
    for op, formula in pairs:
        if op is not None and op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op)(getattr(formula, "__wrapped__", formula))


def torch_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Quantity]:
    """Run ``fn(*args, **kwargs)`` and count its PyTorch FLOPs.

    Returns:
        ``(what fn returned, FLOPs)``; the count's method is ``torch.utils.flop_counter``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    teach_flop_counter()
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    return result, Quantity(float(counter.get_total_flops()), "FLOP", "torch.utils.flop_counter", 0.0)


def attention_flops(
    pattern: AttentionPattern,
    batch: int,
    heads: int,
    seq_len: int,
    head_dim: int,
    *,
    causal: bool = False,
    block_size: int = 1024,
    window: int | None = None,
    segment_lengths: Sequence[int] = (),
    dilation_rates: Sequence[int] = (),
    world_size: int = 1,
    layout: str = "zigzag",
) -> Quantity:
    """Forward FLOPs of one attention kernel (``Q K^T`` and ``P V``), counted exactly.

    ``dense`` is the materialised reference (every score, causal or not); the others walk the
    blocks their kernel runs (a causal diagonal block counted in full). ``ring`` is the sum over
    all ``world_size`` ranks of :func:`~agentos.kernels.ring.ring_attention`.

    Raises:
        ValueError: an unknown pattern, or a pattern's parameter missing (``window`` for
            sliding_window; segment lengths and dilation rates for dilated).
    """
    from agentos.kernels.attention import flops as f

    if pattern == "dense":
        value = f.dense_flops(batch, heads, seq_len, head_dim)
    elif pattern == "blockwise":
        value = f.blockwise_flops(batch, heads, seq_len, head_dim, causal, block_size)
    elif pattern == "sliding_window":
        if window is None:
            raise ValueError("sliding_window attention FLOPs need window=")
        value = f.sliding_window_flops(batch, heads, seq_len, head_dim, window, causal)
    elif pattern == "dilated":
        if not segment_lengths or not dilation_rates:
            raise ValueError("dilated attention FLOPs need segment_lengths= and dilation_rates=")
        value = f.dilated_flops(batch, heads, seq_len, head_dim, segment_lengths, dilation_rates)
    elif pattern == "ring":
        return ring_attention_flops(batch, heads, seq_len, head_dim, world_size, causal, layout)
    else:
        raise ValueError(
            f"unknown attention pattern {pattern!r}; use dense, blockwise, sliding_window, "
            "dilated or ring"
        )
    return Quantity(float(value), "FLOP", f"analytic: {pattern} attention, 4 x scores x D", 0.0)


def ring_attention_flops(
    batch: int, heads: int, seq_len: int, head_dim: int, world_size: int,
    causal: bool = False, layout: str = "zigzag",
) -> Quantity:
    """Forward FLOPs of ring attention over ``world_size`` ranks (all ranks together).

    Walks the blocks each rank computes at each ring step (padding chunks skipped, causal
    chunks after the query chunk skipped, a diagonal chunk counted in full).

    Raises:
        ValueError: an unknown layout, or ``world_size < 1``.
    """
    from agentos.kernels.ring import _check_layout, _step_tasks, padded_length

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    _check_layout(layout)
    local = padded_length(seq_len, world_size, layout) // world_size
    entries = 0
    for q_rank in range(world_size):
        for kv_rank in range(world_size):
            for t in _step_tasks(q_rank, kv_rank, world_size, seq_len, local, layout, causal):
                rows = t.q_rows.stop - t.q_rows.start  # type: ignore[union-attr]
                keys = t.k_rows.stop - t.k_rows.start  # type: ignore[union-attr]
                entries += rows * keys
    return Quantity(float(4 * batch * heads * entries * head_dim), "FLOP",
                    f"analytic: ring attention over {world_size} ranks ({layout}), 4 x scores x D", 0.0)


def moe_flops(
    num_tokens: int,
    d_model: int,
    d_hidden: int,
    num_experts: int,
    *,
    top_k: int = 1,
    gated: bool = False,
    assignments: int | None = None,
) -> Quantity:
    """Forward FLOPs of a Mixture-of-Experts layer: the router and the active experts only.

    ``router = 2 N D E``; each kept (token, expert) assignment runs one expert FFN,
    ``2 D H`` per matmul, 2 matmuls (3 when gated). Combine weights and activations are
    elementwise and not counted (as ``torch.utils.flop_counter`` does not count them).

    Args:
        num_tokens, d_model, d_hidden, num_experts: N, D, H, E.
        top_k: experts per token when ``assignments`` is not given (no token dropped).
        gated: SwiGLU-style experts (a third matmul).
        assignments: kept assignments, e.g. ``len(routing.token_index)`` after capacity drops.

    Raises:
        ValueError: a size below 1 or a negative assignment count.
    """
    for name, value in (("num_tokens", num_tokens), ("d_model", d_model),
                        ("d_hidden", d_hidden), ("num_experts", num_experts), ("top_k", top_k)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    kept = num_tokens * top_k if assignments is None else assignments
    if kept < 0:
        raise ValueError(f"assignments must be >= 0, got {kept}")
    router = 2 * num_tokens * d_model * num_experts
    experts = kept * 2 * d_model * d_hidden * (3 if gated else 2)
    basis = "kept assignments" if assignments is not None else f"N x top_k={top_k}"
    return Quantity(float(router + experts), "FLOP",
                    f"analytic: MoE router 2NDE + active experts ({basis}) x 2DH x "
                    f"{3 if gated else 2}", 0.0)


def llm_flops(params: float, tokens: int, *, what: str = "model") -> Quantity:
    """Estimated forward FLOPs of an LLM processing ``tokens`` tokens: ``2 x params x tokens``.

    Args:
        params: the (active) parameter count.
        tokens: prompt plus generated tokens.
        what: names the model or the assumption in the method string.

    Raises:
        ValueError: negative params or tokens.
    """
    if params < 0 or tokens < 0:
        raise ValueError(f"params and tokens must be >= 0, got {params}, {tokens}")
    return Quantity(2.0 * params * tokens, "FLOP",
                    f"estimated: 2 x {params:.3g} params x tokens ({what})", LLM_ESTIMATE_UNCERTAINTY)
