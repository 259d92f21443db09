"""Dynamic int8 quantization of ``nn.Linear`` layers for CPU inference.

Weights are quantized to int8 once (per tensor, symmetric), activations are quantized on the fly
per batch, and the matmul runs in int8 (fbgemm/onednn/x86 backends). This uses PyTorch's own
``torch.ao.quantization.quantize_dynamic``: torchao's replacement needs torchao, which agentos does
not depend on, and PyTorch's path has the CPU kernel. The quantized model runs on CPU only and
cannot be fine-tuned further.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

__all__ = ["quantize_dynamic_int8"]


def quantize_dynamic_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace``) with int8 dynamic linears.

    Raises:
        RuntimeError: this PyTorch build has no quantized CPU engine.
    """
    if not torch.backends.quantized.supported_engines or torch.backends.quantized.supported_engines == ["none"]:
        raise RuntimeError("this PyTorch build has no quantized CPU engine (fbgemm, x86, onednn or qnnpack)")
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    with warnings.catch_warnings():  # torch.ao announces its migration to torchao on every call
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(target, {nn.Linear}, dtype=torch.qint8, inplace=True)
