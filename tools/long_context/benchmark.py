"""One attention-kernel measurement: time and peak memory per rank, in fresh processes.

Used by the ``run_attention_benchmark`` tool and by ``benchmarks/long_context.py`` (which prints
the table and writes JSON). Methods: ``"vanilla"`` (:func:`agentos.kernels.attention
.vanilla_attention`, materialised scores), ``"blockwise"``, ``"sdpa"`` (torch's
``scaled_dot_product_attention``) and ``"ring"`` (:func:`agentos.kernels.ring.ring_attention` on
``ranks`` processes, zigzag layout). Shapes: B=1, H=8, D=64, float32, self-attention.

Every measurement runs in fresh processes (:func:`agentos.kernels.launch.spawn`; one process for
the single-process methods, P for ring), so memory numbers do not leak between runs.

Memory method: the Linux peak resident set size of each process (``getrusage(RUSAGE_SELF)
.ru_maxrss``, a lifetime high-water mark) minus the process's RSS just before the timed calls
(after torch is imported, the inputs exist and a small warm-up call ran). It counts everything the
call allocated (intermediates, output, communication buffers), as the kernel sees it; it is per
rank, and the max over ranks is reported. ``tracemalloc`` would not see torch's allocations.

torch is imported inside the rank function only.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = [
    "BATCH",
    "HEADS",
    "HEAD_DIM",
    "METHODS",
    "VANILLA_BUFFERS",
    "measure",
    "peak_rss_bytes",
    "rss_bytes",
    "vanilla_estimate_gib",
]

METHODS = ("vanilla", "blockwise", "sdpa", "ring")
BATCH, HEADS, HEAD_DIM = 1, 8, 64
VANILLA_BUFFERS = 4  # scores, masked scores, softmax output, zeroed-empty-rows copy
WARMUP_ROWS = 256
_GIB = 1024**3


def rss_bytes() -> int:
    """This process's resident set size now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """This process's lifetime peak resident set size (``ru_maxrss``, KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def vanilla_estimate_gib(seq_len: int, backward: bool = False) -> float:
    """Estimated peak of vanilla attention: ``VANILLA_BUFFERS`` score-sized float32 buffers (two more
    for backward); callers skip vanilla above their memory cap instead of running out of memory."""
    scores = BATCH * HEADS * seq_len * seq_len * 4
    return scores * (VANILLA_BUFFERS + (2 if backward else 0)) / _GIB


def _run_one(
    rank: int,
    world_size: int,
    method: str,
    seq_len: int,
    causal: bool,
    backward: bool,
    block_size: int,
    repeats: int,
) -> dict[str, Any]:
    """Rank function: build this rank's inputs, time ``repeats`` calls (min), report memory."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from agentos.kernels.attention import blockwise_attention, vanilla_attention
    from agentos.kernels.ring import padded_length, ring_attention

    local = padded_length(seq_len, world_size, "zigzag") // world_size if method == "ring" else seq_len
    g = torch.Generator().manual_seed(rank)
    q, k, v = (
        torch.randn(BATCH, HEADS, local, HEAD_DIM, generator=g).requires_grad_(backward) for _ in range(3)
    )

    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq_len: int) -> torch.Tensor:
        if method == "vanilla":
            return vanilla_attention(q, k, v, causal=causal)
        if method == "blockwise":
            return blockwise_attention(q, k, v, causal=causal, block_size=block_size)[0]
        if method == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return ring_attention(q, k, v, causal=causal, layout="zigzag", seq_len=seq_len)

    # Warm-up on a small input: first-call costs (kernel dispatch, gloo connections) stay out.
    # ``local`` is even for the ring (zigzag pads to 2P chunks), so ``rows * P`` is a valid length.
    rows = min(WARMUP_ROWS, local)
    small = [x.detach()[:, :, :rows].clone().requires_grad_(backward) for x in (q, k, v)]
    call(*small, seq_len=rows * world_size)
    if world_size > 1:
        dist.barrier()
    base = rss_bytes()
    times = []
    for _ in range(repeats):
        if world_size > 1:
            dist.barrier()
        start = time.perf_counter()
        out = call(q, k, v, seq_len)
        if backward:
            out.backward(torch.ones_like(out))
        times.append(time.perf_counter() - start)
        del out
    peak = peak_rss_bytes()
    return {"time_s": min(times), "peak_extra_bytes": max(0, peak - base), "threads": torch.get_num_threads()}


def measure(
    method: str,
    seq_len: int,
    ranks: int = 1,
    causal: bool = True,
    backward: bool = False,
    block_size: int = 1024,
    repeats: int = 2,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """One measurement in fresh processes: slowest rank's best time, largest rank's extra memory.

    Args:
        method: one of :data:`METHODS`.
        seq_len: sequence length T.
        ranks: processes for ``"ring"``; the other methods run in one.
        causal: causal self-attention, else full.
        backward: time forward plus backward.
        block_size: queries/keys per block of ``"blockwise"``.
        repeats: timed calls; the minimum is kept.
        timeout_s: give up on the processes after this long.

    Returns:
        ``{"method", "ranks", "seq_len", "status": "ok", "time_s", "peak_mem_gib_per_rank",
        "threads_per_rank"}``; ``method`` reads ``"ring xP"`` for the ring.

    Raises:
        ValueError: an unknown method.
        agentos.kernels.launch.RankFailed: a process failed or timed out.
    """
    from agentos.kernels.launch import spawn

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    world = ranks if method == "ring" else 1
    per_rank = spawn(_run_one, world, method, seq_len, causal, backward, block_size, repeats, timeout_s=timeout_s)
    return {
        "method": f"ring x{world}" if method == "ring" else method,
        "ranks": world,
        "seq_len": seq_len,
        "status": "ok",
        "time_s": max(r["time_s"] for r in per_rank),
        "peak_mem_gib_per_rank": max(r["peak_extra_bytes"] for r in per_rank) / _GIB,
        "threads_per_rank": per_rank[0]["threads"],
    }
