"""Attention kernels against a float64 dense reference, forward and backward, fresh inputs."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from agentos.kernels.attention import (
    blockwise_attention,
    blockwise_flops,
    causal_mask,
    dense_flops,
    dilated_attention,
    dilated_flops,
    dilated_mask,
    merge_partials,
    sliding_window_attention,
    sliding_window_flops,
    sliding_window_mask,
    vanilla_attention,
)

# Tolerances against the float64 reference computed on the same (rounded) inputs: absolute, except
# bfloat16 gradients, which are compared relative to max(1, largest reference gradient entry).
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-6, 1e-5),
    torch.bfloat16: (2e-2, 2e-2),
}
DTYPES = [torch.float64, torch.float32, torch.bfloat16]


def _inputs(seed: int, shape: tuple[int, int, int, int], dtype: torch.dtype) -> list[torch.Tensor]:
    """q, k, v, dout in ``dtype`` (leaf tensors needing grad except dout)."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(4)]
    return [x.requires_grad_() for x in xs[:3]] + [xs[3]]


def _check(
    kernel: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    seed: int,
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
) -> None:
    q, k, v, dout = _inputs(seed, shape, dtype)
    out = kernel(q, k, v)
    assert out.dtype == dtype and out.shape == q.shape
    grads = torch.autograd.grad(out, (q, k, v), dout)

    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = reference(q64, k64, v64)
    ref_grads = torch.autograd.grad(ref, (q64, k64, v64), dout.double())

    fwd_tol, bwd_tol = TOL[dtype]
    assert (out.double() - ref).abs().max().item() <= fwd_tol
    for name, g, r in zip("qkv", grads, ref_grads, strict=True):
        err = (g.double() - r).abs().max().item()
        if dtype == torch.bfloat16:  # bf16 gradients: relative to the gradient's own size
            err /= max(1.0, r.abs().max().item())
        assert err <= bwd_tol, f"d{name} off by {err:.2e} (tolerance {bwd_tol:.0e})"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize(("seq_len", "block_size"), [(64, 16), (37, 8), (5, 8), (33, 64)])
def test_blockwise_matches_dense(dtype: torch.dtype, causal: bool, seq_len: int, block_size: int) -> None:
    _check(
        lambda q, k, v: blockwise_attention(q, k, v, causal=causal, block_size=block_size)[0],
        lambda q, k, v: vanilla_attention(q, k, v, causal=causal),
        seed=seq_len * 7 + block_size + causal,
        shape=(2, 3, seq_len, 16),
        dtype=dtype,
    )


