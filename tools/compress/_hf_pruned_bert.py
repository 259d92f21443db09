"""A BERT sequence classifier whose layers have their own head counts and FFN widths.

Structured pruning removes attention heads and FFN neurons per layer, which no stock
``transformers`` config can describe (``BertConfig`` has one ``num_attention_heads`` and one
``intermediate_size``). This file is copied into every exported structured-pruned directory and
named in its ``config.json`` ``auto_map``, so ``AutoModelForSequenceClassification
.from_pretrained(path, trust_remote_code=True)`` builds the smaller shapes and loads the weights.
It imports only torch and transformers (it runs wherever the directory is loaded).
"""

from __future__ import annotations

from torch import nn
from transformers import BertConfig, BertForSequenceClassification

__all__ = ["PrunedBertConfig", "PrunedBertForSequenceClassification", "resize_layer"]


class PrunedBertConfig(BertConfig):
    """``BertConfig`` plus ``layer_heads`` and ``layer_intermediate`` (one entry per layer)."""

    model_type = "agentos_pruned_bert"

    def __init__(self, layer_heads: list[int] | None = None, layer_intermediate: list[int] | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.layer_heads = layer_heads
        self.layer_intermediate = layer_intermediate


def resize_layer(layer: nn.Module, heads: int, head_dim: int, intermediate: int) -> None:
    """Give one ``BertLayer`` fresh linears of the pruned shapes (weights are loaded after)."""
    hidden = layer.attention.self.query.in_features
    width = heads * head_dim
    attention = layer.attention.self
    attention.query, attention.key, attention.value = (nn.Linear(hidden, width) for _ in range(3))
    attention.num_attention_heads, attention.all_head_size = heads, width
    layer.attention.output.dense = nn.Linear(width, hidden)
    layer.intermediate.dense = nn.Linear(hidden, intermediate)
    layer.output.dense = nn.Linear(intermediate, hidden)


class PrunedBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with the per-layer shapes of a :class:`PrunedBertConfig`."""

    config_class = PrunedBertConfig

    def __init__(self, config: PrunedBertConfig) -> None:
        super().__init__(config)
        head_dim = config.hidden_size // config.num_attention_heads
        for layer, heads, intermediate in zip(self.bert.encoder.layer, config.layer_heads or [], config.layer_intermediate or []):
            resize_layer(layer, heads, head_dim, intermediate)
