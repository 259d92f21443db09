"""Pruning masks: unstructured (layer-wise, row-wise, global), N:M semi-structured, structured.

A mask is a ``bool`` tensor shaped like what it prunes: ``True`` keeps, ``False`` prunes. Every
mask is built from a *score* tensor (higher is more important; see
:mod:`agentos.kernels.sparsity.scores`), never from the weight directly, so one mask kernel
serves magnitude, Wanda and movement pruning alike.

Exact sparsity by definition: at sparsity ``s`` over ``n`` entries exactly
``pruned_count(n, s) = floor(s * n)`` entries are pruned, the lowest-scoring ones; ties are broken
by position (the earlier entry in row-major order is pruned first). Each fast kernel has a plain
reference beside it (``*_reference``: Python loops over sorted lists) that the tests compare with.

Legend of dimension letters used in shape comments:
    O  output features (rows of a linear weight)
    I  input features (columns)
    G  groups of M consecutive inputs (I / M)
    H  attention heads, F  FFN neurons
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "check_nm",
    "check_sparsity",
    "global_unstructured_masks",
    "global_unstructured_masks_reference",
    "is_nm_sparse",
    "nm_mask",
    "nm_mask_reference",
    "pruned_count",
    "sparsity_of",
    "structured_mask",
    "structured_mask_reference",
    "unstructured_mask",
    "unstructured_mask_reference",
]


def check_sparsity(sparsity: float) -> None:
    """Raise ``ValueError`` unless ``0 <= sparsity < 1`` (1 would prune everything)."""
    if not isinstance(sparsity, (int, float)) or not 0.0 <= float(sparsity) < 1.0 or math.isnan(sparsity):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}; e.g. 0.5 prunes half")


def pruned_count(numel: int, sparsity: float) -> int:
    """How many of ``numel`` entries a mask at ``sparsity`` prunes: ``floor(sparsity * numel)``."""
    check_sparsity(sparsity)
    return int(math.floor(float(sparsity) * numel + 1e-9))


def sparsity_of(mask_or_weight: Tensor) -> float:
    """Fraction of zeros (``False`` in a mask, ``0`` in a weight)."""
    return 1.0 - float(torch.count_nonzero(mask_or_weight)) / mask_or_weight.numel()


def _lowest(flat: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` lowest scores of a 1-D tensor, ties to the earlier index."""
    return torch.argsort(flat, stable=True)[:k]


def unstructured_mask(scores: Tensor, sparsity: float, *, per_row: bool = False) -> Tensor:
    """Prune the lowest-scoring entries of one tensor.

    Args:
        scores: importance scores, any shape (``[O, I]`` for a linear weight).
        sparsity: fraction to prune, in ``[0, 1)``.
        per_row: prune ``floor(sparsity * I)`` in each row separately (Wanda's comparison group,
            per output) instead of ``floor(sparsity * numel)`` over the whole tensor.

    Returns:
        A ``bool`` mask shaped like ``scores``.

    Raises:
        ValueError: sparsity outside ``[0, 1)``, or ``per_row`` on a tensor with fewer than 2 dims.
    """
    check_sparsity(sparsity)
    if per_row:
        if scores.dim() < 2:
            raise ValueError(f"per_row needs a tensor with rows ([O, I]), got shape {tuple(scores.shape)}")
        rows = scores.reshape(scores.shape[0], -1)  # [O, I]
        k = pruned_count(rows.shape[1], sparsity)
        order = torch.argsort(rows, dim=1, stable=True)[:, :k]  # [O, k]
        mask = torch.ones_like(rows, dtype=torch.bool)
        mask.scatter_(1, order, False)
        return mask.reshape(scores.shape)
    flat = scores.reshape(-1)
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[_lowest(flat, pruned_count(flat.numel(), sparsity))] = False
    return mask.reshape(scores.shape)


def unstructured_mask_reference(scores: Tensor, sparsity: float, *, per_row: bool = False) -> Tensor:
    """Plain reference for :func:`unstructured_mask`: sort ``(score, index)`` pairs in Python."""
    check_sparsity(sparsity)
    rows = scores.reshape(scores.shape[0], -1).tolist() if per_row else [scores.reshape(-1).tolist()]
    out = []
    for row in rows:
        k = pruned_count(len(row), sparsity)
        pruned = {i for _, i in sorted((v, i) for i, v in enumerate(row))[:k]}
        out.append([i not in pruned for i in range(len(row))])
    return torch.tensor(out, dtype=torch.bool).reshape(scores.shape)


def global_unstructured_masks(scores: dict[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """One threshold over many tensors: prune the ``floor(sparsity * total)`` lowest scores overall.

    Layers whose scores are low lose more than ``sparsity``; others less. Scores must be on a
    comparable scale across tensors (raw magnitude is; Wanda scores usually are not).

    Raises:
        ValueError: sparsity outside ``[0, 1)`` or no tensors.
    """
    check_sparsity(sparsity)
    if not scores:
        raise ValueError("global_unstructured_masks needs at least one score tensor")
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).to(torch.float64) for n in names])  # [sum numel]
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[_lowest(flat, pruned_count(flat.numel(), sparsity))] = False
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start:start + size].reshape(scores[n].shape)
        start += size
    return out


