"""Weight-only quantization of linear layers: int8 per output channel, int4 per group.

Activations stay in floating point; only the stored weight shrinks (4x for int8, about 8x for
int4 with its scales). Symmetric quantization, no zero point:

- int8: ``scale_o = max_i |W_oi| / 127``, ``q = round(W / scale)`` clamped to ``[-127, 127]``.
- int4: groups of ``group_size`` consecutive inputs per row; ``scale_og = max |W| / 7``,
  ``q`` in ``[-8, 7]``, stored as ``q + 8`` two per byte (even input in the low nibble).

:class:`WeightOnlyInt8Linear` dequantizes and calls ``F.linear`` on the CPU, and multiplies
through ``torch.ops.aten._weight_int8pack_mm`` (PyTorch's int8-weight kernel) on CUDA inputs or
when asked (``use_int8pack=True``) and this torch has it; the tests check both paths against each
other. On this project's 2-core CPU that kernel was slower than dequantizing at every batch
size tried (``benchmarks/compress.py --llm`` times both on a 4864x896 linear), so it is not the
CPU default.
:class:`WeightOnlyInt4Linear` dequantizes per call (it saves memory and disk, not time).

Legend of dimension letters used in shape comments:
    O  output features, I  input features, G  groups per row (I / group_size), N  tokens
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "WeightOnlyInt4Linear",
    "WeightOnlyInt8Linear",
    "dequantize_int4",
    "dequantize_int8",
    "quantize_int4",
    "quantize_int4_reference",
    "quantize_int8",
    "quantize_int8_reference",
    "quantize_weight_only",
]

_HAS_INT8PACK = hasattr(torch.ops.aten, "_weight_int8pack_mm")


def quantize_int8(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``[O, I]`` float -> (``[O, I]`` int8, ``[O]`` float32 scales)."""
    w = weight.detach().to(torch.float32)
    scale = (w.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)  # [O]
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # [O, I]
    return q, scale


