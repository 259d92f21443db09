"""The long-context tool family: a local language model over long documents, on agentos' kernels.

Where things live (the public names are re-exported here):

- ``attention``: registers ``"agentos_blockwise"`` and ``"agentos_ring"`` in transformers'
  ``AttentionInterface`` (:func:`register_attention`, :func:`ring_context`, :func:`ring_inputs`).
- ``model``: :func:`load_gguf_model` and the model loaders :func:`analyse_document` takes.
- ``analysis``: :func:`analyse_document`, per-section perplexity and question relevance in mode
  ``"blockwise"``, ``"ring"`` or ``"chunked"``; :func:`split_sections`.
- ``_scoring``: next-token losses on one model; ``_chunked``: the chunked memory mode.
- ``benchmark``: :func:`~agentos.tools.long_context.benchmark.measure`, one timed attention-kernel
  measurement in fresh processes (used by the tool and by ``benchmarks/long_context.py``).
- ``tools``: the agent tools ``long_context`` and ``run_attention_benchmark``.

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from agentos.tools.long_context.analysis import MODES, analyse_document, split_sections
from agentos.tools.long_context.attention import (
    BLOCKWISE,
    RING,
    RingSettings,
    register_attention,
    ring_context,
    ring_inputs,
)
from agentos.tools.long_context.model import GGUFLoader, ModelLoader, Tokenize, load_gguf_model
from agentos.tools.long_context.tools import long_context, run_attention_benchmark

__all__ = [
    "BLOCKWISE",
    "MODES",
    "RING",
    "GGUFLoader",
    "ModelLoader",
    "RingSettings",
    "Tokenize",
    "analyse_document",
    "load_gguf_model",
    "long_context",
    "register_attention",
    "ring_context",
    "ring_inputs",
    "run_attention_benchmark",
    "split_sections",
]