def global_unstructured_masks_reference(scores: dict[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """Plain reference for :func:`global_unstructured_masks`."""
    entries = [(float(v), name, i) for name, t in scores.items() for i, v in enumerate(t.reshape(-1).tolist())]
    order = {name: j for j, name in enumerate(scores)}
    entries.sort(key=lambda e: (e[0], order[e[1]], e[2]))
    pruned = {(name, i) for _, name, i in entries[:pruned_count(len(entries), sparsity)]}
    return {name: torch.tensor([(name, i) not in pruned for i in range(t.numel())]).reshape(t.shape)
            for name, t in scores.items()}


def _check_nm_shape(shape: tuple[int, ...], n: int, m: int) -> None:
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"an N:M pattern needs integers 0 < N < M, got {n}:{m} (e.g. 2:4 or 4:8)")
    if len(shape) < 1 or shape[-1] % m:
        raise ValueError(
            f"a {n}:{m} pattern groups {m} consecutive inputs, but the last dimension of shape "
            f"{tuple(shape)} is not divisible by {m}; choose M dividing it or skip this layer"
        )


def nm_mask(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep the ``n`` highest scores in every group of ``m`` consecutive inputs (last dimension).

    2:4 keeps 2 of each 4 (50 % sparsity, the pattern sparse tensor cores accelerate).

    Raises:
        ValueError: not ``0 < n < m``, or the last dimension is not divisible by ``m``.
    """
    _check_nm_shape(tuple(scores.shape), n, m)
    groups = scores.reshape(-1, m)  # [O*G, M]
    order = torch.argsort(groups, dim=1, stable=True)[:, : m - n]  # lowest m-n per group
    mask = torch.ones_like(groups, dtype=torch.bool)
    mask.scatter_(1, order, False)
    return mask.reshape(scores.shape)


def nm_mask_reference(scores: Tensor, n: int, m: int) -> Tensor:
    """Plain reference for :func:`nm_mask`: each group sorted in Python."""
    _check_nm_shape(tuple(scores.shape), n, m)
    flat = scores.reshape(-1).tolist()
    keep = []
    for g in range(0, len(flat), m):
        group = flat[g:g + m]
        pruned = {i for _, i in sorted((v, i) for i, v in enumerate(group))[: m - n]}
        keep.extend(i not in pruned for i in range(m))
    return torch.tensor(keep, dtype=torch.bool).reshape(scores.shape)


def is_nm_sparse(mask_or_weight: Tensor, n: int, m: int) -> bool:
    """Whether every group of ``m`` consecutive inputs has at most ``n`` nonzeros.

    Raises:
        ValueError: not ``0 < n < m``, or the last dimension is not divisible by ``m``.
    """
    _check_nm_shape(tuple(mask_or_weight.shape), n, m)
    nonzero = (mask_or_weight.reshape(-1, m) != 0).sum(dim=1)  # [O*G]
    return bool((nonzero <= n).all())


def check_nm(mask_or_weight: Tensor, n: int, m: int, *, name: str = "tensor") -> None:
    """Raise ``ValueError`` naming the first offending group unless the tensor is ``n:m`` sparse."""
    _check_nm_shape(tuple(mask_or_weight.shape), n, m)
    nonzero = (mask_or_weight.reshape(-1, m) != 0).sum(dim=1)
    bad = torch.nonzero(nonzero > n).flatten()
    if bad.numel():
        group = int(bad[0])
        cols = mask_or_weight.shape[-1] // m
        raise ValueError(
            f"{name} is not {n}:{m} sparse: {bad.numel()} groups have more than {n} nonzeros, "
            f"first at row {group // cols}, inputs {group % cols * m}..{group % cols * m + m - 1} "
            f"({int(nonzero[group])} nonzeros)"
        )


def structured_mask(scores: Tensor, fraction: float, *, min_keep: int = 1) -> Tensor:
    """Prune whole units (heads ``[H]`` or neurons ``[F]``, per layer): the lowest-scoring ones.

    Args:
        scores: one score per unit, 1-D.
        fraction: fraction of units to prune, in ``[0, 1)``; ``floor(fraction * units)`` go.
        min_keep: never keep fewer than this many units (a layer with no heads left would have
            nothing to attend with).

    Raises:
        ValueError: fraction outside ``[0, 1)``, scores not 1-D, or ``min_keep`` above the units.
    """
    check_sparsity(fraction)
    if scores.dim() != 1:
        raise ValueError(f"structured scores are one per unit (1-D), got shape {tuple(scores.shape)}")
    if not 0 <= min_keep <= scores.numel():
        raise ValueError(f"min_keep={min_keep} must be between 0 and the {scores.numel()} units")
    k = min(pruned_count(scores.numel(), fraction), scores.numel() - min_keep)
    mask = torch.ones_like(scores, dtype=torch.bool)
    mask[_lowest(scores, k)] = False
    return mask


def structured_mask_reference(scores: Tensor, fraction: float, *, min_keep: int = 1) -> Tensor:
    """Plain reference for :func:`structured_mask`."""
    values = scores.tolist()
    k = min(pruned_count(len(values), fraction), len(values) - min_keep)
    pruned = {i for _, i in sorted((v, i) for i, v in enumerate(values))[:k]}
    return torch.tensor([i not in pruned for i in range(len(values))], dtype=torch.bool)
