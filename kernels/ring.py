"""Ring attention: exact attention over a sequence split across the ranks of a process group.

Each of the P ranks holds a slice of the sequence (queries, keys and values of its own positions).
Key/value blocks travel around the ring (rank r sends to r+1, receives from r-1) with
``torch.distributed.batch_isend_irecv`` while the rank computes attention of its queries against
the block it already holds; partials merge by log-sum-exp (``attention.merge_partials``). After
P steps every query has seen every key. The backward pass sends the blocks around again together
with their dk/dv accumulators, so each rank's key gradients come home after one full turn.

Layouts (how the padded sequence of length ``T' = padded_length(T, P, layout)`` is cut):

- ``"contiguous"``: rank r holds chunk r of P equal chunks. Causal attention is unbalanced
  (the last rank does P times the work of the first).
- ``"zigzag"``: the sequence is cut into 2P chunks; rank r holds chunks r and 2P-1-r, so every
  rank does the same causal work at every step.

Uneven T is padded at the end to ``T'``; padded keys are never attended and padded queries' rows
are garbage to be dropped (``unshard_sequence`` drops them). Use :func:`shard_sequence` /
:func:`unshard_sequence` to go between the full sequence and the local slices, and
:func:`ring_positions` for the global positions of a rank's rows (for RoPE).

Works unchanged on gloo (CPU) and NCCL (CUDA): only point-to-point ops and one small all_gather
(the shape check) are used.

Legend of dimension letters: B batch, H heads, L local rows (T'/P), D head dim, T sequence length.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from agentos.kernels.attention._checks import _acc_dtype, _check_qkv, _scale
from agentos.kernels.attention._tasks import _run_backward, _run_forward, _Task

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "LAYOUTS",
    "padded_length",
    "ring_attention",
    "ring_chunks",
    "ring_positions",
    "shard_sequence",
    "unshard_sequence",
]

LAYOUTS = ("zigzag", "contiguous")

_TAG_KV = 11
_TAG_DKV = 12


# --------------------------------------------------------------------------------------------
# Layout helpers (pure)
# --------------------------------------------------------------------------------------------


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _n_chunks(world_size: int, layout: str) -> int:
    _check_layout(layout)
    return 2 * world_size if layout == "zigzag" else world_size


def padded_length(seq_len: int, world_size: int, layout: str = "zigzag") -> int:
    """``seq_len`` rounded up to a multiple of the number of chunks (2P zigzag, P contiguous)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    n = _n_chunks(world_size, layout)
    return -(-seq_len // n) * n


def ring_chunks(rank: int, world_size: int, layout: str = "zigzag") -> tuple[int, ...]:
    """Global chunk ids a rank holds, in local order: ``(r, 2P-1-r)`` zigzag, ``(r,)`` contiguous."""
    _check_layout(layout)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return (rank, 2 * world_size - 1 - rank) if layout == "zigzag" else (rank,)


def ring_positions(
    rank: int,
    world_size: int,
    seq_len: int,
    layout: str = "zigzag",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Global positions ``[L]`` of a rank's local rows, for RoPE and masks.

    Padded rows get positions ``>= seq_len`` (they continue the sequence), so rotary embeddings
    stay finite; their outputs are dropped by :func:`unshard_sequence`.
    """
    chunk = padded_length(seq_len, world_size, layout) // _n_chunks(world_size, layout)
    return torch.cat(
        [torch.arange(c * chunk, (c + 1) * chunk, device=device) for c in ring_chunks(rank, world_size, layout)]
    )


def shard_sequence(
    x: torch.Tensor, rank: int, world_size: int, layout: str = "zigzag", dim: int = 2
) -> torch.Tensor:
    """A rank's slice of a full sequence, zero-padded at the end to :func:`padded_length`.

    Args:
        x: full tensor, sequence along ``dim`` (``[B, H, T, D]`` with the default ``dim=2``).

    Returns:
        The local rows ``[B, H, L, D]`` (contiguous), ``L = padded_length(T, P, layout) / P``.
    """
    seq_len = x.shape[dim]
    padded = padded_length(seq_len, world_size, layout)
    if padded > seq_len:
        pad_shape = list(x.shape)
        pad_shape[dim] = padded - seq_len
        x = torch.cat([x, x.new_zeros(pad_shape)], dim=dim)
    chunk = padded // _n_chunks(world_size, layout)
    parts = [x.narrow(dim, c * chunk, chunk) for c in ring_chunks(rank, world_size, layout)]
    return torch.cat(parts, dim=dim).contiguous()


def unshard_sequence(
    shards: Sequence[torch.Tensor], seq_len: int, layout: str = "zigzag", dim: int = 2
) -> torch.Tensor:
    """Inverse of :func:`shard_sequence`: put every rank's rows back in order, drop padding.

    Args:
        shards: one local tensor per rank, indexed by rank.
        seq_len: the true (unpadded) length T.

    Raises:
        ValueError: shards of different lengths or a length that does not match ``seq_len``.
    """
    world_size = len(shards)
    n = _n_chunks(world_size, layout)
    local = shards[0].shape[dim]
    if any(s.shape[dim] != local for s in shards) or local * world_size != padded_length(seq_len, world_size, layout):
        raise ValueError(
            f"shards have lengths {[s.shape[dim] for s in shards]} along dim {dim}, expected "
            f"{padded_length(seq_len, world_size, layout) // world_size} each for seq_len={seq_len}, "
            f"{world_size} ranks, layout={layout!r}"
        )
    chunk = local * world_size // n
    pieces: list[torch.Tensor | None] = [None] * n
    for rank, s in enumerate(shards):
        for i, c in enumerate(ring_chunks(rank, world_size, layout)):
            pieces[c] = s.narrow(dim, i * chunk, chunk)
    full = torch.cat([p for p in pieces if p is not None], dim=dim)
    return full.narrow(dim, 0, seq_len)


# --------------------------------------------------------------------------------------------
# Which blocks a step computes (pure)
# --------------------------------------------------------------------------------------------


def _step_tasks(
    q_rank: int, kv_rank: int, world_size: int, seq_len: int, local: int, layout: str, causal: bool
) -> list[_Task]:
    """Tasks for rank ``q_rank``'s queries against the key/value block that ``kv_rank`` owns.

    Chunks of keys that are all padding are skipped, partly padded ones truncated; causally a
    key chunk before the query chunk is attended in full, the same chunk with a causal diagonal,
    a later one not at all. Query chunks that all see one key chunk in full share one task.
    """
    q_chunks = ring_chunks(q_rank, world_size, layout)
    k_chunks = ring_chunks(kv_rank, world_size, layout)
    c = local // len(q_chunks)
    all_heads = slice(None)
    tasks: list[_Task] = []
    for b, kc in enumerate(k_chunks):
        valid = max(0, min(c, seq_len - kc * c))
        if valid == 0:
            continue
        k_rows = slice(b * c, b * c + valid)
        rel = ["full" if not causal or kc < qc else "diag" if kc == qc else "skip" for qc in q_chunks]
        if all(r == "full" for r in rel):
            tasks.append(_Task(all_heads, slice(0, local), k_rows))
            continue
        for a, r in enumerate(rel):
            if r != "skip":
                tasks.append(_Task(all_heads, slice(a * c, (a + 1) * c), k_rows, causal=r == "diag"))
    return tasks


# --------------------------------------------------------------------------------------------
# Communication
# --------------------------------------------------------------------------------------------


class _Ring:
    """Neighbours of this rank in ``group`` and waits with a deadline."""

    def __init__(self, group: dist.ProcessGroup | None, timeout_s: float | None) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        self.timeout = None if timeout_s is None else timedelta(seconds=timeout_s)
        self.next = self._global((self.rank + 1) % self.size)
        self.prev = self._global((self.rank - 1) % self.size)

    def _global(self, group_rank: int) -> int:
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    def shift(self, send: torch.Tensor, tag: int) -> tuple[torch.Tensor, list[Any]]:
        """Start sending ``send`` to the next rank and receiving the same shape from the previous."""
        recv = torch.empty_like(send)
        ops = [
            dist.P2POp(dist.isend, send, self.next, self.group, tag),
            dist.P2POp(dist.irecv, recv, self.prev, self.group, tag),
        ]
        return recv, dist.batch_isend_irecv(ops)

    def wait(self, works: list[Any], what: str) -> None:
        try:
            for w in works:
                if self.timeout is None:
                    w.wait()
                else:
                    w.wait(self.timeout)
        except RuntimeError as e:
            raise RuntimeError(
                f"ring_attention: rank {self.rank} of {self.size} failed waiting for {what} "
                f"(neighbours: prev global rank {self.prev}, next {self.next}); a peer died, "
                f"left the ring or is slower than the timeout ({self.timeout}): {e}"
            ) from e


def _check_same_everywhere(ring: _Ring, q: torch.Tensor, seq_len: int, layout: str) -> None:
    """All ranks must agree on shapes, dtype, seq_len and layout; raise ValueError otherwise."""
    meta = torch.tensor(
        [*q.shape, _dtype_code(q.dtype), seq_len, LAYOUTS.index(layout)], dtype=torch.int64, device=q.device
    )
    gathered = [torch.empty_like(meta) for _ in range(ring.size)]
    work = dist.all_gather(gathered, meta, group=ring.group, async_op=True)
    ring.wait([work], "the shape check (all_gather)")
    rows = [g.tolist() for g in gathered]
    if any(r != rows[0] for r in rows):
        raise ValueError(
            "ring_attention needs identical [B, H, L, D], dtype, seq_len and layout on every rank; "
            f"got per rank [B, H, L, D, dtype, seq_len, layout] = {rows}. Shard one full sequence "
            "with shard_sequence(x, rank, world_size, layout)"
        )


def _dtype_code(dtype: torch.dtype) -> int:
    return [torch.float32, torch.bfloat16, torch.float64, torch.float16].index(dtype)


# --------------------------------------------------------------------------------------------
# The autograd function
# --------------------------------------------------------------------------------------------


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        ring: _Ring,
        causal: bool,
        layout: str,
        seq_len: int,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, local, d = q.shape
        acc = _acc_dtype(q.dtype)
        out_acc = torch.zeros(b, h, local, d, dtype=acc, device=q.device)  # [B, H, L, D]
        lse_acc = torch.full((b, h, local), -math.inf, dtype=acc, device=q.device)  # [B, H, L]
        kv = torch.stack([k, v]).contiguous()  # [2, B, H, L, D] travels around the ring
        for step in range(ring.size):
            src = (ring.rank - step) % ring.size
            pending = ring.shift(kv, _TAG_KV) if step < ring.size - 1 else None  # overlaps compute
            tasks = _step_tasks(ring.rank, src, ring.size, seq_len, local, layout, causal)
            _run_forward(q, kv[0], kv[1], tasks, scale, out_acc, lse_acc)
            if pending is not None:
                ring.wait(pending[1], f"key/value block of step {step + 1}")
                kv = pending[0]
        ctx.save_for_backward(q, k, v, out_acc, lse_acc)
        ctx.ring, ctx.causal, ctx.layout, ctx.seq_len, ctx.scale = ring, causal, layout, seq_len, scale
        ctx.mark_non_differentiable(lse_acc)
        return out_acc.to(q.dtype), lse_acc

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, dout: torch.Tensor, _dlse: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        ring: _Ring = ctx.ring
        acc = _acc_dtype(q.dtype)
        local = q.shape[2]
        dq = torch.zeros(q.shape, dtype=acc, device=q.device)  # [B, H, L, D]
        kv = torch.stack([k, v]).contiguous()  # [2, B, H, L, D]
        dkv: torch.Tensor | None = None  # accumulator of the block held now, arriving from prev
        dkv_pending: list[Any] = []
        for step in range(ring.size):
            src = (ring.rank - step) % ring.size
            kv_pending = ring.shift(kv, _TAG_KV) if step < ring.size - 1 else None
            tasks = _step_tasks(ring.rank, src, ring.size, ctx.seq_len, local, ctx.layout, ctx.causal)
            dkv_blk = torch.zeros(kv.shape, dtype=acc, device=q.device)  # [2, B, H, L, D]
            _run_backward(dout, q, kv[0], kv[1], out, lse, tasks, ctx.scale, dq, dkv_blk[0], dkv_blk[1])
            if dkv is None:
                dkv = dkv_blk
            else:
                ring.wait(dkv_pending, f"dk/dv accumulator of step {step}")
                dkv += dkv_blk
            if ring.size > 1:
                dkv, dkv_pending = ring.shift(dkv, _TAG_DKV)  # hand it on; one turn brings it home
            if kv_pending is not None:
                ring.wait(kv_pending[1], f"key/value block of backward step {step + 1}")
                kv = kv_pending[0]
        if dkv_pending:
            ring.wait(dkv_pending, "this rank's own dk/dv after a full turn")
        assert dkv is not None
        return dq.to(q.dtype), dkv[0].to(k.dtype), dkv[1].to(v.dtype), None, None, None, None, None


def ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    group: dist.ProcessGroup | None = None,
    layout: str = "zigzag",
    seq_len: int | None = None,
    scale: float | None = None,
    timeout_s: float | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Exact (optionally causal) self-attention over a sequence sharded across ``group``.

    Legend: B batch, H heads, L local rows, D head dim.

    Call it on every rank of ``group`` with that rank's rows (from :func:`shard_sequence` with
    the same ``layout``). Differentiable in q, k, v; backward is also a ring and must likewise run
    on every rank.

    Args:
        q, k, v: ``[B, H, L, D]`` local rows; same shape on every rank.
        causal: query at global position i sees keys at positions <= i.
        group: process group (default: the world).
        layout: ``"zigzag"`` (balanced causal work, needs even L) or ``"contiguous"``.
        seq_len: true global length T when the sequence was padded (default ``L * P``).
        scale: score scale, default ``1 / sqrt(D)``.
        timeout_s: give up waiting for a neighbour after this many seconds (default: the
            process group's timeout) and raise, instead of hanging when a peer died.
        check: verify with one small all_gather that every rank passed matching shapes.

    Returns:
        ``[B, H, L, D]`` in q's dtype: this rank's rows of the output.

    Raises:
        ValueError: bad shapes/dtypes, k/v shorter than q, unknown layout, odd L for zigzag,
            a ``seq_len`` whose padded length (:func:`padded_length`) is not ``L * P``, or (with
            ``check``) ranks that disagree on shapes, dtype, ``seq_len`` or layout.
        RuntimeError: torch.distributed is not initialised, or a neighbour did not answer in
            time (a rank died or left the ring).
    """
    _check_qkv(q, k, v)
    _check_layout(layout)
    if k.shape[2] != q.shape[2]:
        raise ValueError(f"q and k must hold the same local rows, got {q.shape[2]} and {k.shape[2]}")
    local = q.shape[2]
    if layout == "zigzag" and local % 2:
        raise ValueError(
            f"zigzag layout needs an even number of local rows, got {local}; pad the full "
            "sequence with shard_sequence(x, rank, world_size, 'zigzag') (it pads to a multiple "
            "of 2 * world_size) or use layout='contiguous'"
        )
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "ring_attention needs an initialised torch.distributed process group; call "
            "dist.init_process_group(...) or run under agentos.kernels.launch.spawn"
        )
    ring = _Ring(group, timeout_s)
    full = local * ring.size
    seq_len = full if seq_len is None else seq_len
    if padded_length(seq_len, ring.size, layout) != full:
        raise ValueError(
            f"seq_len={seq_len} does not fit {ring.size} ranks x {local} local rows "
            f"(layout={layout!r} pads T to {padded_length(seq_len, ring.size, layout)}); pass the "
            "true length of the sequence you sharded with shard_sequence"
        )
    if check:
        _check_same_everywhere(ring, q, seq_len, layout)
    out, _ = _RingAttention.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), ring, causal, layout, seq_len, _scale(q.shape[-1], scale)
    )
    return out
