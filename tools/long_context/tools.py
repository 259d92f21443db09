"""The long-context agent tools: ``long_context`` and ``run_attention_benchmark``.

``long_context`` reads a text file with a local GGUF model (by default the packaged
Qwen2.5-Coder-0.5B) through :func:`agentos.tools.long_context.analyse_document`: per-section
perplexity and the section most relevant to a question, in mode ``"blockwise"``, ``"ring"`` or
``"chunked"``. ``run_attention_benchmark`` times the attention kernels themselves with
:func:`agentos.tools.long_context.benchmark.measure`, the measurement ``benchmarks/long_context.py``
also uses.

This module is imported by ``agentos tools list``: torch and transformers are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from agentos.errors import ToolRetry
from agentos.runtime.tool import tool
from agentos.tools.long_context.analysis import MAX_RANKS, analyse_document, check_arguments
from agentos.tools.long_context.benchmark import METHODS, measure, vanilla_estimate_gib
from agentos.tools.long_context.model import GGUFLoader

__all__ = ["long_context", "run_attention_benchmark"]


def _read_document(document_path: str) -> str:
    path = Path(document_path).expanduser()
    if not path.is_file():
        raise ToolRetry(f"no file at {document_path!r}: pass the path of an existing text file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ToolRetry(f"{document_path!r} is empty: pass a file with text in it")
    return text


@tool(concurrency=1)
def long_context(
    document_path: str,
    question: str,
    mode: Literal["blockwise", "ring", "chunked"] = "blockwise",
    ranks: int = 2,
    max_tokens: int = 4096,
    section_tokens: int = 512,
    memory_tokens: int = 256,
    model: str = "qwen2.5-coder-0.5b",
) -> dict[str, Any]:
    """Read a long text file with a local LM: per-section perplexity and the section most relevant to a question.

    Slow on CPU (minutes for 4k tokens). Returns each section's line span, loss, perplexity and
    relevance (question loss given the section minus without it; lower is more relevant) and the
    best section's text. Raises ToolRetry for a missing/empty file or out-of-range arguments.

    Args:
        document_path: path of a UTF-8 text file (e.g. a Python source file or docs).
        question: what to look for in the document.
        mode: "blockwise" (exact, one process), "ring" (exact, ring attention over `ranks` local
            processes) or "chunked" (recurrent chunk memory, low memory; reports agreement with blockwise).
        ranks: processes for mode "ring" (1-8).
        max_tokens: only the first this many tokens are read (at most 32768).
        section_tokens: about this many tokens per section.
        memory_tokens: key/value positions carried between sections in mode "chunked".
        model: catalogue name or path of a local GGUF model.
    """
    from agentos.runtime.llm.models import ModelError, resolve

    check_arguments(mode, ranks, max_tokens, section_tokens, memory_tokens, 0, question)
    text = _read_document(document_path)
    try:
        path = resolve(model)
    except ModelError as error:  # unknown, not installed or corrupt: the LLM can pick another
        raise ToolRetry(f"model {model!r} is not usable: {error}") from error
    report = analyse_document(text, question, loader=GGUFLoader(str(path)), mode=mode, ranks=ranks,
                              max_tokens=max_tokens, section_tokens=section_tokens, memory_tokens=memory_tokens)
    report["document"] = str(Path(document_path).expanduser())
    return report


@tool(concurrency=1)
def run_attention_benchmark(
    seq_len: int = 4096, methods: list[str] | None = None, ranks: int = 2, mem_cap_gib: float = 4.0
) -> list[dict[str, Any]]:
    """Time causal attention kernels (B=1, H=8, D=64, float32, forward) at one sequence length.

    Each method runs in fresh processes; returns per method the wall time and peak extra memory
    per process (RSS growth). Vanilla attention is skipped when its T x T scores would exceed
    mem_cap_gib. Raises ToolRetry for unknown methods or out-of-range sizes.

    Args:
        seq_len: sequence length T (64-65536).
        methods: any of "vanilla", "blockwise", "sdpa", "ring"; default all.
        ranks: processes for "ring" (1-8).
        mem_cap_gib: skip vanilla when its estimated memory is above this.
    """
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ToolRetry(f"unknown methods {unknown}: use any of {', '.join(METHODS)}")
    if not 64 <= seq_len <= 65536:
        raise ToolRetry(f"seq_len must be between 64 and 65536, got {seq_len}")
    if not 1 <= ranks <= MAX_RANKS:
        raise ToolRetry(f"ranks must be between 1 and {MAX_RANKS}, got {ranks}")
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method == "vanilla" and (estimate := vanilla_estimate_gib(seq_len)) > mem_cap_gib:
            rows.append({"method": method, "seq_len": seq_len, "status": f"skipped: est {estimate:.1f} GiB"})
            continue
        row = measure(method, seq_len, ranks, repeats=1, timeout_s=600)
        row["time_s"] = round(row["time_s"], 4)
        row["peak_mem_gib_per_rank"] = round(row["peak_mem_gib_per_rank"], 4)
        rows.append(row)
    return rows
