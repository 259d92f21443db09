"""Reading a long document with a language model: per-section perplexity and question relevance.

:func:`analyse_document` runs a causal language model over up to ``max_tokens`` tokens of a text
and returns, for each section (~``section_tokens`` tokens, cut at line starts by
:func:`split_sections`):

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
- ``"chunked"``: recurrent chunk memory, the low-memory approximation (see
  :mod:`agentos.tools.long_context._chunked`). The report carries ``agreement`` with the exact
  blockwise path on the same document.
- ``"eager"``: transformers' own attention, the reference the tests compare the others with.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from agentos.errors import ToolRetry
from agentos.tools.long_context._chunked import chunked_pass
from agentos.tools.long_context._scoring import document_nll, nll_rows, section_relevance
from agentos.tools.long_context.attention import BLOCKWISE, RING, register_attention, ring_context, ring_inputs
from agentos.tools.long_context.model import ModelLoader

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_RANKS", "MAX_TOKENS", "MODES", "analyse_document", "check_arguments", "split_sections"]

MODES = ("blockwise", "ring", "chunked")
_ALL_MODES = (*MODES, "eager")  # "eager": transformers' own attention, the reference in tests
QUESTION_PREFIX = "\n\nQuestion: "
MAX_RANKS = 8
MAX_TOKENS = 32768


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

# --- one rank of the ring mode -----------------------------------------------------------------


def _ring_rank(
    rank: int, world_size: int, loader: ModelLoader, ids: torch.Tensor,
    sections: list[tuple[int, int]], question: torch.Tensor, n_scored: int, timeout_s: float,
) -> tuple[torch.Tensor, torch.Tensor, dict[int, float]]:
    """Rank function: ``(global positions, their losses, relevance of sections rank::world)``."""
    import torch

    register_attention()
    model = loader.model().eval()
    seq_len = ids.shape[0]
    with torch.no_grad():
        model.set_attn_implementation(RING)
        local_ids, pos = ring_inputs(ids[None], rank, world_size)
        with ring_context(seq_len=seq_len, timeout_s=timeout_s):
            hidden = model.model(input_ids=local_ids, position_ids=pos, use_cache=False).last_hidden_state[0]
        nll = nll_rows(model, hidden, pos[0], ids)
        model.set_attn_implementation(BLOCKWISE)
        relevance = section_relevance(model, ids, sections, question, n_scored, range(rank, len(sections), world_size))
    return pos[0], nll, relevance


# --- the whole analysis ------------------------------------------------------------------------


def check_arguments(
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

    check_arguments(mode, ranks, max_tokens, section_tokens, memory_tokens, sink_tokens, question)
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
            register_attention()
            model = loader.model().eval()
            if mode == "chunked":
                nll, relevance, most_keys = chunked_pass(
                    model, ids, sections, question_t, n_scored, memory_tokens, sink_tokens)
                extra.update(memory_tokens=memory_tokens, sink_tokens=sink_tokens, max_keys_attended=most_keys)
            else:
                model.set_attn_implementation(BLOCKWISE if mode == "blockwise" else "eager")
                nll = document_nll(model, ids)
                relevance = section_relevance(model, ids, sections, question_t, n_scored, range(len(sections)))
    rows = _section_rows(text, offsets, sections, nll, relevance)
    report["sections"] = rows
    report["best_section"] = _best(text, offsets, sections, rows)
    report.update(extra)
    if mode == "chunked" and compare:
        with torch.no_grad():
            model.set_attn_implementation(BLOCKWISE)
            ref_nll = document_nll(model, ids)
            ref_rel = section_relevance(model, ids, sections, question_t, n_scored, range(len(sections)))
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

