"""The real fine-tuned MiniLM sentiment classifier (slow: fine-tunes once if not cached)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_sentiment_classifier_is_float32_and_tells_positive_from_negative() -> None:
    from agentos.tools.compress.model import encode
    from agentos.tools.compress.pipeline import sentiment_classifier

    model, tokenizer = sentiment_classifier()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    batch = encode(tokenizer, ["A wonderful, moving film with superb performances.",
                               "A dull, lifeless mess that wastes its cast."], 64)
    with torch.inference_mode():
        assert model(**batch).logits.argmax(dim=-1).tolist() == [1, 0]
