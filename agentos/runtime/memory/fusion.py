"""Pure ranking functions for hybrid recall: reciprocal rank fusion, then MMR for diversity.

No I/O and no state: both are tested on plain lists and arrays.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["mmr", "reciprocal_rank_fusion"]

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], k: int = 60) -> list[tuple[K, float]]:
    """Fuse rankings (best first) into one: ``score(d) = sum over rankings of 1 / (k + rank)``.

    Ranks start at 1. ``k=60`` is the constant of Cormack et al. (2009). Ties keep the order in
    which items first appear (earlier rankings first).

    Returns:
        ``(item, score)`` pairs, best first.
    """
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def mmr(relevance: Sequence[float], vectors: np.ndarray, n: int, lambda_: float = 0.7) -> list[int]:
    """Maximal marginal relevance: pick ``n`` indices trading relevance against redundancy.

    Each step takes ``argmax lambda_ * rel(i) - (1 - lambda_) * max_j cos(v_i, v_j)`` over the
    not-yet-picked ``i``, ``j`` ranging over the picked ones. ``relevance`` is rescaled to
    ``[0, 1]`` (divided by its maximum) so it is on the cosine's scale. ``lambda_=1`` keeps the
    relevance order.

    Args:
        relevance: one score per candidate, higher is better.
        vectors: ``[N, D]`` embeddings of the candidates (any norm).
        n: how many to pick (at most N).
        lambda_: in ``[0, 1]``.

    Raises:
        ValueError: shapes disagree or ``lambda_`` is outside ``[0, 1]``.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != rel.shape[0]:
        raise ValueError(f"need one vector per relevance score, got {vecs.shape} for {rel.shape}")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
    count = min(n, rel.shape[0])
    if count <= 0:
        return []
    top = rel.max()
    if top > 0:
        rel = rel / top
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = vecs / np.where(norms == 0, 1.0, norms)
    sim = unit @ unit.T  # [N, N]
    picked: list[int] = []
    redundancy = np.zeros(rel.shape[0])  # max cosine to anything picked so far
    available = np.ones(rel.shape[0], dtype=bool)
    for _ in range(count):
        score = lambda_ * rel - (1.0 - lambda_) * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, sim[best])
    return picked
