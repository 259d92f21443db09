"""Using a trained MoE transformer: load it, generate text, score text with routing statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from agentos.tools.moe.checkpoint import load_checkpoint
from agentos.tools.moe.config import MoETransformerConfig
from agentos.tools.moe.model import MoETransformer
from agentos.tools.moe.tokenizer import ByteTokenizer

__all__ = ["generate", "load_model", "score"]

_TOKENIZER = ByteTokenizer()


def load_model(checkpoint: str | Path) -> MoETransformer:
    """The model saved in a checkpoint directory, in eval mode.

    Raises:
        CheckpointError: missing, corrupt or truncated checkpoint.
    """
    state, meta = load_checkpoint(checkpoint)
    model = MoETransformer(MoETransformerConfig.from_dict(meta["config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def _resolve(model: MoETransformer | str | Path) -> MoETransformer:
    return model if isinstance(model, MoETransformer) else load_model(model)


@torch.no_grad()
def generate(
    model: MoETransformer | str | Path,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
) -> str:
    """Continue ``prompt`` byte by byte; returns only the new text.

    Args:
        model: a model or a checkpoint directory.
        temperature: 0 picks the most likely byte (greedy).

    Raises:
        ValueError: negative ``temperature`` or ``max_new_tokens``.
        CheckpointError: when ``model`` is a path to a bad checkpoint.
    """
    if temperature < 0 or max_new_tokens < 0:
        raise ValueError("temperature and max_new_tokens must be >= 0")
    m = _resolve(model)
    was_training = m.training
    m.eval()
    gen = torch.Generator().manual_seed(seed)
    ids = _TOKENIZER.encode(prompt) or [ord("\n")]
    idx = torch.tensor([ids])  # [1, T]
    new: list[int] = []
    for _ in range(max_new_tokens):
        window = idx[:, -m.config.max_seq_len :]
        logits = m(window).logits[0, -1].float()  # [V]
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        new.append(nxt)
        idx = torch.cat([idx, torch.tensor([[nxt]])], dim=1)
    m.train(was_training)
    return _TOKENIZER.decode(new)


@torch.no_grad()
def score(model: MoETransformer | str | Path, text: str) -> dict[str, Any]:
    """Next-byte loss of ``text`` under the model, with routing statistics per MoE layer.

    Long texts are scored in consecutive windows of ``max_seq_len`` bytes.

    Returns:
        ``{"loss": nats per byte, "bits_per_byte", "tokens", "routing": [per-layer stats dict]}``.

    Raises:
        ValueError: ``text`` has fewer than 2 bytes.
        CheckpointError: when ``model`` is a path to a bad checkpoint.
    """
    ids = _TOKENIZER.encode(text)
    if len(ids) < 2:
        raise ValueError("score needs at least 2 bytes of text")
    m = _resolve(model)
    was_training = m.training
    m.eval()
    data = torch.tensor(ids)
    T = m.config.max_seq_len
    total, count = 0.0, 0
    per_layer: list[list[dict[str, Any]]] = []
    for start in range(0, len(ids) - 1, T):
        x = data[start : start + T][None]  # [1, t]
        y = data[start + 1 : start + T + 1][None]
        x = x[:, : y.shape[1]]
        out = m(x, y)
        assert out.loss is not None
        total += float(out.loss) * y.numel()
        count += y.numel()
        for i, r in enumerate(out.routings):
            if len(per_layer) <= i:
                per_layer.append([])
            per_layer[i].append(r.stats().as_dict())
    m.train(was_training)
    routing = []
    for layer_idx, chunks in zip(m.config.moe_layer_indices, per_layer, strict=False):
        counts = [sum(c) for c in zip(*(ch["tokens_per_expert"] for ch in chunks), strict=True)]
        routing.append({
            "layer": layer_idx,
            "tokens_per_expert": counts,
            "drop_rate": sum(ch["drop_rate"] for ch in chunks) / len(chunks),
            "normalized_entropy": sum(ch["normalized_entropy"] for ch in chunks) / len(chunks),
        })
    loss = total / count
    return {"loss": loss, "bits_per_byte": loss / 0.6931471805599453, "tokens": count,
            "routing": routing}
