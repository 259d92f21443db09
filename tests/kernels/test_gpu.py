"""Attention and MoE kernels on a CUDA GPU against float64 references, forward and backward.

The CPU suites (``test_attention.py``, ``test_moe.py``, ``test_ring.py``) check the same kernels on
the CPU, where attention blocks run in torch's fused CPU flash kernel; on CUDA they take the
portable materialised-block path, checked here. Every result must also stay on the GPU.

Run:  pytest --noconftest -p no:cacheprovider tests/kernels/test_gpu.py
Skipped without CUDA. ``AGENTOS_TEST_DEVICE=cpu`` runs the same bodies on the CPU (to check the
tests themselves on a machine without a GPU); the ring test then uses gloo instead of NCCL.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agentos.kernels.attention import (
    blockwise_attention,
    dilated_attention,
    dilated_mask,
    sliding_window_attention,
    sliding_window_mask,
    vanilla_attention,
)
from agentos.kernels.launch import spawn
from agentos.kernels.moe import MoELayer, RouterConfig, moe_dispatch, moe_reference
from agentos.kernels.ring import ring_attention, shard_sequence
from tests.kernels.test_attention import DILATED_CASES, _inputs
from tests.kernels.test_moe import check_dispatch_impls_agree, check_one_expert_equals_dense_ffn
from tests.kernels.test_ring import Case, _compare, _full_inputs

DEVICE = torch.device(os.environ.get("AGENTOS_TEST_DEVICE", "cuda"))

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(),
        reason="needs a CUDA GPU (AGENTOS_TEST_DEVICE=cpu runs these tests on the CPU)",
    ),
]

# (forward, gradient) tolerances against float64 on the same rounded inputs, relative to
# max(1, largest reference entry). Looser than the CPU suite's for float32: cuBLAS sums in a
# different order than the CPU flash kernel; a real bug is off by 1e-1 or more.
TOL = {torch.float32: (2e-5, 2e-4), torch.bfloat16: (2e-2, 3e-2)}
DTYPES = [torch.float32, torch.bfloat16]
F64 = torch.float64


@pytest.fixture(autouse=True)
def _full_fp32_matmuls() -> Iterator[None]:
    """TF32 would make float32 results bf16-accurate; the tolerances above assume IEEE float32."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def _assert_close(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    assert got.device.type == DEVICE.type, f"{name} left the device: {got.device}"
    err = (got.double() - want).abs().max().item() / max(1.0, want.abs().max().item())
    assert err <= tol, f"{name} off by {err:.2e} (tolerance {tol:.0e})"


# --- attention ------------------------------------------------------------------------------------


