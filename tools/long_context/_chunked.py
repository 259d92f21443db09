"""Chunked memory mode: the low-memory approximation of reading a long document (internal).

The document is processed one section at a time; between sections the key/value cache is cut to
the first ``sink_tokens`` positions of the document plus the last ``memory_tokens`` positions (keys
keep their true RoPE positions). The question is scored against the memory plus the current
section. Attention is transformers' ``"sdpa"`` over that cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentos.tools.long_context._scoring import nll_rows, question_loss

if TYPE_CHECKING:
    import torch


def chunked_pass(
    model: Any, ids: torch.Tensor, sections: Sequence[tuple[int, int]], question: torch.Tensor,
    n_scored: int, memory_tokens: int, sink_tokens: int,
) -> tuple[torch.Tensor, dict[int, float], int]:
    """Recurrent chunk memory: ``(nll [T - 1], relevance per section, most keys attended)``."""
    import torch
    from transformers import DynamicCache

    model.set_attn_implementation("sdpa")
    seq_len = ids.shape[0]
    nll = torch.full((seq_len,), float("nan"), dtype=torch.float64)
    base = question_loss(model, ids[:0], question, n_scored)
    relevance: dict[int, float] = {}
    memory: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer ([1, Hkv, M, D], same)
    most_keys = 0

    def cache_of(kv: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        return DynamicCache(ddp_cache_data=kv, config=model.config) if kv else DynamicCache(config=model.config)

    for i, (start, end) in enumerate(sections):
        pos = torch.arange(start, end)
        cache = cache_of(memory)
        hidden = model.model(input_ids=ids[None, start:end], position_ids=pos[None], cache=cache,
                             use_cache=True).last_hidden_state[0]
        nll[start:end] = nll_rows(model, hidden, pos, ids)
        full = [(layer.keys, layer.values) for layer in cache.layers]  # memory + this section
        qpos = torch.arange(end, end + question.shape[0])
        qcache = cache_of(full)  # a copy: the question's keys do not enter the memory
        qhidden = model.model(input_ids=question[None], position_ids=qpos[None], cache=qcache,
                              use_cache=True).last_hidden_state[0]
        most_keys = max(most_keys, full[0][0].shape[2] + question.shape[0])
        logits = model.lm_head(qhidden[-n_scored - 1:-1]).float()
        q_loss = torch.nn.functional.cross_entropy(logits, question[-n_scored:]).item()
        relevance[i] = q_loss - base
        length = full[0][0].shape[2]
        if length > sink_tokens + memory_tokens:  # keep the sinks and the most recent positions
            keep = torch.cat([torch.arange(sink_tokens), torch.arange(length - memory_tokens, length)])
            full = [(k[:, :, keep], v[:, :, keep]) for k, v in full]
        memory = full
    return nll[:-1], relevance, most_keys

