"""Reading a document with a language model: exact modes agree, chunked memory runs and reports, bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from agentos.errors import ToolRetry
from tests.markers import requires_module

# ~1300 bytes of Python-ish text with distinct topics per block; bytes are tokens below.
DOCUMENT = "".join(
    f"# section about {topic}\n" + "".join(f"def {topic}_{i}(x):\n    return x * {i} + len('{topic}')\n" for i in range(6))
    for topic in ("parsing", "network", "storage", "colours")
)


@dataclass(frozen=True)
class TinyLoader:
    """A tiny random Qwen2 (vocab 256) with a byte-level tokenizer; picklable for ring ranks."""

    seed: int = 0

    def tokenizer(self) -> Any:
        def tokenize(text: str) -> tuple[list[int], list[tuple[int, int]]]:
            data = text.encode("latin-1", errors="replace")  # one char per byte for these tests
            return list(data), [(i, i + 1) for i in range(len(data))]

        return tokenize

    def model(self) -> Any:
        import torch
        from transformers import Qwen2Config, Qwen2ForCausalLM

        cfg = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
        torch.manual_seed(self.seed)
        return Qwen2ForCausalLM(cfg).eval()


def _losses(report: dict[str, Any], key: str = "loss") -> list[float]:
    return [s[key] for s in report["sections"]]


def test_sections_are_cut_at_line_starts_and_cover_the_text() -> None:
    from agentos.tools.long_context import split_sections

    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 chars a line
    offsets = [(i, i + 1) for i in range(len(text))]
    sections = split_sections(text, offsets, 100)
    assert sections[0][0] == 0 and sections[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(sections, sections[1:]))
    assert all(text[a - 1] == "\n" for a, _ in sections[1:])
    assert all(b - a >= 100 for a, b in sections[:-1])


@requires_module("transformers")
@pytest.mark.distributed
def test_blockwise_ring_and_eager_give_the_same_section_losses() -> None:
    from agentos.tools.long_context import analyse_document

    kwargs: dict[str, Any] = {"loader": TinyLoader(), "section_tokens": 300, "max_tokens": 1200}
    question = "where are colours stored?"
    eager = analyse_document(DOCUMENT, question, mode="eager", **kwargs)
    blockwise = analyse_document(DOCUMENT, question, mode="blockwise", **kwargs)
    ring = analyse_document(DOCUMENT, question, mode="ring", ranks=2, timeout_s=240, **kwargs)
    assert eager["tokens"] == 1200 and eager["truncated"] and len(eager["sections"]) >= 3
    for report in (blockwise, ring):
        for key in ("loss", "relevance"):
            assert max(abs(a - b) for a, b in zip(_losses(report, key), _losses(eager, key))) < 1e-4
        assert report["best_section"]["index"] == eager["best_section"]["index"]
    best = eager["best_section"]
    start, end = eager["sections"][best["index"]]["tokens"]
    assert best["text"] == DOCUMENT[start:end]  # one byte a token
    assert best["lines"][0] >= 1


@requires_module("transformers")
def test_chunked_memory_equals_exact_when_it_holds_everything() -> None:
    from agentos.tools.long_context import analyse_document

    report = analyse_document(DOCUMENT, "network", loader=TinyLoader(), mode="chunked", section_tokens=256,
                              memory_tokens=10_000, sink_tokens=0)
    agreement = report["agreement"]
    assert agreement["max_abs_loss_diff"] < 1e-4
    assert agreement["same_best_section"] and agreement["loss_spearman"] == 1.0


@requires_module("transformers")
def test_chunked_memory_with_a_small_window_runs_and_reports_agreement() -> None:
    from agentos.tools.long_context import analyse_document

    report = analyse_document(DOCUMENT, "storage", loader=TinyLoader(), mode="chunked", section_tokens=256,
                              memory_tokens=32, sink_tokens=4)
    question_tokens = len("\n\nQuestion: storage")
    longest = max(b - a for a, b in (s["tokens"] for s in report["sections"]))
    assert report["max_keys_attended"] <= 4 + 32 + longest + question_tokens
    agreement = report["agreement"]
    assert set(agreement) >= {"same_best_section", "loss_spearman", "relevance_spearman", "max_abs_loss_diff"}
    assert agreement["max_abs_loss_diff"] > 0  # a window this small loses context
    assert -1.0 <= agreement["loss_spearman"] <= 1.0
    json.dumps(report)  # tool results must be JSON-able


@requires_module("transformers")
def test_analyse_document_rejects_unknown_mode_and_a_one_token_text() -> None:
    from agentos.tools.long_context import analyse_document

    with pytest.raises(ToolRetry, match="mode"):
        analyse_document(DOCUMENT, "q", loader=TinyLoader(), mode="telepathy")  # type: ignore[arg-type]
    with pytest.raises(ToolRetry, match="empty"):
        analyse_document("x", "q", loader=TinyLoader())
