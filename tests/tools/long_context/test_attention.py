"""Real transformers models running on agentos' blockwise and ring attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.markers import requires_module

pytestmark = requires_module("transformers")

GGUF = Path("~/.agentos/models/qwen2.5-coder-0.5b-instruct.gguf").expanduser()


def _tiny_qwen2(seed: int = 0) -> Any:
    """A small randomly initialised Qwen2 (grouped-query attention, RoPE); same seed, same weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg).eval()


def _ids(seq_len: int) -> Any:
    import torch

    return torch.randint(0, 256, (2, seq_len), generator=torch.Generator().manual_seed(seq_len))


def test_blockwise_attention_in_a_transformers_model_matches_sdpa() -> None:
    import torch

    from agentos.tools.long_context import BLOCKWISE, register_attention

    register_attention()
    model = _tiny_qwen2()
    ids = _ids(1500)  # two 1024-blocks: exercises the merge across blocks
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        ref = model(ids, use_cache=False).logits
        model.set_attn_implementation(BLOCKWISE)
        out = model(ids, use_cache=False).logits
    assert (out - ref).abs().max().item() < 1e-4


def _ring_model_rank(rank: int, world_size: int, seq_len: int, layouts: list[str]) -> list[np.ndarray]:
    import torch

    from agentos.tools.long_context import RING, register_attention, ring_context, ring_inputs

    register_attention()
    model = _tiny_qwen2()
    model.set_attn_implementation(RING)
    results = []
    for layout in layouts:
        ids, pos = ring_inputs(_ids(seq_len), rank, world_size, layout)
        with torch.no_grad(), ring_context(seq_len=seq_len, layout=layout, timeout_s=60):
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits  # [B, L, V]
        results.append(logits.double().numpy())
    return results


@pytest.mark.distributed
def test_ring_attention_in_a_transformers_model_matches_sdpa() -> None:
    import torch

    from agentos.kernels.launch import spawn
    from agentos.kernels.ring import unshard_sequence

    seq_len, world_size = 203, 2  # uneven: padded to 204 for zigzag
    model = _tiny_qwen2()
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        ref = model(_ids(seq_len), use_cache=False).logits.double()
    layouts = ["zigzag", "contiguous"]
    per_rank = spawn(_ring_model_rank, world_size, seq_len, layouts, timeout_s=180)
    for i, layout in enumerate(layouts):
        got = unshard_sequence([torch.from_numpy(r[i]) for r in per_rank], seq_len, layout, dim=1)
        assert (got - ref).abs().max().item() < 1e-4, layout


def test_ring_attention_outside_ring_context_says_how_to_fix() -> None:
    import torch

    from agentos.tools.long_context.attention import _ring_forward

    x = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="ring_context"):
        _ring_forward(torch.nn.Module(), x, x, x, None)


@pytest.mark.slow
@pytest.mark.skipif(not GGUF.is_file(), reason=f"needs {GGUF} (installed by the model catalogue)")
def test_qwen_gguf_logits_on_2k_tokens_match_sdpa() -> None:
    import torch

    from agentos.tools.long_context import BLOCKWISE, load_gguf_model

    model, tokenizer = load_gguf_model(GGUF)
    text = "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n" * 100
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :2048]
    assert ids.shape[1] == 2048
    with torch.no_grad():
        ref = model(ids, use_cache=False).logits
        model.set_attn_implementation(BLOCKWISE)
        out = model(ids, use_cache=False).logits
    assert (out - ref).abs().max().item() < 1e-4
