"""Reciprocal rank fusion and MMR are pure functions: checked on plain lists and arrays."""

from __future__ import annotations

import numpy as np
import pytest

from agentos.runtime.memory.fusion import mmr, reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)


def test_rrf_puts_items_both_rankings_agree_on_first() -> None:
    order = [item for item, _ in reciprocal_rank_fusion([["x", "shared", "y"], ["z", "shared"]])]
    assert order[0] == "shared"


def test_rrf_of_one_ranking_keeps_its_order() -> None:
    assert [i for i, _ in reciprocal_rank_fusion([["q", "w", "e"]])] == ["q", "w", "e"]


def test_mmr_with_lambda_one_keeps_relevance_order() -> None:
    vectors = np.random.default_rng(0).normal(size=(5, 8))
    assert mmr([0.1, 0.9, 0.5, 0.7, 0.3], vectors, 3, lambda_=1.0) == [1, 3, 2]


def test_mmr_skips_a_near_copy_of_what_it_picked() -> None:
    base = np.array([1.0, 0.0, 0.0])
    vectors = np.stack([base, base + [0, 0.01, 0], np.array([0.0, 1.0, 0.0])])
    assert mmr([1.0, 0.99, 0.6], vectors, 2, lambda_=0.5) == [0, 2]


def test_mmr_validates_its_inputs() -> None:
    with pytest.raises(ValueError, match="one vector per"):
        mmr([1.0, 2.0], np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match="lambda_"):
        mmr([1.0], np.zeros((1, 2)), 1, lambda_=1.5)
    assert mmr([], np.zeros((0, 2)), 3) == []
