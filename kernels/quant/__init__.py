"""Quantization kernels: int8 dynamic for ``nn.Linear`` (CPU) and weight-only int8 / int4.

Re-exports the public names of :mod:`.dynamic` and :mod:`.weight_only`. Imports only torch.
"""

from __future__ import annotations

from agentos.kernels.quant.dynamic import quantize_dynamic_int8
from agentos.kernels.quant.weight_only import (
    WeightOnlyInt4Linear,
    WeightOnlyInt8Linear,
    dequantize_int4,
    dequantize_int8,
    quantize_int4,
    quantize_int4_reference,
    quantize_int8,
    quantize_int8_reference,
    quantize_weight_only,
)

__all__ = [
    "WeightOnlyInt4Linear",
    "WeightOnlyInt8Linear",
    "dequantize_int4",
    "dequantize_int8",
    "quantize_dynamic_int8",
    "quantize_int4",
    "quantize_int4_reference",
    "quantize_int8",
    "quantize_int8_reference",
    "quantize_weight_only",
]
