"""Expert parallelism: experts sharded across ranks, tokens exchanged with all-to-all.

Each of P ranks holds ``E / P`` consecutive experts and a replica of the router. A forward pass on
a rank's own tokens:

1. routes and permutes them locally (rows grouped by global expert, hence by owning rank);
2. exchanges per-expert row counts with an all-to-all (uneven splits must be known first);
3. sends the rows to the experts' owners (``all_to_all_single`` with uneven splits), runs the
   local experts, sends the results back the same way;
4. combines the results with the routing weights locally.

:class:`AllToAll` is an autograd Function whose backward is the reverse all-to-all, so expert
gradients on the owning rank include every rank's tokens and input gradients flow back to the
sender. Every rank issues the same collectives in the same order whether or not it sends or
receives any rows, so a rank whose experts get no tokens (or that has no tokens) never hangs.

The router is replicated: after ``backward`` its gradient on each rank covers only that rank's
tokens; sum (or average) it across ranks with :func:`all_reduce_grads`, as DDP would.

Legend:
    N  this rank's tokens
    D  model width
    E  experts in total;  El = E / P experts on each rank
    P  ranks
    A  kept assignments of this rank's tokens (rows sent)
    R  rows received from all ranks for the local experts
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from agentos.kernels.moe.dispatch import grouped_ffn, permute, unpermute_combine
from agentos.kernels.moe.experts import Experts
from agentos.kernels.moe.layer import MoELayer
from agentos.kernels.moe.routing import Router, Routing

__all__ = [
    "AllToAll",
    "ExpertParallelMoE",
    "all_reduce_grads",
    "all_to_all",
    "exchange_counts",
]


class AllToAll(torch.autograd.Function):
    """``all_to_all_single`` with uneven splits whose backward is the reverse exchange."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        output_splits: list[int],
        input_splits: list[int],
        group: dist.ProcessGroup | None,
    ) -> Tensor:
        ctx.output_splits = output_splits
        ctx.input_splits = input_splits
        ctx.group = group
        out = x.new_empty((sum(output_splits), *x.shape[1:]))
        dist.all_to_all_single(out, x.contiguous(), output_splits, input_splits, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        grad_in = grad.new_empty((sum(ctx.input_splits), *grad.shape[1:]))
        dist.all_to_all_single(
            grad_in, grad.contiguous(), ctx.input_splits, ctx.output_splits, group=ctx.group
        )
        return grad_in, None, None, None


def all_to_all(
    x: Tensor,
    output_splits: list[int],
    input_splits: list[int],
    group: dist.ProcessGroup | None = None,
) -> Tensor:
    """Differentiable uneven all-to-all of rows of ``x: [sum(input_splits), ...]``.

    Returns ``[sum(output_splits), ...]``: the rows every rank sent to this one, in rank order.
    """
    return AllToAll.apply(x, output_splits, input_splits, group)


def exchange_counts(send: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Tell every rank how many rows it will receive from each rank, per local expert.

    Args:
        send: ``[P, El]`` int64, rows this rank sends to rank p for p's local expert j.

    Returns:
        ``[P, El]`` int64, rows this rank receives from rank p for its own local expert j.
    """
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv.view(-1), send.contiguous().view(-1), group=group)
    return recv


def all_reduce_grads(
    params: Iterable[nn.Parameter], group: dist.ProcessGroup | None = None, average: bool = False
) -> None:
    """Sum (or average) the gradients of replicated parameters across ranks, in place.

    A missing gradient counts as zero, so every rank issues the same collectives.
    """
    world = dist.get_world_size(group)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, group=group)
        if average:
            p.grad /= world


class ExpertParallelMoE(nn.Module):
    """The experts of a :class:`MoELayer` sharded over the ranks of a process group.

    Build it on every rank from the same (same-seeded) full layer with :meth:`from_layer`, or from
    a router and this rank's shard of experts.
    """

    def __init__(
        self,
        router: Router,
        local_experts: Experts,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        """Raises:
        ValueError: the experts do not split evenly over the ranks, or the shard size is wrong.
        RuntimeError: ``torch.distributed`` is not initialised.
        """
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call init_process_group first")
        world = dist.get_world_size(group)
        E = router.config.num_experts
        if E % world != 0:
            raise ValueError(
                f"{E} experts cannot be split evenly over {world} ranks: use a number of experts "
                f"divisible by the world size"
            )
        if local_experts.num_experts != E // world:
            raise ValueError(
                f"each rank must hold E/P = {E // world} experts, got {local_experts.num_experts}"
            )
        self.router = router
        self.experts = local_experts
        self.group = group
        self.world_size = world
        self.rank = dist.get_rank(group)
        self.last_comm: dict[str, int] = {}
        self.last_routing: Routing | None = None

    @classmethod
    def from_layer(cls, layer: MoELayer, group: dist.ProcessGroup | None = None) -> ExpertParallelMoE:
        """Keep ``layer``'s router and this rank's slice of its experts (copies)."""
        world = dist.get_world_size(group)
        rank = dist.get_rank(group)
        E = layer.experts.num_experts
        if E % world != 0:
            raise ValueError(
                f"{E} experts cannot be split evenly over {world} ranks: use a number of experts "
                f"divisible by the world size"
            )
        el = E // world
        return cls(layer.router, layer.experts.shard(rank * el, (rank + 1) * el), group)

    def forward(self, x: Tensor) -> tuple[Tensor, Routing]:
        """Apply the sharded layer to this rank's tokens ``x: [..., D]``.

        Collective: every rank of the group must call it (with any number of tokens, even 0).

        Returns:
            ``(y [..., D], routing of this rank's tokens)``.
        """
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # [N, D]
        P, El = self.world_size, self.experts.num_experts
        routing = self.router(flat)
        p = permute(flat, routing)  # rows [A, D] grouped by global expert = by owning rank

        send = p.counts.view(P, El)  # [P, El]
        recv = exchange_counts(send, self.group)  # [P, El]
        input_splits = send.sum(1).tolist()  # rows to each rank
        output_splits = recv.sum(1).tolist()  # rows from each rank
        x_recv = all_to_all(p.x, output_splits, input_splits, self.group)  # [R, D]

        # Received rows are grouped by source rank, then local expert: regroup by local expert.
        local_e = torch.arange(El, device=x.device).repeat(P)  # [P*El]
        row_expert = torch.repeat_interleave(local_e, recv.reshape(-1))  # [R]
        order = torch.argsort(row_expert, stable=True)  # [R]
        y_grouped = grouped_ffn(x_recv[order], recv.sum(0).tolist(), self.experts)  # [R, D]
        y_recv = torch.empty_like(y_grouped).index_copy(0, order, y_grouped)  # [R, D] source order

        y_rows = all_to_all(y_recv, input_splits, output_splits, self.group)  # [A, D]
        y = unpermute_combine(y_rows, p, routing.weight, routing.num_tokens)  # [N, D]

        row_bytes = shape[-1] * x.element_size()
        sent, received = sum(input_splits), sum(output_splits)
        self.last_comm = {
            "rows_sent": sent,
            "rows_received": received,
            "bytes_sent": 2 * sent * row_bytes,  # rows out, results back
            "bytes_off_rank": 2 * (sent - input_splits[self.rank]) * row_bytes,
        }
        self.last_routing = routing
        return y.reshape(shape), routing
