"""The Mixture-of-Experts tool family: a local MoE language model and its agent tools.

A byte-level decoder-only MoE transformer trained on the Python standard library:
:func:`train_moe`, :func:`generate`, :func:`score`, sparse upcycling of Qwen2 models
(:func:`upcycle_qwen2`) and DeepSpeed training (:func:`train_with_deepspeed`). The agent tools
``train_moe`` and ``moe`` live in :mod:`agentos.tools.moe.tools`.

Importing this package does not import torch; each name is loaded from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ByteTokenizer",
    "CheckpointError",
    "MoETransformer",
    "MoETransformerConfig",
    "TrainResult",
    "generate",
    "load_model",
    "preset",
    "score",
    "train_moe",
    "train_with_deepspeed",
    "upcycle_qwen2",
]

_WHERE = {
    "ByteTokenizer": "tokenizer",
    "CheckpointError": "checkpoint",
    "MoETransformer": "model",
    "MoETransformerConfig": "config",
    "TrainResult": "train",
    "generate": "inference",
    "load_model": "inference",
    "preset": "config",
    "score": "inference",
    "train_moe": "train",
    "train_with_deepspeed": "deepspeed_train",
    "upcycle_qwen2": "upcycle",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
