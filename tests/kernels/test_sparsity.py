"""Sparsity kernels against their plain references on fresh seeded random inputs."""

from __future__ import annotations

import math

import pytest
import torch

from agentos.kernels.sparsity import (
    activation_norms,
    check_nm,
    cubic_sparsity,
    global_unstructured_masks,
    global_unstructured_masks_reference,
    head_scores,
    head_scores_reference,
    is_nm_sparse,
    movement_update,
    neuron_scores,
    neuron_scores_reference,
    nm_mask,
    nm_mask_reference,
    pruned_count,
    rigl_drop_fraction,
    rigl_update,
    rigl_update_reference,
    sparsity_of,
    structured_mask,
    structured_mask_reference,
    unstructured_mask,
    unstructured_mask_reference,
    wanda,
    wanda_reference,
)

F64 = torch.float64
SPARSITIES = [0.0, 0.1, 0.29, 0.5, 0.8, 0.95]


@pytest.mark.parametrize("shape", [(7, 13), (32, 64), (1, 5), (3, 4, 6)])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_unstructured_mask_prunes_exactly_floor_s_n_lowest_and_matches_reference(shape, sparsity) -> None:
    torch.manual_seed(hash((shape, sparsity)) % 2**31)
    scores = torch.randn(shape, dtype=F64).abs()
    mask = unstructured_mask(scores, sparsity)
    assert mask.dtype == torch.bool and mask.shape == scores.shape
    assert int((~mask).sum()) == math.floor(sparsity * scores.numel() + 1e-9)
    assert torch.equal(mask, unstructured_mask_reference(scores, sparsity))
    if (~mask).any() and mask.any():  # every pruned score is <= every kept score
        assert scores[~mask].max() <= scores[mask].min()


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_per_row_mask_prunes_the_same_count_in_every_row(sparsity) -> None:
    torch.manual_seed(1)
    scores = torch.rand(9, 40, dtype=F64)
    mask = unstructured_mask(scores, sparsity, per_row=True)
    assert ((~mask).sum(dim=1) == pruned_count(40, sparsity)).all()
    assert torch.equal(mask, unstructured_mask_reference(scores, sparsity, per_row=True))


def test_ties_prune_the_earlier_entry_first() -> None:
    mask = unstructured_mask(torch.tensor([1.0, 1.0, 1.0, 1.0]), 0.5)
    assert mask.tolist() == [False, False, True, True]


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_global_masks_share_one_threshold_and_match_reference(sparsity) -> None:
    torch.manual_seed(2)
    scores = {"a": torch.rand(8, 16, dtype=F64), "b": torch.rand(4, 4, dtype=F64) * 3, "c": torch.rand(10, dtype=F64) * 0.1}
    masks = global_unstructured_masks(scores, sparsity)
    total = sum(t.numel() for t in scores.values())
    assert sum(int((~m).sum()) for m in masks.values()) == pruned_count(total, sparsity)
    ref = global_unstructured_masks_reference(scores, sparsity)
    assert all(torch.equal(masks[n], ref[n]) for n in scores)
    pruned = torch.cat([scores[n][~masks[n]] for n in scores])
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    assert pruned.max() <= kept.min()
    assert sparsity_of(masks["c"]) >= sparsity_of(masks["b"])  # low-score layer loses more


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_0_1_is_refused(bad) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        unstructured_mask(torch.rand(4, 4), bad)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        structured_mask(torch.rand(4), bad)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
@pytest.mark.parametrize("shape", [(8, 16), (3, 32), (2, 2, 8)])
def test_nm_mask_keeps_n_per_group_of_m_and_matches_reference(n, m, shape) -> None:
    torch.manual_seed(3)
    scores = torch.randn(shape, dtype=F64)
    mask = nm_mask(scores, n, m)
    assert torch.equal(mask, nm_mask_reference(scores, n, m))
    assert (mask.reshape(-1, m).sum(dim=1) == n).all()
    assert is_nm_sparse(mask, n, m)
    check_nm(scores * mask, n, m)
    groups, kept = scores.reshape(-1, m), mask.reshape(-1, m)
    for g, k in zip(groups, kept):  # the kept ones are the group's largest
        assert g[~k].max() <= g[k].min()


def test_nm_validator_names_the_offending_group() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert not is_nm_sparse(w, 2, 4)
    with pytest.raises(ValueError, match=r"1 groups have more than 2 nonzeros, first at row 0, inputs 4\.\.7"):
        check_nm(w, 2, 4, name="w")
    assert is_nm_sparse(w[:, :4], 2, 4)


