"""Quantization kernels: int8 / int4 weight-only against plain references, int8 dynamic."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from agentos.kernels.quant import (
    WeightOnlyInt4Linear,
    WeightOnlyInt8Linear,
    dequantize_int4,
    dequantize_int8,
    quantize_dynamic_int8,
    quantize_int4,
    quantize_int4_reference,
    quantize_int8,
    quantize_int8_reference,
    quantize_weight_only,
)


def _saved_bytes(module: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


@pytest.mark.parametrize("shape", [(8, 16), (33, 64), (1, 7)])
def test_int8_matches_reference_and_error_is_at_most_half_a_step(shape) -> None:
    torch.manual_seed(0)
    w = torch.randn(shape)
    q, scale = quantize_int8(w)
    ref_q, ref_scale = quantize_int8_reference(w)
    torch.testing.assert_close(scale, ref_scale)
    assert (q.to(torch.int16) - ref_q.to(torch.int16)).abs().max() <= 1  # float32 vs float64 rounding at .5
    error = (dequantize_int8(q, scale) - w).abs()
    assert (error <= scale[:, None] / 2 + 1e-6).all()


@pytest.mark.parametrize("group_size", [8, 32])
def test_int4_matches_reference_and_round_trips_within_half_a_step(group_size) -> None:
    torch.manual_seed(1)
    w = torch.randn(6, 64)
    packed, scale = quantize_int4(w, group_size)
    ref_packed, ref_scale = quantize_int4_reference(w, group_size)
    assert packed.dtype == torch.uint8 and packed.shape == (6, 32)
    torch.testing.assert_close(scale, ref_scale)
    assert (packed == ref_packed).float().mean() > 0.99  # ties at .5 may round apart
    error = (dequantize_int4(packed, scale) - w).abs().reshape(6, -1, group_size)
    assert (error <= scale[..., None] / 2 + 1e-6).all()
    with pytest.raises(ValueError, match="group_size=48"):
        quantize_int4(w, 48)


def test_int8_linear_kernel_path_equals_dequantized_path() -> None:
    torch.manual_seed(2)
    linear = nn.Linear(64, 32)
    x = torch.randn(5, 3, 64)
    fast, plain = WeightOnlyInt8Linear(linear, use_int8pack=True), WeightOnlyInt8Linear(linear, use_int8pack=False)
    assert fast.use_int8pack, "this torch has no _weight_int8pack_mm"
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-4)
    default = WeightOnlyInt8Linear(linear)  # the CPU default dequantizes
    torch.testing.assert_close(default(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(plain(x), linear(x), rtol=0.05, atol=0.05)


def test_weight_only_model_is_smaller_and_close() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 128), nn.Linear(128, 2))
    x = torch.randn(4, 128)
    int8 = quantize_weight_only(model, 8, skip=("3",))
    int4 = quantize_weight_only(model, 4, group_size=32)
    assert isinstance(model[0], nn.Linear), "the original model must not change"
    assert isinstance(int8[0], WeightOnlyInt8Linear) and isinstance(int8[3], nn.Linear)
    assert isinstance(int4[2], WeightOnlyInt4Linear)
    dense = _saved_bytes(model)
    assert _saved_bytes(int8) < 0.4 * dense and _saved_bytes(int4) < 0.25 * dense
    torch.testing.assert_close(int8(x), model(x), rtol=0.05, atol=0.05)
    torch.testing.assert_close(int4(x), model(x), rtol=0.3, atol=0.3)


def test_dynamic_int8_copies_quantizes_linears_and_stays_close() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4)).eval()
    x = torch.randn(16, 64)
    quantized = quantize_dynamic_int8(model)
    assert isinstance(model[0], nn.Linear)
    assert type(quantized[0]).__name__ == "Linear" and "quantized" in type(quantized[0]).__module__
    torch.testing.assert_close(quantized(x), model(x), rtol=0.05, atol=0.05)
    assert _saved_bytes(quantized) < 0.4 * _saved_bytes(model)
