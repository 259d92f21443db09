"""The long-context agent tools: bad input is a correction, light import, entry points, the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentos.errors import ToolRetry
from tests.markers import requires_module
from tests.tools.long_context.test_analysis import DOCUMENT

GGUF = Path("~/.agentos/models/qwen2.5-coder-0.5b-instruct.gguf").expanduser()


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
    from agentos.tools.long_context import long_context

    doc = tmp_path / "doc.txt"
    doc.write_text(DOCUMENT)
    call = {"document_path": str(doc), "question": "what?", **arguments}
    with pytest.raises(ToolRetry, match=message):
        long_context(**call)


def test_long_context_tool_rejects_an_empty_document(tmp_path: Path) -> None:
    from agentos.tools.long_context import long_context

    doc = tmp_path / "empty.txt"
    doc.write_text("\n\n  \n")
    with pytest.raises(ToolRetry, match="empty"):
        long_context(document_path=str(doc), question="anything")


def test_tools_module_does_not_import_torch() -> None:
    code = (
        "import sys, agentos.tools.long_context.tools as m\n"
        "m.long_context.spec(); m.run_attention_benchmark.spec()\n"
        "print(sorted(x for x in ('torch', 'transformers') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_tools_are_declared_as_entry_points() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["agentos.tools"]
    assert declared["long_context"] == "agentos.tools.long_context.tools:long_context"
    assert declared["run_attention_benchmark"] == "agentos.tools.long_context.tools:run_attention_benchmark"


@requires_module("torch")
@pytest.mark.distributed
def test_attention_benchmark_tool_reports_time_and_memory() -> None:
    from agentos.tools.long_context import run_attention_benchmark

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

    from agentos.tools.long_context import long_context

    source = Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py"
    report = long_context(document_path=str(source), question="How are backslash escapes in JSON strings decoded?",
                          mode="chunked", max_tokens=1024, section_tokens=256, memory_tokens=128)
    assert report["tokens"] == 1024 and len(report["sections"]) >= 3
    assert all(1.0 < s["perplexity"] < 50.0 for s in report["sections"])  # a code model reads code well
    assert report["agreement"]["loss_spearman"] > 0.5
    assert "\\" in report["best_section"]["text"] or "escape" in report["best_section"]["text"].lower()