@pytest.mark.parametrize(("n", "m", "needle"), [(2, 4, "not divisible by 4"), (4, 8, "not divisible by 8"), (4, 4, "0 < N < M"), (0, 4, "0 < N < M")])
def test_nm_pattern_the_shape_cannot_take_is_refused(n, m, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        nm_mask(torch.rand(4, 6), n, m)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.99])
def test_structured_mask_matches_reference_and_keeps_at_least_min_keep(fraction) -> None:
    torch.manual_seed(4)
    scores = torch.rand(12, dtype=F64)
    mask = structured_mask(scores, fraction)
    assert torch.equal(mask, structured_mask_reference(scores, fraction))
    assert int((~mask).sum()) == min(pruned_count(12, fraction), 11)


def test_wanda_matches_reference_and_differs_from_magnitude() -> None:
    torch.manual_seed(5)
    w = torch.randn(6, 10, dtype=F64)
    x = torch.randn(3, 7, 10, dtype=F64) * torch.linspace(0.1, 5, 10, dtype=F64)
    score = wanda(w, activation_norms(x))
    torch.testing.assert_close(score, wanda_reference(w, x), rtol=1e-12, atol=1e-12)
    assert not torch.equal(unstructured_mask(score, 0.5, per_row=True), unstructured_mask(w.abs(), 0.5, per_row=True))
    with pytest.raises(ValueError, match="input norms"):
        wanda(w, torch.ones(9))


def test_movement_score_rewards_weights_moving_away_from_zero() -> None:
    w = torch.tensor([1.0, 1.0, -1.0])
    grad = torch.tensor([-1.0, 1.0, 1.0])  # SGD moves w by -grad: +, -, -
    score = movement_update(torch.zeros(3), w, grad)
    assert score.tolist() == [1.0, -1.0, 1.0]


def test_head_and_neuron_scores_match_references() -> None:
    torch.manual_seed(6)
    q, k, v, o = (torch.randn(12, 12, dtype=F64) for _ in range(4))
    torch.testing.assert_close(head_scores(q, k, v, o, 3), head_scores_reference(q, k, v, o, 3))
    up, down = torch.randn(20, 12, dtype=F64), torch.randn(12, 20, dtype=F64)
    torch.testing.assert_close(neuron_scores(up, down), neuron_scores_reference(up, down))
    with pytest.raises(ValueError, match="not divisible into 5 heads"):
        head_scores(q, k, v, o, 5)


def test_cubic_schedule_endpoints_and_shape() -> None:
    values = [cubic_sparsity(t, 0.8, start=10, end=110) for t in range(0, 130)]
    assert values[0] == 0.0 and values[10] == 0.0 and values[110] == 0.8 and values[129] == 0.8
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert math.isclose(values[60], 0.8 * (1 - 0.5**3))  # halfway: 87.5 % of the way there
    assert cubic_sparsity(5, 0.5, start=5, end=5) == 0.5
    with pytest.raises(ValueError, match="before it starts"):
        cubic_sparsity(0, 0.5, start=5, end=4)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_rigl_update_keeps_sparsity_exact_and_matches_reference(fraction, sparsity) -> None:
    torch.manual_seed(7)
    w = torch.randn(16, 24, dtype=F64)
    mask = unstructured_mask(w.abs(), sparsity)
    w = w * mask
    grad = torch.randn(16, 24, dtype=F64)
    new_mask, new_w = rigl_update(w, mask, grad, fraction)
    ref_mask, ref_w = rigl_update_reference(w, mask, grad, fraction)
    assert torch.equal(new_mask, ref_mask)
    torch.testing.assert_close(new_w, ref_w)
    assert int(new_mask.sum()) == int(mask.sum())
    assert (new_w[~new_mask] == 0).all()
    grown = new_mask & ~mask
    assert (new_w[grown] == 0).all()  # regrown connections start at zero
    if fraction > 0:
        assert grown.sum() > 0 and (grad.abs()[grown].min() >= grad.abs()[~new_mask].max())


def test_rigl_drop_fraction_decays_by_cosine() -> None:
    assert rigl_drop_fraction(0, 100) == pytest.approx(0.3)
    assert rigl_drop_fraction(50, 100) == pytest.approx(0.15)
    assert rigl_drop_fraction(100, 100) == pytest.approx(0.0)
