"""Run a function on P local ranks of a real ``torch.distributed`` process group.

Used by tests, benchmarks and tools that need ring attention or expert parallelism across local
processes. Each rank is a spawned process; the group uses gloo on CPU (NCCL when ``backend`` says
so). A rank that raises or dies makes :func:`spawn` fail fast with that rank's traceback instead of
hanging the others.
"""

from __future__ import annotations

import os
import queue
import socket
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

__all__ = ["RankFailed", "free_port", "spawn"]


class RankFailed(RuntimeError):
    """A rank raised, died or timed out; the message carries its traceback."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    timeout_s: float,
    results: Any,
    args: tuple[Any, ...],
) -> None:
    import torch
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    try:
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        out = fn(rank, world_size, *args)
        results.put((rank, "ok", _serialize(out)))
    except BaseException:  # reported to the parent, which raises RankFailed
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def _serialize(obj: Any) -> bytes:
    """Results travel as bytes: a tensor sent through the queue by shared memory vanishes when its
    rank exits before the parent reads it."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(_to_cpu(obj), buffer)
    return buffer.getvalue()


def _deserialize(data: bytes) -> Any:
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=False)


def spawn(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str = "gloo",
    timeout_s: float = 120.0,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` fresh processes in one process group.

    ``fn`` must be importable (a module-level function). Tensors it returns come back on the CPU.

    Returns:
        The per-rank return values, indexed by rank.

    Raises:
        RankFailed: a rank raised (its traceback is in the message), exited without a result, or
            the whole run took longer than ``timeout_s``. Every rank is stopped before this raises.
    """
    import time

    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(
            target=_entry,
            args=(fn, rank, world_size, port, backend, timeout_s, results, args),
            daemon=True,
        )
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    outputs: dict[int, Any] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(outputs) < world_size:
            try:
                rank, status, payload = results.get(timeout=0.2)
            except queue.Empty:
                dead = [
                    r for r, p in enumerate(procs)
                    if r not in outputs and not p.is_alive() and p.exitcode not in (0, None)
                ]
                if dead:
                    raise RankFailed(
                        f"rank {dead[0]} exited with code {procs[dead[0]].exitcode} "
                        "before returning a result"
                    ) from None
                if time.monotonic() > deadline:
                    raise RankFailed(
                        f"ranks {sorted(set(range(world_size)) - set(outputs))} "
                        f"gave no result within {timeout_s:.0f}s"
                    ) from None
                continue
            if status == "error":
                raise RankFailed(f"rank {rank} failed:\n{payload}")
            outputs[rank] = _deserialize(payload)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return [outputs[r] for r in range(world_size)]
