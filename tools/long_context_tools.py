"""Agent tools over long documents: per-section perplexity and question retrieval with a real LM.

:func:`long_context` reads a text file, runs a causal language model (by default the packaged
Qwen2.5-Coder-0.5B GGUF) over up to ``max_tokens`` tokens of it and returns, for each section
(~``section_tokens`` tokens, cut at line starts):

- ``loss`` / ``perplexity``: mean next-token loss of the section's tokens *given all the text
  before it* (one forward pass over the whole document);
- ``relevance``: mean loss of the question's tokens given the section, minus their loss with no
  context (a pointwise mutual information; lower is more relevant). The best section, with its
  line span and text, is the one with the lowest relevance.

Modes (how the long forward pass runs):

- ``"blockwise"``: one process, :func:`agentos.kernels.attention.blockwise_attention` (exact,
  attention memory linear in T).
- ``"ring"``: ``ranks`` local processes (:func:`agentos.kernels.launch.spawn`) run the model on
  their zigzag shard with :func:`agentos.kernels.ring.ring_attention` (exact); the short question
  passes are spread over the ranks.
- ``"chunked"``: recurrent chunk memory, the low-memory approximation: the document is processed
  one section at a time; between sections the key/value cache is cut to the first
  ``sink_tokens`` positions of the document plus the last ``memory_tokens`` positions (keys keep
  their true RoPE positions). The question is scored against the memory plus the current section.
  The report carries ``agreement`` with the exact blockwise path on the same document.

:func:`analyse_document` is the same computation on a text with any model loader (tests use a
tiny random Qwen2). :func:`run_attention_benchmark` times the attention kernels themselves.

This module is imported by ``agentos tools list``: torch and transformers are imported inside the
functions that need them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agentos.errors import ToolRetry
from agentos.runtime.tool import tool

if TYPE_CHECKING:
    import torch

__all__ = [
    "BENCHMARK_METHODS",
    "MODES",
    "GGUFLoader",
    "ModelLoader",
    "Tokenize",
    "analyse_document",
    "long_context",
    "run_attention_benchmark",
    "split_sections",
]

MODES = ("blockwise", "ring", "chunked")
_ALL_MODES = (*MODES, "eager")  # "eager": transformers' own attention, the reference in tests
BENCHMARK_METHODS = ("vanilla", "blockwise", "sdpa", "ring")
QUESTION_PREFIX = "\n\nQuestion: "
MAX_RANKS = 8
MAX_TOKENS = 32768
GIB = 1024**3

# text -> (token ids, (start, end) character offsets of each token)
Tokenize = Callable[[str], tuple[list[int], list[tuple[int, int]]]]


class ModelLoader(Protocol):
    """Builds the tokenizer and the model; must be picklable (it is sent to ring ranks)."""

    def tokenizer(self) -> Tokenize: ...

    def model(self) -> Any: ...


@dataclass(frozen=True)
class GGUFLoader:
    """A local GGUF file (catalogue name resolved by the caller), loaded with transformers."""

    path: str

    def tokenizer(self) -> Tokenize:
        from transformers import AutoTokenizer

        path = Path(self.path)
        return _hf_tokenize(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))

    def model(self) -> Any:
        from agentos.tools.long_context import load_gguf_model

        return load_gguf_model(self.path)[0]


def _hf_tokenize(tokenizer: Any) -> Tokenize:
    def tokenize(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    return tokenize


# --- sections ---------------------------------------------------------------------------------


def split_sections(text: str, offsets: Sequence[tuple[int, int]], section_tokens: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of about ``section_tokens`` tokens each, cut at line starts.

    A cut goes at the first token at or after the target length that starts a line; with no
    line start within half a section past the target, it goes at the target. A last section
    shorter than a quarter of ``section_tokens`` joins the one before.
    """
    n = len(offsets)
    line_start = [i == 0 or text[max(offsets[i][0] - 1, 0)] == "\n" for i in range(n)]
    cuts = [0]
    while n - cuts[-1] > section_tokens:
        target = cuts[-1] + section_tokens
        cut = next((i for i in range(target, min(n, target + section_tokens // 2)) if line_start[i]), target)
        cuts.append(cut)
    if len(cuts) > 1 and n - cuts[-1] < max(1, section_tokens // 4):
        cuts.pop()
    cuts.append(n)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


# --- scoring on one model (pure computations on token ids) -------------------------------------


def _nll_rows(model: Any, hidden: torch.Tensor, positions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Loss of predicting ``ids[p + 1]`` from hidden row at global position ``p``; NaN past the end.

    ``hidden [L, d]``, ``positions [L]``, ``ids [T]`` -> ``[L]`` float64. The vocabulary
    projection runs in chunks of rows so T x V logits never exist at once.
    """
    import torch
    import torch.nn.functional as F

    seq_len = ids.shape[0]
    out = torch.full((hidden.shape[0],), float("nan"), dtype=torch.float64)
    valid = (positions < seq_len - 1).nonzero().flatten()
    for chunk in valid.split(512):
        logits = model.lm_head(hidden[chunk]).float()  # [c, V]
        out[chunk] = F.cross_entropy(logits, ids[positions[chunk] + 1], reduction="none").double()
    return out


def _document_nll(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """``[T - 1]`` next-token losses of one exact forward pass with the model's attention."""
    import torch

    pos = torch.arange(ids.shape[0])
    hidden = model.model(input_ids=ids[None], position_ids=pos[None], use_cache=False).last_hidden_state[0]
    return _nll_rows(model, hidden, pos, ids)[:-1]


def _question_loss(model: Any, context: torch.Tensor, question: torch.Tensor, n_scored: int) -> float:
    """Mean loss of the last ``n_scored`` tokens of ``question`` after ``context`` (may be empty)."""
    import torch

    ids = torch.cat([context, question])
    nll = _document_nll(model, ids)  # [len - 1]
    return float(nll[-n_scored:].mean())


def _relevance(
    model: Any, ids: torch.Tensor, sections: Sequence[tuple[int, int]], question: torch.Tensor,
    n_scored: int, which: Sequence[int],
) -> dict[int, float]:
    """``{section: loss(question | section) - loss(question)}`` for the sections in ``which``."""
    base = _question_loss(model, ids[:0], question, n_scored)
    return {i: _question_loss(model, ids[sections[i][0]:sections[i][1]], question, n_scored) - base for i in which}


def _chunked_pass(
    model: Any, ids: torch.Tensor, sections: Sequence[tuple[int, int]], question: torch.Tensor,
    n_scored: int, memory_tokens: int, sink_tokens: int,
) -> tuple[torch.Tensor, dict[int, float], int]:
    """Recurrent chunk memory: ``(nll [T - 1], relevance per section, most keys attended)``."""
    import torch
    from transformers import DynamicCache

    model.set_attn_implementation("sdpa")
    seq_len = ids.shape[0]
    nll = torch.full((seq_len,), float("nan"), dtype=torch.float64)
    base = _question_loss(model, ids[:0], question, n_scored)
    relevance: dict[int, float] = {}
    memory: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer ([1, Hkv, M, D], same)
    most_keys = 0

    def cache_of(kv: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        return DynamicCache(ddp_cache_data=kv, config=model.config) if kv else DynamicCache(config=model.config)

    for i, (start, end) in enumerate(sections):
        pos = torch.arange(start, end)
        cache = cache_of(memory)
        hidden = model.model(input_ids=ids[None, start:end], position_ids=pos[None], cache=cache,
                             use_cache=True).last_hidden_state[0]
        nll[start:end] = _nll_rows(model, hidden, pos, ids)
        full = [(layer.keys, layer.values) for layer in cache.layers]  # memory + this section
        qpos = torch.arange(end, end + question.shape[0])
        qcache = cache_of(full)  # a copy: the question's keys do not enter the memory
        qhidden = model.model(input_ids=question[None], position_ids=qpos[None], cache=qcache,
                              use_cache=True).last_hidden_state[0]
        most_keys = max(most_keys, full[0][0].shape[2] + question.shape[0])
        logits = model.lm_head(qhidden[-n_scored - 1:-1]).float()
        q_loss = torch.nn.functional.cross_entropy(logits, question[-n_scored:]).item()
        relevance[i] = q_loss - base
        length = full[0][0].shape[2]
        if length > sink_tokens + memory_tokens:  # keep the sinks and the most recent positions
            keep = torch.cat([torch.arange(sink_tokens), torch.arange(length - memory_tokens, length)])
            full = [(k[:, :, keep], v[:, :, keep]) for k, v in full]
        memory = full
    return nll[:-1], relevance, most_keys


def _ring_rank(
    rank: int, world_size: int, loader: ModelLoader, ids: torch.Tensor,
    sections: list[tuple[int, int]], question: torch.Tensor, n_scored: int, timeout_s: float,
) -> tuple[torch.Tensor, torch.Tensor, dict[int, float]]:
    """Rank function: ``(global positions, their losses, relevance of sections rank::world)``."""
    import torch

    from agentos.tools.long_context import BLOCKWISE, RING, register_attention, ring_context, ring_inputs

    register_attention()
    model = loader.model().eval()
    seq_len = ids.shape[0]
    with torch.no_grad():
        model.set_attn_implementation(RING)
        local_ids, pos = ring_inputs(ids[None], rank, world_size)
        with ring_context(seq_len=seq_len, timeout_s=timeout_s):
            hidden = model.model(input_ids=local_ids, position_ids=pos, use_cache=False).last_hidden_state[0]
        nll = _nll_rows(model, hidden, pos[0], ids)
        model.set_attn_implementation(BLOCKWISE)
        relevance = _relevance(model, ids, sections, question, n_scored, range(rank, len(sections), world_size))
    return pos[0], nll, relevance


# --- the whole analysis ------------------------------------------------------------------------


def _check_arguments(
    mode: str, ranks: int, max_tokens: int, section_tokens: int, memory_tokens: int, sink_tokens: int,
    question: str,
) -> None:
    if mode not in _ALL_MODES:
        raise ToolRetry(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if not 1 <= ranks <= MAX_RANKS:
        raise ToolRetry(f"ranks must be between 1 and {MAX_RANKS}, got {ranks}")
    if not 2 <= max_tokens <= MAX_TOKENS:
        raise ToolRetry(f"max_tokens must be between 2 and {MAX_TOKENS}, got {max_tokens}")
    if section_tokens < 2:
        raise ToolRetry(f"section_tokens must be >= 2, got {section_tokens}")
    if memory_tokens < 0 or sink_tokens < 0:
        raise ToolRetry("memory_tokens and sink_tokens must be >= 0")
    if not question.strip():
        raise ToolRetry("the question is empty: say what to look for in the document")


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (no ties expected on real losses); 1.0 for fewer than 2 items."""
    if len(a) < 2:
        return 1.0

    def ranks(x: Sequence[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


def analyse_document(
    text: str,
    question: str,
    *,
    loader: ModelLoader,
    mode: Literal["blockwise", "ring", "chunked", "eager"] = "blockwise",
    ranks: int = 2,
    max_tokens: int = 4096,
    section_tokens: int = 512,
    memory_tokens: int = 256,
    sink_tokens: int = 4,
    compare: bool = True,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Per-section losses and question relevance of ``text`` (see the module docstring).

    Returns:
        A JSON-able dict: ``sections`` (index, token and line spans, loss, perplexity,
        relevance), ``best_section`` (its lines and text), ``mode``, ``tokens``, ``truncated``,
        ``seconds``; for ``"chunked"`` with ``compare`` also ``agreement`` with the blockwise path.

    Raises:
        ToolRetry: an argument is out of range, the mode is unknown, the question is empty, or
            the text has fewer than 2 tokens.
        agentos.kernels.launch.RankFailed: a ring rank failed or timed out.
    """
    import torch

    _check_arguments(mode, ranks, max_tokens, section_tokens, memory_tokens, sink_tokens, question)
    started = time.perf_counter()
    tokenize = loader.tokenizer()
    all_ids, offsets = tokenize(text)
    if len(all_ids) < 2:
        raise ToolRetry("the document is empty (fewer than 2 tokens); pass a file with text in it")
    ids = torch.tensor(all_ids[:max_tokens], dtype=torch.long)
    offsets = offsets[:max_tokens]
    sections = split_sections(text, offsets, section_tokens)
    prefix_ids, _ = tokenize(QUESTION_PREFIX)
    q_ids, _ = tokenize(question)
    question_t = torch.tensor(prefix_ids + q_ids, dtype=torch.long)
    n_scored = len(q_ids)

    report: dict[str, Any] = {"mode": mode, "tokens": int(ids.shape[0]), "truncated": len(all_ids) > max_tokens}
    extra: dict[str, Any] = {}
    with torch.no_grad():
        if mode == "ring":
            from agentos.kernels.launch import spawn

            per_rank = spawn(_ring_rank, ranks, loader, ids, sections, question_t, n_scored, timeout_s,
                             timeout_s=timeout_s)
            nll = torch.full((ids.shape[0],), float("nan"), dtype=torch.float64)
            relevance: dict[int, float] = {}
            for pos, local, rel in per_rank:
                keep = pos < ids.shape[0]
                nll[pos[keep]] = local[keep]
                relevance.update(rel)
            nll = nll[:-1]
            extra["ranks"] = ranks
        else:
            from agentos.tools.long_context import BLOCKWISE, register_attention

            register_attention()
            model = loader.model().eval()
            if mode == "chunked":
                nll, relevance, most_keys = _chunked_pass(
                    model, ids, sections, question_t, n_scored, memory_tokens, sink_tokens)
                extra.update(memory_tokens=memory_tokens, sink_tokens=sink_tokens, max_keys_attended=most_keys)
            else:
                model.set_attn_implementation(BLOCKWISE if mode == "blockwise" else "eager")
                nll = _document_nll(model, ids)
                relevance = _relevance(model, ids, sections, question_t, n_scored, range(len(sections)))
    rows = _section_rows(text, offsets, sections, nll, relevance)
    report["sections"] = rows
    report["best_section"] = _best(text, offsets, sections, rows)
    report.update(extra)
    if mode == "chunked" and compare:
        with torch.no_grad():
            model.set_attn_implementation(BLOCKWISE)
            ref_nll = _document_nll(model, ids)
            ref_rel = _relevance(model, ids, sections, question_t, n_scored, range(len(sections)))
        ref_rows = _section_rows(text, offsets, sections, ref_nll, ref_rel)
        report["agreement"] = _agreement(rows, ref_rows)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def _section_rows(
    text: str, offsets: Sequence[tuple[int, int]], sections: Sequence[tuple[int, int]],
    nll: torch.Tensor, relevance: dict[int, float],
) -> list[dict[str, Any]]:
    rows = []
    for i, (start, end) in enumerate(sections):
        losses = nll[max(start - 1, 0):end - 1]  # predictions of tokens start..end-1 (token 0 has none)
        loss = float(losses.mean()) if losses.numel() else float("nan")
        first_char, last_char = offsets[start][0], offsets[end - 1][1]
        rows.append({
            "index": i,
            "tokens": [start, end],
            "lines": [text.count("\n", 0, first_char) + 1, text.count("\n", 0, max(last_char - 1, first_char)) + 1],
            "loss": loss,
            "perplexity": math.exp(loss) if loss == loss else float("nan"),
            "relevance": relevance[i],
        })
    return rows


def _best(
    text: str, offsets: Sequence[tuple[int, int]], sections: Sequence[tuple[int, int]],
    rows: Sequence[dict[str, Any]], max_chars: int = 1500,
) -> dict[str, Any]:
    best = min(rows, key=lambda r: r["relevance"])
    start, end = sections[best["index"]]
    span = text[offsets[start][0]:offsets[end - 1][1]]
    return {"index": best["index"], "lines": best["lines"], "relevance": best["relevance"],
            "text": span[:max_chars] + ("..." if len(span) > max_chars else "")}


def _agreement(rows: Sequence[dict[str, Any]], ref: Sequence[dict[str, Any]]) -> dict[str, Any]:
    loss, ref_loss = [r["loss"] for r in rows], [r["loss"] for r in ref]
    rel, ref_rel = [r["relevance"] for r in rows], [r["relevance"] for r in ref]
    best = min(range(len(rel)), key=rel.__getitem__)
    ref_best = min(range(len(ref_rel)), key=ref_rel.__getitem__)
    diffs = [abs(a - b) for a, b in zip(loss, ref_loss)]
    return {
        "reference": "blockwise",
        "same_best_section": best == ref_best,
        "best_section_reference": ref_best,
        "loss_spearman": _spearman(loss, ref_loss),
        "relevance_spearman": _spearman(rel, ref_rel),
        "max_abs_loss_diff": max(diffs),
        "mean_abs_loss_diff": sum(diffs) / len(diffs),
    }


# --- tools -------------------------------------------------------------------------------------


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

    _check_arguments(mode, ranks, max_tokens, section_tokens, memory_tokens, 0, question)
    text = _read_document(document_path)
    try:
        path = resolve(model)
    except ModelError as error:  # unknown, not installed or corrupt: the LLM can pick another
        raise ToolRetry(f"model {model!r} is not usable: {error}") from error
    report = analyse_document(text, question, loader=GGUFLoader(str(path)), mode=mode, ranks=ranks,
                              max_tokens=max_tokens, section_tokens=section_tokens, memory_tokens=memory_tokens)
    report["document"] = str(Path(document_path).expanduser())
    return report


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bench_rank(rank: int, world_size: int, method: str, seq_len: int, heads: int, head_dim: int) -> dict[str, float]:
    """Rank function: one timed causal forward call after a small warm-up; RSS growth in bytes."""
    import resource

    import torch
    import torch.nn.functional as F

    from agentos.kernels.attention import blockwise_attention, vanilla_attention
    from agentos.kernels.ring import padded_length, ring_attention

    local = padded_length(seq_len, world_size) // world_size if method == "ring" else seq_len
    g = torch.Generator().manual_seed(rank)
    q, k, v = (torch.randn(1, heads, local, head_dim, generator=g) for _ in range(3))

    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, t: int) -> torch.Tensor:
        if method == "vanilla":
            return vanilla_attention(q, k, v, causal=True)
        if method == "blockwise":
            return blockwise_attention(q, k, v, causal=True)[0]
        if method == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return ring_attention(q, k, v, causal=True, seq_len=t)

    call(q[:, :, :64], k[:, :, :64], v[:, :, :64], 64 * world_size)  # warm-up (gloo connections)
    base = _rss_bytes()
    start = time.perf_counter()
    call(q, k, v, seq_len)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"time_s": elapsed, "extra_bytes": float(max(0, peak - base))}


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
    from agentos.kernels.launch import spawn

    methods = list(methods or BENCHMARK_METHODS)
    unknown = [m for m in methods if m not in BENCHMARK_METHODS]
    if unknown:
        raise ToolRetry(f"unknown methods {unknown}: use any of {', '.join(BENCHMARK_METHODS)}")
    if not 64 <= seq_len <= 65536:
        raise ToolRetry(f"seq_len must be between 64 and 65536, got {seq_len}")
    if not 1 <= ranks <= MAX_RANKS:
        raise ToolRetry(f"ranks must be between 1 and {MAX_RANKS}, got {ranks}")
    heads, head_dim = 8, 64
    rows: list[dict[str, Any]] = []
    for method in methods:
        world = ranks if method == "ring" else 1
        label = f"ring x{ranks}" if method == "ring" else method
        estimate = heads * seq_len * seq_len * 4 * 4 / GIB  # four T x T float32 buffers
        if method == "vanilla" and estimate > mem_cap_gib:
            rows.append({"method": label, "seq_len": seq_len, "status": f"skipped: est {estimate:.1f} GiB"})
            continue
        per_rank = spawn(_bench_rank, world, method, seq_len, heads, head_dim, timeout_s=600)
        rows.append({
            "method": label, "seq_len": seq_len, "status": "ok",
            "time_s": round(max(r["time_s"] for r in per_rank), 4),
            "peak_mem_gib_per_rank": round(max(r["extra_bytes"] for r in per_rank) / GIB, 4),
        })
    return rows