def test_blockwise_lse_is_logsumexp_of_scores() -> None:
    q, k, v, _ = _inputs(1, (1, 2, 40, 8), torch.float64)
    _, lse = blockwise_attention(q, k, v, causal=True, block_size=16)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
    scores = scores.masked_fill(~causal_mask(40, 40), -math.inf)
    assert torch.allclose(lse, torch.logsumexp(scores, -1), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize(("seq_len", "window"), [(50, 1), (50, 7), (32, 16), (20, 64)])
def test_sliding_window_matches_masked_dense(dtype: torch.dtype, causal: bool, seq_len: int, window: int) -> None:
    _check(
        lambda q, k, v: sliding_window_attention(q, k, v, window, causal=causal),
        lambda q, k, v: vanilla_attention(q, k, v, mask=sliding_window_mask(seq_len, window, causal)),
        seed=seq_len + 100 * window + causal,
        shape=(1, 2, seq_len, 8),
        dtype=dtype,
    )


DILATED_CASES = [
    ([8, 16], [1, 2]),  # LongNet-style geometric mix
    ([4, 8, 16], [1, 2, 4]),
    ([16], [4]),  # offsets by head: some positions uncovered in some heads -> zeros
    ([6, 9], [1, 3]),  # T not a multiple of any w: internal padding
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize(("segments", "rates"), DILATED_CASES, ids=str)
def test_dilated_matches_counted_dense(
    dtype: torch.dtype, causal: bool, segments: list[int], rates: list[int]
) -> None:
    seq_len, heads = 40, 4
    bias = dilated_mask(seq_len, heads, segments, rates, causal).double().log()  # [H, T, T]
    _check(
        lambda q, k, v: dilated_attention(q, k, v, segments, rates, causal=causal),
        lambda q, k, v: vanilla_attention(q, k, v, mask=bias),
        seed=sum(segments) + 10 * sum(rates) + causal,
        shape=(2, heads, seq_len, 8),
        dtype=dtype,
    )


def test_dilated_mask_counts_shared_keys_twice() -> None:
    count = dilated_mask(8, 1, [4, 8], [1, 1])
    assert count[0, 0, 1].item() == 2  # same 4-segment and same 8-segment
    assert count[0, 0, 5].item() == 1  # only the 8-segment
    assert count[0, 0, 0].item() == 2


def test_merge_partials_equals_attention_over_union() -> None:
    q, k, v, _ = _inputs(3, (2, 2, 12, 8), torch.float64)
    q, k, v = q.detach(), k.detach(), v.detach()
    full = vanilla_attention(q, k, v)
    scale = 1 / math.sqrt(8)

    def part(sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
        s = (q @ k[:, :, sl].transpose(-1, -2)) * scale
        return torch.softmax(s, -1) @ v[:, :, sl], torch.logsumexp(s, -1)

    out, lse = merge_partials(*part(slice(0, 5)), *part(slice(5, 12)))
    assert torch.allclose(out, full, atol=1e-12)
    assert torch.allclose(lse, torch.logsumexp((q @ k.transpose(-1, -2)) * scale, -1), atol=1e-12)


def test_merge_partials_no_overflow_and_empty_rows() -> None:
    out_a = torch.ones(1, 1, 3, 2)
    out_b = torch.full((1, 1, 3, 2), 3.0)
    lse_a = torch.tensor([[[200.0, -math.inf, -math.inf]]])  # exp(200) overflows float32
    lse_b = torch.tensor([[[200.0, 5.0, -math.inf]]])
    out, lse = merge_partials(out_a, lse_a, out_b, lse_b)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.allclose(out[0, 0, 0], torch.tensor([2.0, 2.0]))  # equal weights
    assert torch.allclose(out[0, 0, 1], torch.tensor([3.0, 3.0]))  # a is empty
    assert out[0, 0, 2].abs().sum() == 0 and torch.isneginf(lse[0, 0, 2])  # both empty


def test_blockwise_huge_logits_stay_finite() -> None:
    q = torch.full((1, 1, 64, 8), 40.0)
    k = torch.randn(1, 1, 64, 8, generator=torch.Generator().manual_seed(0)) * 40
    v = torch.randn(1, 1, 64, 8, generator=torch.Generator().manual_seed(1))
    out, lse = blockwise_attention(q, k, v, block_size=16)
    ref = vanilla_attention(q.double(), k.double(), v.double())
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    assert (out.double() - ref).abs().max() < 1e-5


# ---------------------------------------------------------------------------------------------
# FLOPs: measured in the kernels' own calls against the predicted counts
# ---------------------------------------------------------------------------------------------


def _measured_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    def cpu_flash_flops(q_shape, k_shape, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        b, h, q_len, d = q_shape
        return 4 * b * h * q_len * k_shape[2] * d

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    with FlopCounterMode(display=False, custom_mapping={op: cpu_flash_flops}) as counter:
        fn()
    return counter.get_total_flops()


def test_flops_match_prediction_and_fall_as_predicted() -> None:
    b, h, d = 1, 4, 8
    q, k, v, _ = _inputs(5, (b, h, 256, d), torch.float32)
    q, k, v = q.detach(), k.detach(), v.detach()
    cases = {
        "blockwise": (
            lambda: blockwise_attention(q, k, v, causal=False, block_size=64),
            blockwise_flops(b, h, 256, d, causal=False, block_size=64),
        ),
        "blockwise causal": (
            lambda: blockwise_attention(q, k, v, causal=True, block_size=64),
            blockwise_flops(b, h, 256, d, causal=True, block_size=64),
        ),
        "sliding": (
            lambda: sliding_window_attention(q, k, v, 32),
            sliding_window_flops(b, h, 256, d, 32),
        ),
        "dilated": (
            lambda: dilated_attention(q, k, v, [64, 128], [2, 4]),
            dilated_flops(b, h, 256, d, [64, 128], [2, 4]),
        ),
    }
    for name, (fn, predicted) in cases.items():
        assert _measured_flops(fn) == predicted, name

    dense = dense_flops(b, h, 256, d)
    assert blockwise_flops(b, h, 256, d) == dense
    # causal blockwise: 10 of 16 blocks (4 x 4 grid, lower triangle with diagonal)
    assert blockwise_flops(b, h, 256, d, causal=True, block_size=64) * 16 == dense * 10
    # sliding window is linear in T (each extra block of queries costs the same) ...
    sw = [sliding_window_flops(b, h, n * 1024, d, 64) for n in (1, 2, 3)]
    assert sw[2] - sw[1] == sw[1] - sw[0]
    # ... about (2w - 1) / T of dense: each block of w queries meets 2w - 1 keys
    ratio = sliding_window_flops(b, h, 4096, d, 64) / dense_flops(b, h, 4096, d)
    assert ratio == pytest.approx((2 * 64 - 1) / 4096, rel=0.01)
    assert dense_flops(b, h, 8192, d) == 4 * dense_flops(b, h, 4096, d)
    # dilation r: every head keeps 1/r of each segment's positions, so FLOPs fall by r^2
    assert dilated_flops(b, h, 1024, d, [256], [1]) == 4 * dilated_flops(b, h, 1024, d, [256], [2])
    assert dilated_flops(b, h, 1024, d, [256], [1]) == 16 * dilated_flops(b, h, 1024, d, [256], [4])
    # segment length w: T/w segments of w^2 -> linear in w
    assert dilated_flops(b, h, 1024, d, [512], [1]) == 2 * dilated_flops(b, h, 1024, d, [256], [1])


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_errors_say_how_to_fix() -> None:
    x = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match="4-D"):
        blockwise_attention(x[0], x[0], x[0])
    with pytest.raises(ValueError, match="repeat_interleave"):
        vanilla_attention(x, x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="dtype"):
        blockwise_attention(x, x.double(), x)
    with pytest.raises(ValueError, match="block_size"):
        blockwise_attention(x, x, x, block_size=0)
    with pytest.raises(ValueError, match="self-attention"):
        blockwise_attention(x, x[:, :, :4], x[:, :, :4])
    with pytest.raises(ValueError, match="window"):
        sliding_window_attention(x, x, x, 0)
    with pytest.raises(ValueError, match="equal length"):
        dilated_attention(x, x, x, [4, 8], [1])
    with pytest.raises(ValueError, match="exceeds"):
        dilated_attention(x, x, x, [4], [8])
    with pytest.raises(ValueError, match="int"):
        x_int = torch.zeros(1, 2, 8, 4, dtype=torch.int64)
        vanilla_attention(x_int, x_int, x_int)
