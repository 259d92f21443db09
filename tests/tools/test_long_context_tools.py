"""The long-context agent tools: exact modes agree, chunked memory runs and reports, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentos.errors import ToolRetry
from tests.markers import requires_module

GGUF = Path("~/.agentos/models/qwen2.5-coder-0.5b-instruct.gguf").expanduser()

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
    from agentos.tools.long_context_tools import split_sections

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
    from agentos.tools.long_context_tools import analyse_document

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
    from agentos.tools.long_context_tools import analyse_document

    report = analyse_document(DOCUMENT, "network", loader=TinyLoader(), mode="chunked", section_tokens=256,
                              memory_tokens=10_000, sink_tokens=0)
    agreement = report["agreement"]
    assert agreement["max_abs_loss_diff"] < 1e-4
    assert agreement["same_best_section"] and agreement["loss_spearman"] == 1.0


@requires_module("transformers")
def test_chunked_memory_with_a_small_window_runs_and_reports_agreement() -> None:
    from agentos.tools.long_context_tools import analyse_document

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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"document_path": "/nonexistent/doc.txt"}, "no file"),
        ({"ranks": 0}, "ranks"),
        ({"mode": "telepathy"}, "mode"),
        ({"question": "  "}, "question is empty"),
        ({"max_tokens": 1}, "max_tokens"),
    ],
)
def test_long_context_tool_rejects_bad_input_with_a_reason(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    from agentos.tools.long_context_tools import long_context

    doc = tmp_path / "doc.txt"
    doc.write_text(DOCUMENT)
    call = {"document_path": str(doc), "question": "what?", **arguments}
    with pytest.raises(ToolRetry, match=message):
        long_context(**call)


def test_long_context_tool_rejects_an_empty_document(tmp_path: Path) -> None:
    from agentos.tools.long_context_tools import long_context

    doc = tmp_path / "empty.txt"
    doc.write_text("\n\n  \n")
    with pytest.raises(ToolRetry, match="empty"):
        long_context(document_path=str(doc), question="anything")


@requires_module("transformers")
def test_analyse_document_rejects_unknown_mode_and_a_one_token_text() -> None:
    from agentos.tools.long_context_tools import analyse_document

    with pytest.raises(ToolRetry, match="mode"):
        analyse_document(DOCUMENT, "q", loader=TinyLoader(), mode="telepathy")  # type: ignore[arg-type]
    with pytest.raises(ToolRetry, match="empty"):
        analyse_document("x", "q", loader=TinyLoader())


def test_tools_module_does_not_import_torch() -> None:
    code = (
        "import sys, agentos.tools.long_context_tools as m\n"
        "m.long_context.spec(); m.run_attention_benchmark.spec()\n"
        "print(sorted(x for x in ('torch', 'transformers') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_tools_are_declared_as_entry_points() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["agentos.tools"]
    assert declared["long_context"] == "agentos.tools.long_context_tools:long_context"
    assert declared["run_attention_benchmark"] == "agentos.tools.long_context_tools:run_attention_benchmark"


@requires_module("torch")
@pytest.mark.distributed
def test_attention_benchmark_tool_reports_time_and_memory() -> None:
    from agentos.tools.long_context_tools import run_attention_benchmark

    rows = run_attention_benchmark(seq_len=256, methods=["vanilla", "blockwise", "ring"], ranks=2, mem_cap_gib=1e-6)
    by_method = {r["method"]: r for r in rows}
    assert by_method["vanilla"]["status"].startswith("skipped")
    for method in ("blockwise", "ring x2"):
        assert by_method[method]["status"] == "ok"
        assert by_method[method]["time_s"] > 0 and by_method[method]["peak_mem_gib_per_rank"] >= 0
    with pytest.raises(ToolRetry, match="unknown methods"):
        run_attention_benchmark(seq_len=256, methods=["flash"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
@requires_module("transformers")
@pytest.mark.skipif(not GGUF.is_file(), reason=f"needs {GGUF} (installed by the model catalogue)")
def test_qwen_finds_the_relevant_stdlib_section_and_chunked_agrees() -> None:
    import sysconfig

    from agentos.tools.long_context_tools import long_context

    source = Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py"
    report = long_context(document_path=str(source), question="How are backslash escapes in JSON strings decoded?",
                          mode="chunked", max_tokens=1024, section_tokens=256, memory_tokens=128)
    assert report["tokens"] == 1024 and len(report["sections"]) >= 3
    assert all(1.0 < s["perplexity"] < 50.0 for s in report["sections"])  # a code model reads code well
    assert report["agreement"]["loss_spearman"] > 0.5
    assert "\\" in report["best_section"]["text"] or "escape" in report["best_section"]["text"].lower()
