"""The local process-group launcher: results come back intact, failures fail fast."""

from __future__ import annotations

import os

import pytest
import torch

from agentos.kernels.launch import RankFailed, spawn

pytestmark = pytest.mark.distributed


def _returns_tensors(rank: int, world: int) -> dict[str, object]:
    import torch.distributed as dist

    x = torch.full((3,), float(rank), dtype=torch.bfloat16)
    dist.all_reduce(x)
    return {"rank": rank, "sum": x, "ids": [torch.arange(rank + 1)]}


def _dies(rank: int, world: int) -> None:
    if rank == 1:
        os._exit(3)
    import torch.distributed as dist

    dist.barrier()


def test_results_arrive_after_every_rank_exited() -> None:
    out = spawn(_returns_tensors, 4, timeout_s=60)
    assert [o["rank"] for o in out] == [0, 1, 2, 3]
    for o in out:
        assert o["sum"].dtype == torch.bfloat16 and o["sum"].tolist() == [6.0, 6.0, 6.0]
    assert out[3]["ids"][0].tolist() == [0, 1, 2, 3]


def test_a_rank_that_dies_fails_fast() -> None:
    # Either the death is seen first, or rank 0 sees its peer vanish: both end in seconds.
    with pytest.raises(RankFailed, match=r"rank 1 exited with code 3|rank 0 failed"):
        spawn(_dies, 2, timeout_s=60)
