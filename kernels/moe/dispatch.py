"""Moving tokens to experts and back: sort-based dispatch and its plain reference.

Sort-based dispatch (what MegaBlocks / Mixtral-style kernels do, in eager PyTorch):

1. *permute*: stable-sort the kept assignments by expert, gather the token rows so that each
   expert's tokens are one contiguous slice;
2. *grouped matmul*: one FFN call per expert on its slice (a loop over experts, never over tokens);
3. *unpermute and combine*: scale each row by its routing weight and scatter-add it back to its
   token.

:func:`moe_reference` is the obviously-correct version kept beside it for tests: every expert runs
on every token and is masked by its (mostly zero) combine weight.

Legend:
    N  tokens
    D  model width
    E  experts
    A  kept assignments (rows after permutation)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from agentos.kernels.moe.experts import Experts
from agentos.kernels.moe.routing import Routing

__all__ = [
    "Permuted",
    "grouped_ffn",
    "moe_dispatch",
    "moe_gather_loop",
    "moe_reference",
    "permute",
    "unpermute_combine",
]


@dataclass
class Permuted:
    """Token rows grouped by expert."""

    x: Tensor  # [A, D] rows, expert-major
    token_index: Tensor  # [A] which token each row came from
    order: Tensor  # [A] positions into the routing's assignment list
    counts: Tensor  # [E] rows per expert (int64)


def permute(x: Tensor, routing: Routing) -> Permuted:
    """Gather ``x: [N, D]`` into expert-contiguous rows following ``routing``."""
    order = torch.argsort(routing.expert_index, stable=True)  # [A]
    token_index = routing.token_index[order]  # [A]
    counts = torch.bincount(routing.expert_index, minlength=routing.num_experts)  # [E]
    return Permuted(x=x[token_index], token_index=token_index, order=order, counts=counts)


def grouped_ffn(x: Tensor, counts: Sequence[int], experts: Experts) -> Tensor:
    """Run expert ``e`` on rows ``sum(counts[:e]) : sum(counts[:e+1])`` of ``x: [A, D]``.

    The result always stays connected to ``x`` and to the expert weights in the autograd graph,
    even when there are no rows, so that collectives in a backward pass run on every rank.

    Raises:
        ValueError: ``counts`` does not have one entry per expert or does not sum to ``A``.
    """
    if len(counts) != experts.num_experts or sum(counts) != x.shape[0]:
        raise ValueError(
            f"counts {list(counts)} must have {experts.num_experts} entries summing to {x.shape[0]}"
        )
    pieces: list[Tensor] = []
    start = 0
    for e, n in enumerate(counts):
        if n:
            pieces.append(experts.expert(e, x[start : start + n]))  # [n, D]
        start += n
    if not pieces:  # no rows: an empty result that still depends on x and the weights
        anchor = sum(p.sum() for p in experts.parameters()) * 0.0
        return x * 0.0 + anchor
    return torch.cat(pieces, dim=0)  # [A, D]


def unpermute_combine(y: Tensor, permuted: Permuted, weight: Tensor, num_tokens: int) -> Tensor:
    """Scale rows ``y: [A, D]`` by their routing weight and sum them back per token.

    Args:
        y: expert outputs in the order of ``permuted``.
        permuted: from :func:`permute`.
        weight: ``[A]`` the routing weights, in routing (not permuted) order.
        num_tokens: N.

    Returns:
        ``[N, D]``; tokens with no kept assignment get zeros.
    """
    w = weight[permuted.order].to(y.dtype)  # [A]
    out = y.new_zeros(num_tokens, y.shape[-1])  # [N, D]
    return out.index_add(0, permuted.token_index, y * w[:, None])


def moe_dispatch(x: Tensor, routing: Routing, experts: Experts) -> Tensor:
    """Sort-based MoE forward: permute, grouped FFN, unpermute and weighted combine.

    Args:
        x: ``[N, D]`` tokens.
        routing: from a :class:`~agentos.kernels.moe.routing.Router` over the same tokens.
        experts: the expert bank (``num_experts`` must match the routing).

    Returns:
        ``[N, D]`` the weighted sum of each token's kept experts' outputs.

    Raises:
        ValueError: the routing's expert count or token count does not match.
    """
    _check(x, routing, experts)
    p = permute(x, routing)
    y = grouped_ffn(p.x, p.counts.tolist(), experts)  # [A, D]
    return unpermute_combine(y, p, routing.weight, routing.num_tokens)


def moe_reference(x: Tensor, routing: Routing, experts: Experts) -> Tensor:
    """Reference MoE forward: every expert on every token, masked by its combine weight.

    O(N * E) expert work: for tests and as the benchmark baseline only.
    """
    _check(x, routing, experts)
    N = x.shape[0]
    out = torch.zeros_like(x)  # [N, D]
    for e in range(experts.num_experts):
        mask = routing.expert_index == e  # [A]
        w = x.new_zeros(N).index_add(0, routing.token_index[mask], routing.weight[mask].to(x.dtype))
        out = out + w[:, None] * experts.expert(e, x)  # [N, D]
    return out


def moe_gather_loop(x: Tensor, routing: Routing, experts: Experts) -> Tensor:
    """The common Hugging Face style loop: per expert, find its tokens with a mask and run them.

    Same result as :func:`moe_dispatch`; kept as a second benchmark baseline.
    """
    _check(x, routing, experts)
    out = torch.zeros_like(x)  # [N, D]
    for e in range(experts.num_experts):
        mask = routing.expert_index == e  # [A]
        tok = routing.token_index[mask]  # [M]
        if tok.numel() == 0:
            continue
        y = experts.expert(e, x[tok]) * routing.weight[mask].to(x.dtype)[:, None]  # [M, D]
        out = out.index_add(0, tok, y)
    return out


def _check(x: Tensor, routing: Routing, experts: Experts) -> None:
    if routing.num_experts != experts.num_experts:
        raise ValueError(
            f"routing is over {routing.num_experts} experts but the bank has "
            f"{experts.num_experts}: build Router and Experts with the same num_experts"
        )
    if x.dim() != 2 or x.shape[0] != routing.num_tokens:
        raise ValueError(
            f"x must be [N={routing.num_tokens}, D], the tokens that were routed; got "
            f"{tuple(x.shape)}"
        )
