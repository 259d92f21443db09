"""Expert parallelism on real gloo process groups equals the single-process layer.

One spawn per world size runs every case (spawning is the slow part). Each rank holds E/P experts
and a replica of the router; the reference runs the full layer on each rank's shard of tokens in
one process and sums the losses, so capacity dropping (computed per rank) matches too.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agentos.kernels.launch import spawn
from agentos.kernels.moe import MoELayer, RouterConfig

pytestmark = pytest.mark.distributed

F64 = torch.float64
D, H, E = 8, 12, 8

# name -> (router config kwargs, tokens per rank (cycled), gated, skew all tokens to expert 0)
CASES: dict[str, tuple[dict[str, Any], list[int], bool, bool]] = {
    "top1_capacity": ({"top_k": 1, "capacity_factor": 1.0}, [13, 9], False, False),
    "top2_nodrop_gated": ({"top_k": 2, "capacity_factor": None}, [11, 16], True, False),
    "expert_choice": ({"policy": "expert_choice", "capacity_factor": 1.0}, [12, 12], False, False),
    "collapsed_idle_experts": ({"top_k": 1, "capacity_factor": None}, [10, 7], False, True),
    "rank_without_tokens": ({"top_k": 2, "capacity_factor": 1.25}, [9, 0, 5, 6], False, False),
}


def _build(name: str, world: int) -> tuple[MoELayer, list[torch.Tensor], list[torch.Tensor]]:
    """The same full layer, inputs and output gradients on every process."""
    kwargs, sizes, gated, skew = CASES[name]
    torch.manual_seed(list(CASES).index(name) + 100 * world)
    layer = MoELayer(D, H, RouterConfig(E, **kwargs), gated=gated, dtype=F64)
    n = [sizes[r % len(sizes)] for r in range(world)]
    xs = [torch.randn(k, D, dtype=F64) for k in n]
    gs = [torch.randn(k, D, dtype=F64) for k in n]
    if skew:
        with torch.no_grad():
            layer.router.gate.weight.zero_()
            layer.router.gate.weight[0, 0] = 50.0
        for x in xs:
            x[:, 0] = x[:, 0].abs() + 1.0
    return layer, xs, gs


def _rank_main(rank: int, world: int) -> dict[str, Any]:
    import torch.distributed as dist

    from agentos.kernels.moe import ExpertParallelMoE, all_reduce_grads, all_to_all

    out: dict[str, Any] = {}
    for name in CASES:
        layer, xs, gs = _build(name, world)
        ep = ExpertParallelMoE.from_layer(layer)
        x = xs[rank].clone().requires_grad_()
        y, routing = ep(x)
        ((y * gs[rank]).sum() + routing.loss).backward()
        all_reduce_grads(ep.router.parameters())
        out[name] = {
            "y": y.detach(),
            "x_grad": x.grad,
            "router": ep.router.gate.weight.grad,
            "experts": {n: p.grad for n, p in ep.experts.named_parameters()},
            "comm": dict(ep.last_comm),
        }

    # The bare all-to-all: uneven splits (rank r sends r+p+1 rows to rank p), reverse backward.
    send = [rank + p + 1 for p in range(world)]
    recv = [p + rank + 1 for p in range(world)]
    x = (torch.arange(sum(send), dtype=F64) + 100 * rank).reshape(-1, 1).requires_grad_()
    y = all_to_all(x, recv, send)
    (y * (y + 1)).sum().backward()  # d/dy = 2y + 1, which must land on the row that was sent
    out["a2a"] = {"y": y.detach(), "x": x.detach(), "x_grad": x.grad}
    dist.barrier()
    # Plain numpy arrays: tensors sent through the result queue travel as shared-memory file
    # descriptors that vanish when the rank exits before the parent reads them.
    return _to_numpy(out)


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().numpy().copy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


def _t(a: Any) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(a)


def _reference(name: str, world: int) -> dict[str, Any]:
    layer, xs, gs = _build(name, world)
    ys, x_grads, loss = [], [], torch.zeros((), dtype=F64)
    for x, g in zip(xs, gs, strict=True):
        x = x.clone().requires_grad_()
        y, routing = layer(x)
        loss = loss + (y * g).sum() + routing.loss
        ys.append(y)
        x_grads.append(x)
    loss.backward()
    return {
        "y": [y.detach() for y in ys],
        "x_grad": [x.grad for x in x_grads],
        "router": layer.router.gate.weight.grad,
        "experts": {n: p.grad for n, p in layer.experts.named_parameters()},
    }


def _zero_if_none(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if t is None else t


@pytest.mark.parametrize("world", [2, 4])
def test_expert_parallel_equals_single_process(world: int) -> None:
    results = spawn(_rank_main, world, timeout_s=180)
    tol = {"rtol": 1e-5, "atol": 1e-5}
    for name in CASES:
        ref = _reference(name, world)
        el = E // world
        for rank, res in enumerate(results):
            got = {k: (_t(v) if k not in ("experts", "comm") else v) for k, v in res[name].items()}
            got["experts"] = {k: _t(v) for k, v in got["experts"].items()}
            torch.testing.assert_close(got["y"], ref["y"][rank], **tol, msg=f"{name} y r{rank}")
            torch.testing.assert_close(
                got["x_grad"], ref["x_grad"][rank], **tol, msg=f"{name} x.grad r{rank}"
            )
            torch.testing.assert_close(got["router"], ref["router"], **tol, msg=f"{name} router")
            for pname, want in ref["experts"].items():
                want_shard = want[rank * el : (rank + 1) * el]
                have = _zero_if_none(got["experts"][pname], want_shard)
                torch.testing.assert_close(have, want_shard, **tol, msg=f"{name} {pname} r{rank}")
            assert got["comm"]["bytes_sent"] >= 0
    # Collapsed routing really left experts idle: ranks > 0 received no rows.
    assert all(r["collapsed_idle_experts"]["comm"]["rows_received"] == 0 for r in results[1:])

    for rank, res in enumerate(results):
        a2a = {k: _t(v) for k, v in res["a2a"].items()}
        # Row i from rank p: p sent rows [sum_{q<rank} (p+q+1) ...] of its arange + 100 p.
        expect = []
        for p in range(world):
            start = sum(p + q + 1 for q in range(rank))
            expect.append(torch.arange(start, start + p + rank + 1, dtype=F64) + 100 * p)
        torch.testing.assert_close(a2a["y"].reshape(-1), torch.cat(expect))
        torch.testing.assert_close(a2a["x_grad"], 2 * a2a["x"] + 1)