def _check(
    kernel: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    seed: int,
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
) -> None:
    """Kernel in ``dtype`` vs ``reference`` in float64, both on DEVICE, forward and backward."""
    q, k, v, dout = (x.detach().to(DEVICE) for x in _inputs(seed, shape, dtype))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    out = kernel(q, k, v)
    assert out.dtype == dtype and out.shape == q.shape
    grads = torch.autograd.grad(out, (q, k, v), dout)

    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = reference(q64, k64, v64)
    ref_grads = torch.autograd.grad(ref, (q64, k64, v64), dout.double())

    fwd_tol, bwd_tol = TOL[dtype]
    _assert_close("out", out, ref, fwd_tol)
    for name, g, r in zip(("dq", "dk", "dv"), grads, ref_grads, strict=True):
        _assert_close(name, g, r, bwd_tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_vanilla_matches_float64_sdpa(dtype: torch.dtype) -> None:
    _check(
        lambda q, k, v: vanilla_attention(q, k, v, causal=True),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),  # math backend
        seed=11,
        shape=(2, 4, 130, 64),
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_blockwise_matches_dense(dtype: torch.dtype, causal: bool) -> None:
    _check(
        lambda q, k, v: blockwise_attention(q, k, v, causal=causal, block_size=64)[0],
        lambda q, k, v: vanilla_attention(q, k, v, causal=causal),
        seed=12 + causal,
        shape=(2, 4, 200, 64),  # 200 = 3 full blocks of 64 and a partial one
        dtype=dtype,
    )


def test_blockwise_long_bf16_head_dim_128() -> None:
    """The benchmark's head shape (D=128, bf16) at a length with many causal blocks."""
    _check(
        lambda q, k, v: blockwise_attention(q, k, v, causal=True, block_size=256)[0],
        lambda q, k, v: vanilla_attention(q, k, v, causal=True),
        seed=14,
        shape=(1, 4, 1024, 128),
        dtype=torch.bfloat16,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_sliding_window_matches_masked_dense(dtype: torch.dtype, causal: bool) -> None:
    seq_len, window = 150, 32
    mask = sliding_window_mask(seq_len, window, causal, device=DEVICE)
    _check(
        lambda q, k, v: sliding_window_attention(q, k, v, window, causal=causal),
        lambda q, k, v: vanilla_attention(q, k, v, mask=mask),
        seed=15 + causal,
        shape=(2, 3, seq_len, 32),
        dtype=dtype,
    )


@pytest.mark.parametrize(
    ("dtype", "segments", "rates", "causal"),
    [
        (torch.float32, *DILATED_CASES[0], True),
        (torch.bfloat16, *DILATED_CASES[3], False),  # T not a multiple of any w: padding
    ],
    ids=["fp32-causal", "bf16-padded"],
)
def test_dilated_matches_counted_dense(
    dtype: torch.dtype, segments: list[int], rates: list[int], causal: bool
) -> None:
    seq_len, heads = 40, 4
    bias = dilated_mask(seq_len, heads, segments, rates, causal, device=DEVICE).double().log()
    _check(
        lambda q, k, v: dilated_attention(q, k, v, segments, rates, causal=causal),
        lambda q, k, v: vanilla_attention(q, k, v, mask=bias),
        seed=17 + causal,
        shape=(2, heads, seq_len, 16),
        dtype=dtype,
    )


# --- ring attention over NCCL (>= 2 GPUs) ---------------------------------------------------------


def _ring_rank(rank: int, world_size: int, cases: list[Case]) -> list[list[np.ndarray]]:
    """Rank function: every case forward and backward on this rank's device."""
    device = torch.device("cuda", rank) if DEVICE.type == "cuda" else DEVICE
    if device.type == "cuda":
        torch.cuda.set_device(device)
    results = []
    for seq_len, causal, layout, dtype in cases:
        q, k, v, dout = (
            shard_sequence(x, rank, world_size, layout).to(device) for x in _full_inputs(seq_len, dtype)
        )
        q, k, v = (x.requires_grad_() for x in (q, k, v))
        out = ring_attention(q, k, v, causal=causal, layout=layout, seq_len=seq_len, timeout_s=60)
        out.backward(dout)
        assert out.device == device and q.grad is not None and q.grad.device == device
        results.append([x.detach().double().cpu().numpy() for x in (out, q.grad, k.grad, v.grad)])
    return results


@pytest.mark.skipif(
    DEVICE.type == "cuda" and torch.cuda.device_count() < 2, reason="ring attention over NCCL needs >= 2 GPUs"
)
def test_ring_attention_nccl_matches_dense() -> None:
    world_size = min(torch.cuda.device_count(), 4) if DEVICE.type == "cuda" else 2
    cases: list[Case] = [
        (t, causal, layout, dtype)
        for t, layout in ((16 * world_size, "zigzag"), (16 * world_size + 3, "contiguous"))
        for causal in (False, True)
        for dtype in (F64, torch.bfloat16)
    ]
    backend = "nccl" if DEVICE.type == "cuda" else "gloo"
    results = spawn(_ring_rank, world_size, cases, backend=backend, timeout_s=240)
    _compare(world_size, cases, results)


# --- MoE ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gated", [False, True])
def test_one_expert_equals_dense_ffn(gated: bool) -> None:
    check_one_expert_equals_dense_ffn(gated, DEVICE, d_model=32, d_hidden=64)


@pytest.mark.parametrize(
    ("num_experts", "top_k", "policy"), [(8, 2, "top_k"), (4, 1, "expert_choice")], ids=str
)
def test_sort_dispatch_matches_reference_float64(num_experts: int, top_k: int, policy: str) -> None:
    """The three dispatch implementations agree in float64 on the device, router gradients too."""
    torch.manual_seed(22 + num_experts)
    cfg = RouterConfig(num_experts, top_k, capacity_factor=1.0, policy=policy)  # type: ignore[arg-type]
    layer = MoELayer(32, 48, cfg, gated=True, activation="silu", dtype=F64, device=DEVICE)
    check_dispatch_impls_agree(layer, torch.randn(3, 61, 32, dtype=F64, device=DEVICE))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("top_k", "gated"), [(1, False), (2, True)], ids=["top1", "top2-gated"])
def test_moe_dispatch_low_precision_matches_float64_reference(
    dtype: torch.dtype, top_k: int, gated: bool
) -> None:
    """Sort-based dispatch in fp32/bf16 vs the every-expert reference in float64, same routing."""
    torch.manual_seed(23 + top_k)
    cfg = RouterConfig(8, top_k, capacity_factor=1.0)
    layer = MoELayer(64, 128, cfg, gated=gated, activation="silu" if gated else "gelu",
                     dtype=dtype, device=DEVICE)
    x = torch.randn(300, 64, device=DEVICE).to(dtype).requires_grad_()
    routing = layer.router(x.detach())  # capacity 1.0: usually drops a few assignments too
    w = routing.weight.detach().requires_grad_()  # combine weights as a leaf: their gradient is checked
    y = moe_dispatch(x, dataclasses.replace(routing, weight=w), layer.experts)
    assert y.dtype == dtype and y.shape == x.shape
    g = torch.randn_like(y)
    params = list(layer.experts.parameters())
    grads = torch.autograd.grad(y, (x, w, *params), g)

    experts64 = copy.deepcopy(layer.experts).double()
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    y64 = moe_reference(x64, dataclasses.replace(routing, weight=w64), experts64)
    ref_grads = torch.autograd.grad(y64, (x64, w64, *experts64.parameters()), g.double())

    fwd_tol, bwd_tol = TOL[dtype]
    _assert_close("y", y, y64, fwd_tol)
    names = ["dx", "dweight", *(f"d{n}" for n, _ in layer.experts.named_parameters())]
    for name, got, want in zip(names, grads, ref_grads, strict=True):
        _assert_close(name, got, want, bwd_tol)
