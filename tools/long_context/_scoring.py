"""Exact scoring on one model: next-token losses of a document and of a question (internal).

Pure computations on token ids: each call is one forward pass with whatever attention the model
is set to (``"agentos_blockwise"``, ``"eager"``, ...). Losses are float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def nll_rows(model: Any, hidden: torch.Tensor, positions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
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


def document_nll(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """``[T - 1]`` next-token losses of one exact forward pass with the model's attention."""
    import torch

    pos = torch.arange(ids.shape[0])
    hidden = model.model(input_ids=ids[None], position_ids=pos[None], use_cache=False).last_hidden_state[0]
    return nll_rows(model, hidden, pos, ids)[:-1]


def question_loss(model: Any, context: torch.Tensor, question: torch.Tensor, n_scored: int) -> float:
    """Mean loss of the last ``n_scored`` tokens of ``question`` after ``context`` (may be empty)."""
    import torch

    ids = torch.cat([context, question])
    nll = document_nll(model, ids)  # [len - 1]
    return float(nll[-n_scored:].mean())


def section_relevance(
    model: Any, ids: torch.Tensor, sections: Sequence[tuple[int, int]], question: torch.Tensor,
    n_scored: int, which: Sequence[int],
) -> dict[int, float]:
    """``{section: loss(question | section) - loss(question)}`` for the sections in ``which``."""
    base = question_loss(model, ids[:0], question, n_scored)
    return {i: question_loss(model, ids[sections[i][0]:sections[i][1]], question, n_scored) - base for i in which}

