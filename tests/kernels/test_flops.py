"""Analytic FLOP counts agree with torch.utils.flop_counter on small shapes; estimates say so."""

from __future__ import annotations

import pytest
import torch

from agentos.kernels.attention import (
    blockwise_attention,
    dilated_attention,
    sliding_window_attention,
    vanilla_attention,
)
from agentos.kernels.flops import attention_flops, llm_flops, moe_flops, ring_attention_flops, torch_flops
from agentos.kernels.moe import MoELayer, RouterConfig

B, H, D = 2, 2, 16


def _qkv(t: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(t)
    return tuple(torch.randn(B, H, t, D) for _ in range(3))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("seq_len", "block"), [(128, 32), (100, 48)])
def test_blockwise_count_equals_torch_counter(seq_len: int, block: int, causal: bool) -> None:
    _, counted = torch_flops(blockwise_attention, *_qkv(seq_len), causal=causal, block_size=block)
    analytic = attention_flops("blockwise", B, H, seq_len, D, causal=causal, block_size=block)
    assert counted.value > 0 and analytic.value == counted.value
    assert analytic.method.startswith("analytic") and counted.method == "torch.utils.flop_counter"


def test_dense_count_equals_torch_counter() -> None:
    _, counted = torch_flops(vanilla_attention, *_qkv(64))
    assert attention_flops("dense", B, H, 64, D).value == counted.value


@pytest.mark.parametrize("causal", [False, True])
def test_sliding_window_count_equals_torch_counter(causal: bool) -> None:
    _, counted = torch_flops(sliding_window_attention, *_qkv(96), window=16, causal=causal)
    assert attention_flops("sliding_window", B, H, 96, D, window=16, causal=causal).value == counted.value


def test_dilated_count_equals_torch_counter() -> None:
    segments, rates = (32, 64), (1, 2)
    _, counted = torch_flops(dilated_attention, *_qkv(128), segments, rates)
    analytic = attention_flops("dilated", B, H, 128, D, segment_lengths=segments, dilation_rates=rates)
    assert analytic.value == counted.value


def test_backward_of_cpu_flash_blocks_is_counted_too() -> None:
    q, k, v = (t.requires_grad_() for t in _qkv(64))
    (out, _lse), forward = torch_flops(blockwise_attention, q, k, v, block_size=32)
    _, backward = torch_flops(lambda: out.sum().backward())
    assert backward.value >= 2 * forward.value  # torch's formula: about 2.5x the forward


def test_ring_counts_every_block_once_across_ranks() -> None:
    dense = attention_flops("dense", B, H, 256, D).value
    for world in (1, 2, 4):
        assert ring_attention_flops(B, H, 256, D, world).value == dense
        causal = ring_attention_flops(B, H, 256, D, world, causal=True).value
        assert dense / 2 < causal < dense  # the upper triangle is skipped, diagonals counted in full


@pytest.mark.parametrize("gated", [False, True])
def test_moe_counts_router_and_active_experts_only(gated: bool) -> None:
    torch.manual_seed(0)
    layer = MoELayer(24, 40, RouterConfig(num_experts=6, top_k=2, capacity_factor=1.0), gated=gated)
    x = torch.randn(50, 24)
    (y, routing), counted = torch_flops(layer, x)
    kept = len(routing.token_index)
    assert kept < 50 * 2  # capacity dropped some: the count must follow the kept ones
    analytic = moe_flops(50, 24, 40, 6, top_k=2, gated=gated, assignments=kept)
    assert analytic.value == counted.value
    dense_equivalent = moe_flops(50, 24, 40, 6, top_k=6, gated=gated).value
    assert analytic.value < dense_equivalent


def test_llm_estimate_is_two_flops_per_parameter_per_token_and_says_so() -> None:
    q = llm_flops(0.49e9, 100, what="qwen2.5-coder-0.5b")
    assert q.value == 2 * 0.49e9 * 100
    assert q.method.startswith("estimated") and q.uncertainty > 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="window="):
        attention_flops("sliding_window", B, H, 64, D)
    with pytest.raises(ValueError, match="unknown attention pattern"):
        attention_flops("sparse", B, H, 64, D)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_tokens"):
        moe_flops(0, 8, 8, 2)