def quantize_int8_reference(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Plain reference for :func:`quantize_int8`, row by row in float64."""
    rows, scales = [], []
    for row in weight.detach().to(torch.float64):
        s = max(float(row.abs().max()) / 127, torch.finfo(torch.float32).tiny)
        scales.append(s)
        rows.append([max(-127, min(127, round(float(v) / s))) for v in row])
    return torch.tensor(rows, dtype=torch.int8), torch.tensor(scales, dtype=torch.float32)


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """``q * scale`` per row, float32 ``[O, I]``."""
    return q.to(torch.float32) * scale[:, None]


def _check_group(in_features: int, group_size: int) -> None:
    if group_size < 2 or group_size % 2 or in_features % group_size:
        raise ValueError(
            f"int4 groups must be an even size dividing the {in_features} input features, got "
            f"group_size={group_size}; try 32, 64 or 128 where they divide it"
        )


def quantize_int4(weight: Tensor, group_size: int = 64) -> tuple[Tensor, Tensor]:
    """``[O, I]`` float -> (``[O, I/2]`` uint8 packed nibbles, ``[O, G]`` float32 scales).

    Raises:
        ValueError: ``group_size`` is odd or does not divide ``I``.
    """
    out_f, in_f = weight.shape
    _check_group(in_f, group_size)
    w = weight.detach().to(torch.float32).reshape(out_f, in_f // group_size, group_size)  # [O, G, gs]
    scale = (w.abs().amax(dim=2) / 7).clamp(min=torch.finfo(torch.float32).tiny)  # [O, G]
    q = torch.round(w / scale[..., None]).clamp(-8, 7).to(torch.int16) + 8  # [O, G, gs] in 0..15
    q = q.reshape(out_f, in_f // 2, 2)
    packed = (q[..., 0] | (q[..., 1] << 4)).to(torch.uint8)  # [O, I/2]
    return packed, scale


def quantize_int4_reference(weight: Tensor, group_size: int = 64) -> tuple[Tensor, Tensor]:
    """Plain reference for :func:`quantize_int4`: per group and per pair in Python."""
    out_f, in_f = weight.shape
    _check_group(in_f, group_size)
    w = weight.detach().to(torch.float64).tolist()
    packed, scales = [], []
    for row in w:
        row_scales, codes = [], []
        for g in range(0, in_f, group_size):
            s = max(max(abs(v) for v in row[g:g + group_size]) / 7, torch.finfo(torch.float32).tiny)
            s = float(torch.tensor(s, dtype=torch.float32))  # the kernel divides by a float32 scale
            row_scales.append(s)
            codes.extend(max(-8, min(7, round(v / s))) + 8 for v in row[g:g + group_size])
        scales.append(row_scales)
        packed.append([codes[i] | (codes[i + 1] << 4) for i in range(0, in_f, 2)])
    return torch.tensor(packed, dtype=torch.uint8), torch.tensor(scales, dtype=torch.float32)


def dequantize_int4(packed: Tensor, scale: Tensor) -> Tensor:
    """Unpack and scale: float32 ``[O, I]``."""
    out_f, half = packed.shape
    low = (packed & 0x0F).to(torch.int16) - 8
    high = (packed >> 4).to(torch.int16) - 8
    q = torch.stack([low, high], dim=-1).reshape(out_f, half * 2)  # [O, I]
    groups = scale.shape[1]
    return (q.reshape(out_f, groups, -1).to(torch.float32) * scale[..., None]).reshape(out_f, half * 2)


class WeightOnlyInt8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 with one scale per output channel."""

    def __init__(self, linear: nn.Linear, *, use_int8pack: bool | None = None) -> None:
        """``use_int8pack``: None (default) uses the int8pack kernel for CUDA inputs only; True
        for every float input; False never."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_int8(linear.weight)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.use_int8pack = use_int8pack if _HAS_INT8PACK else False

    def forward(self, x: Tensor) -> Tensor:  # [..., I] -> [..., O]
        int8pack = x.is_cuda if self.use_int8pack is None else self.use_int8pack
        if int8pack and x.dtype in (torch.float32, torch.bfloat16, torch.float16):
            flat = x.reshape(-1, self.in_features)  # [N, I]
            y = torch.ops.aten._weight_int8pack_mm(flat, self.qweight, self.scale.to(x.dtype))
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        return F.linear(x, dequantize_int8(self.qweight, self.scale).to(x.dtype),
                        None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per channel"


class WeightOnlyInt4Linear(nn.Module):
    """A linear layer whose weight is stored as packed int4 with one scale per group."""

    def __init__(self, linear: nn.Linear, group_size: int = 64) -> None:
        super().__init__()
        self.in_features, self.out_features, self.group_size = linear.in_features, linear.out_features, group_size
        packed, scale = quantize_int4(linear.weight, group_size)
        self.register_buffer("qweight", packed)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:  # [..., I] -> [..., O]
        weight = dequantize_int4(self.qweight, self.scale).to(x.dtype)
        return F.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 groups of {self.group_size}"


def quantize_weight_only(
    model: nn.Module, bits: int = 8, *, group_size: int = 64, skip: tuple[str, ...] = (), inplace: bool = False
) -> nn.Module:
    """Replace every ``nn.Linear`` (except names containing a ``skip`` entry) by a weight-only one.

    Args:
        model: the model; copied first unless ``inplace``.
        bits: 8 or 4.
        group_size: int4 group width; a layer it does not divide stays in float (listed in the
            returned model's ``weight_only_skipped`` attribute).
        skip: substrings of module names to leave in float (e.g. ``("classifier",)``).
        inplace: modify ``model`` itself.

    Raises:
        ValueError: ``bits`` is not 8 or 4.
    """
    if bits not in (8, 4):
        raise ValueError(f"weight-only quantization supports 8 or 4 bits, got {bits}")
    target = model if inplace else copy.deepcopy(model)
    skipped: list[str] = []
    for name, module in list(target.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if not isinstance(child, nn.Linear) or any(s in full for s in skip):
                continue
            if bits == 4 and (child.in_features % group_size or group_size % 2):
                skipped.append(full)
                continue
            new = WeightOnlyInt8Linear(child) if bits == 8 else WeightOnlyInt4Linear(child, group_size)
            setattr(module, child_name, new)
    target.weight_only_skipped = skipped  # type: ignore[assignment]
    return target
