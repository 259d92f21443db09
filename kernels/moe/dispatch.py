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
from itertools import accumulate
from dataclasses import dataclass

import torch
from torch import Tensor

from agentos.kernels.moe.experts import _ACTIVATIONS, Experts, ffn
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


def grouped_ffn(x: Tensor, counts: Sequence[int] | Tensor, experts: Experts) -> Tensor:
    """Run expert ``e`` on rows ``sum(counts[:e]) : sum(counts[:e+1])`` of ``x: [A, D]``.

    Uses one grouped matrix product per weight (``torch._grouped_mm``: a single kernel for all
    experts, no host sync when ``counts`` is a tensor) on GPUs where this torch build has it for
    the dtype (see :data:`GROUPED_MM_ON_CPU`), else a loop over the experts. Both paths give
    each weight one gradient tensor (never E full-size zero-filled ones).

    The result always stays connected to ``x`` and to the expert weights in the autograd graph,
    even when there are no rows, so that collectives in a backward pass run on every rank.

    Args:
        x: ``[A, D]`` rows, expert-major.
        counts: ``[E]`` rows per expert, as ints or an int tensor on ``x``'s device.
        experts: the bank.

    Raises:
        ValueError: ``counts`` does not have one entry per expert or does not sum to ``A``
            (not checked for a tensor on the grouped-matmul path, which would sync).
    """
    if len(counts) != experts.num_experts:
        raise ValueError(
            f"counts has {len(counts)} entries, one per expert needed ({experts.num_experts})"
        )
    if x.shape[0] and _grouped_mm_ok(x, experts):
        return _grouped_ffn_gmm(x, counts, experts)
    sizes = counts.tolist() if isinstance(counts, Tensor) else [int(n) for n in counts]
    if sum(sizes) != x.shape[0]:
        raise ValueError(f"counts {sizes} must sum to the {x.shape[0]} rows of x")
    if not x.shape[0]:  # no rows: an empty result that still depends on x and the weights
        anchor = sum(p.sum() for p in experts.parameters()) * 0.0
        return x * 0.0 + anchor
    # unbind, not w[e]: its backward stacks E gradients into one tensor, where E separate
    # selects would each allocate and zero-fill a gradient the size of the whole bank.
    w_in, w_out = experts.w_in.unbind(0), experts.w_out.unbind(0)
    w_gate = experts.w_gate.unbind(0) if experts.w_gate is not None else None
    pieces: list[Tensor] = []
    start = 0
    for e, n in enumerate(sizes):
        if n:
            g = w_gate[e] if w_gate is not None else None
            pieces.append(ffn(x[start : start + n], w_in[e], w_out[e], g, experts.activation))
        start += n
    return torch.cat(pieces, dim=0)  # [A, D]


GROUPED_MM_ON_CPU = False
"""Use the grouped matmul on the CPU too. Off by default: there it is slower than the expert
loop at small widths (2.5x at D=64, H=256, 8 experts) and about even at D=256, H=512."""


def _grouped_mm_ok(x: Tensor, experts: Experts) -> bool:
    """Whether ``torch._grouped_mm`` runs this bank here: bfloat16 on CUDA from Hopper on, and
    (with ``GROUPED_MM_ON_CPU``) float32/bfloat16 on the CPU, for widths whose rows are 16-byte
    aligned (what its kernels take)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    dtype = _compute_dtype(x)
    row_bytes = torch.finfo(dtype).bits // 8
    if (experts.d_model * row_bytes) % 16 or (experts.d_hidden * row_bytes) % 16:
        return False
    if x.device.type == "cpu":
        return GROUPED_MM_ON_CPU and dtype in (torch.float32, torch.bfloat16)
    if x.device.type == "cuda":
        return dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device)[0] >= 9
    return False


def _compute_dtype(x: Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _grouped_ffn_gmm(x: Tensor, counts: Sequence[int] | Tensor, experts: Experts) -> Tensor:
    if isinstance(counts, Tensor):  # stays on the device: not checked against A (no sync)
        offs = counts.to(device=x.device).cumsum(0).to(torch.int32)  # [E] row ends
    else:
        ends = list(accumulate(int(n) for n in counts))
        if ends[-1] != x.shape[0]:
            raise ValueError(f"counts {list(counts)} must sum to the {x.shape[0]} rows of x")
        offs = torch.tensor(ends, dtype=torch.int32, device=x.device)
    dtype = _compute_dtype(x)
    act = _ACTIVATIONS[experts.activation]
    with torch.autocast(x.device.type, enabled=False):  # the weights are cast once, here
        xc = x.to(dtype)
        h = _gmm(xc, experts.w_in.to(dtype), offs)  # [A, H]
        if experts.w_gate is not None:
            h = act(_gmm(xc, experts.w_gate.to(dtype), offs)) * h
        else:
            h = act(h)
        return _gmm(h, experts.w_out.to(dtype), offs)  # [A, D]


def _gmm(x: Tensor, w: Tensor, offs: Tensor) -> Tensor:
    # The grouped matmul's backward refuses a broadcast (stride-0) output gradient, which is
    # what ``y.sum().backward()`` sends: make the gradient dense first.
    return _DenseGrad.apply(torch._grouped_mm(x, w, offs=offs))


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.contiguous()


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
    y = grouped_ffn(p.x, p.counts, experts)  # [A, D]
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
