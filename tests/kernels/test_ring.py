"""Ring attention on real gloo process groups against a float64 single-process reference.

Spawning ranks costs seconds, so each spawn runs many configurations: the rank function loops
over a list of cases and returns every result; the parent unshards and compares.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch

from agentos.kernels.attention import vanilla_attention
from agentos.kernels.launch import RankFailed, spawn
from agentos.kernels.ring import (
    _step_tasks,
    padded_length,
    ring_attention,
    ring_chunks,
    ring_positions,
    shard_sequence,
    unshard_sequence,
)

TOL = {  # (forward, gradient) absolute; bf16 gradients relative to max(1, |largest entry|)
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-6, 1e-5),
    torch.bfloat16: (2e-2, 2e-2),
}

Case = tuple[int, bool, str, torch.dtype]  # (T, causal, layout, dtype)


def _full_inputs(seq_len: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """q, k, v, dout ``[B=2, H=2, T, D=8]``, rounded to ``dtype``, seeded by the case."""
    g = torch.Generator().manual_seed(1000 + seq_len)
    return [torch.randn(2, 2, seq_len, 8, generator=g, dtype=torch.float64).to(dtype) for _ in range(4)]


def _ring_cases(rank: int, world_size: int, cases: list[Case]) -> list[list[np.ndarray]]:
    """Rank function: run every case forward and backward; return local out, dq, dk, dv."""
    results = []
    for seq_len, causal, layout, dtype in cases:
        q, k, v, dout = (shard_sequence(x, rank, world_size, layout) for x in _full_inputs(seq_len, dtype))
        q, k, v = (x.requires_grad_() for x in (q, k, v))
        out = ring_attention(q, k, v, causal=causal, layout=layout, seq_len=seq_len, timeout_s=60)
        out.backward(dout)
        assert q.grad is not None and k.grad is not None and v.grad is not None
        results.append([x.detach().double().numpy() for x in (out, q.grad, k.grad, v.grad)])
    return results


def _compare(world_size: int, cases: list[Case], results: list[Any]) -> None:
    for i, (seq_len, causal, layout, dtype) in enumerate(cases):
        q, k, v, dout = (x.double() for x in _full_inputs(seq_len, dtype))
        q, k, v = (x.requires_grad_() for x in (q, k, v))
        ref = vanilla_attention(q, k, v, causal=causal)
        ref.backward(dout)
        fwd_tol, bwd_tol = TOL[dtype]
        expected_all = (ref, q.grad, k.grad, v.grad)
        for j, (name, expected) in enumerate(zip(("out", "dq", "dk", "dv"), expected_all, strict=True)):
            assert expected is not None
            got = unshard_sequence([torch.from_numpy(results[r][i][j]) for r in range(world_size)], seq_len, layout)
            err = (got - expected.detach()).abs().max().item()
            tol = fwd_tol if j == 0 else bwd_tol
            if j > 0 and dtype == torch.bfloat16:
                err /= max(1.0, expected.abs().max().item())
            assert err <= tol, f"P={world_size} T={seq_len} causal={causal} {layout} {dtype}: {name} off by {err:.2e}"


def _cases(world_size: int) -> list[Case]:
    lengths = [8 * world_size, 8 * world_size + 3, 5]  # even, uneven (padded), shorter than 2P
    cases: list[Case] = [
        (t, causal, layout, dtype)
        for t in lengths
        for causal in (False, True)
        for layout in ("zigzag", "contiguous")
        for dtype in (torch.float64, torch.float32)
    ]
    cases += [(8 * world_size + 1, True, "zigzag", torch.bfloat16), (16, False, "contiguous", torch.bfloat16)]
    return cases


@pytest.mark.distributed
@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_ring_matches_dense_reference(world_size: int) -> None:
    cases = _cases(world_size)
    results = spawn(_ring_cases, world_size, cases, timeout_s=180)
    _compare(world_size, cases, results)


# ---------------------------------------------------------------------------------------------
# Failure: a dead or absent rank must not hang the others
# ---------------------------------------------------------------------------------------------


def _one_rank_raises(rank: int, world_size: int) -> None:
    if rank == 1:
        raise RuntimeError("rank 1 blew up on purpose")
    x = torch.randn(1, 1, 4, 8)
    ring_attention(x, x, x, causal=True)  # waits for rank 1, which never comes


def _one_rank_absent(rank: int, world_size: int) -> dict[str, Any]:
    if rank == 1:
        time.sleep(4)  # alive but never joins the ring
        return {"rank": 1}
    x = torch.randn(1, 1, 4, 8)
    start = time.monotonic()
    try:
        ring_attention(x, x, x, timeout_s=1.5)
    except RuntimeError as e:
        return {"error": str(e), "elapsed": time.monotonic() - start}
    return {"error": None, "elapsed": time.monotonic() - start}


def _mismatched_shapes(rank: int, world_size: int) -> str:
    x = torch.randn(1, 2, 4 + 2 * rank, 8)  # each rank a different local length
    try:
        ring_attention(x, x, x, timeout_s=30)
    except ValueError as e:
        return str(e)
    return "no error"


@pytest.mark.distributed
def test_rank_that_raises_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(RankFailed, match="blew up on purpose"):
        spawn(_one_rank_raises, 2, timeout_s=60)
    assert time.monotonic() - start < 30


@pytest.mark.distributed
def test_absent_peer_times_out_with_clear_error() -> None:
    results = spawn(_one_rank_absent, 2, timeout_s=60)
    r0 = results[0]
    assert r0["error"] is not None and "ring_attention: rank 0" in r0["error"]
    assert r0["elapsed"] < 3.5


@pytest.mark.distributed
def test_mismatched_shapes_across_ranks_raise_on_every_rank() -> None:
    messages = spawn(_mismatched_shapes, 2, timeout_s=60)
    for m in messages:
        assert "identical [B, H, L, D]" in m and "shard_sequence" in m


# ---------------------------------------------------------------------------------------------
# Pure helpers (no processes)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["zigzag", "contiguous"])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("seq_len", [1, 7, 16, 33])
def test_shard_unshard_round_trip_and_positions(layout: str, world_size: int, seq_len: int) -> None:
    x = torch.arange(seq_len, dtype=torch.float64).reshape(1, 1, seq_len, 1).expand(2, 3, seq_len, 4)
    shards = [shard_sequence(x, r, world_size, layout) for r in range(world_size)]
    local = padded_length(seq_len, world_size, layout) // world_size
    assert all(s.shape == (2, 3, local, 4) for s in shards)
    assert torch.equal(unshard_sequence(shards, seq_len, layout), x)
    for r, s in enumerate(shards):
        pos = ring_positions(r, world_size, seq_len, layout)
        real = pos < seq_len
        assert torch.equal(s[0, 0, real, 0], pos[real].double())  # values are their positions
        assert (s[0, 0, ~real] == 0).all()  # padding is zeros


def test_zigzag_balances_causal_work() -> None:
    world_size, seq_len = 4, 64
    local = seq_len // world_size

    def work(layout: str, rank: int, src: int) -> int:
        tasks = _step_tasks(rank, src, world_size, seq_len, local, layout, causal=True)
        total = 0
        for t in tasks:
            q, k = t.q_rows, t.k_rows
            assert isinstance(q, slice) and isinstance(k, slice)
            area = (q.stop - q.start) * (k.stop - k.start)
            total += (area + (q.stop - q.start)) // 2 if t.causal else area
        return total

    zig = [sum(work("zigzag", r, s) for s in range(world_size)) for r in range(world_size)]
    cont = [sum(work("contiguous", r, s) for s in range(world_size)) for r in range(world_size)]
    assert len(set(zig)) == 1  # every rank attends the same number of (query, key) pairs
    assert cont[-1] > 3 * cont[0]  # contiguous: the last rank does most of the work
    assert sum(zig) == sum(cont) == seq_len * (seq_len + 1) // 2 * 1
    assert ring_chunks(1, 4, "zigzag") == (1, 6)


def test_ring_errors_without_process_group() -> None:
    x = torch.randn(1, 1, 4, 8)
    with pytest.raises(RuntimeError, match="init_process_group"):
        ring_attention(x, x, x)
    odd = torch.randn(1, 1, 5, 8)
    with pytest.raises(ValueError, match="even number of local rows"):
        ring_attention(odd, odd, odd, layout="zigzag")
    with pytest.raises(ValueError, match="layout"):
        ring_attention(x, x, x, layout="spiral")
    with pytest.raises(ValueError, match="same local rows"):
        ring_attention(x, x[:, :, :2], x[:, :, :2])
