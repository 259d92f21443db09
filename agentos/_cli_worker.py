"""``agentos worker`` (run syscalls taken from Redis) and ``agentos status`` (what is running)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentos.errors import UserError

__all__ = ["mount_worker", "status_command", "worker_command"]

console = Console()
err = Console(stderr=True)


def _url(url: str | None) -> str:
    from agentos.config import load_settings

    chosen = url or load_settings().workers_url
    if chosen is None:
        raise UserError("no Redis url: pass --url redis://host:6379/0 or set "
                        "AGENTOS_WORKERS_URL (workers_url in agentos.toml)")
    return chosen


def worker_command(
    url: Annotated[Optional[str], typer.Option(help="Redis url of the syscall queues; default: the workers_url setting.")] = None,
    concurrency: Annotated[int, typer.Option(help="Syscalls this worker holds at once.")] = 8,
    lease: Annotated[float, typer.Option(help="Seconds a held syscall stays this worker's without renewal; after that another worker takes it over.")] = 30.0,
    attempts: Annotated[int, typer.Option(help="Deliveries a syscall gets before it is dead-lettered as poison.")] = 3,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Syscall kinds to take: llm, tool, memory (repeatable); default: all.")] = None,
    tools: Annotated[Optional[list[str]], typer.Option("--tools", help="MODULE:ATTR of a tool or list of tools to serve besides the discovered ones (repeatable).")] = None,
    llm: Annotated[Optional[list[str]], typer.Option("--llm", help="MODEL=MODULE:ATTR: serve model string MODEL with that LLM object (repeatable); other models go through litellm.")] = None,
) -> None:
    """Run kernel syscalls (LLM, tool, memory) taken from Redis, until SIGTERM or Ctrl-C.

    Kernels with workers_url set send their syscalls here; limits (limits_url, default: the
    same Redis) are shared by all workers. `agentos status` shows the workers and queues.
    """
    import asyncio
    import signal

    from agentos.config import load_settings
    from agentos.runtime.registry import ToolRegistry
    from agentos.runtime.workers import KINDS, Worker, WorkerConfig, load_object

    settings = load_settings()
    redis_url = _url(url)
    kinds = tuple(kind or KINDS)
    try:
        config = WorkerConfig(redis_url, concurrency=concurrency, lease=lease, attempts=attempts,
                              kinds=kinds)
    except ValueError as error:
        raise UserError(str(error)) from error
    registry = ToolRegistry(discover=True)
    for spec in tools or ():
        found: Any = load_object(spec)
        for item in found if isinstance(found, (list, tuple)) else [found]:
            registry.register(item, source=spec)
    llms = {}
    for spec in llm or ():
        model, sep, target = spec.partition("=")
        if not sep or not model:
            raise UserError(f"--llm {spec!r} is not MODEL=MODULE:ATTR")
        llms[model] = load_object(target)

    async def main() -> None:
        worker = Worker(config, settings, registry=registry, llms=llms)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        err.print(f"worker {worker.id} on {redis_url}: {', '.join(kinds)}, concurrency "
                  f"{concurrency}, lease {lease:g}s, {len(registry)} tools")
        try:
            await worker.run()
        finally:
            await worker.aclose()

    asyncio.run(main())


def status_command(
    url: Annotated[Optional[str], typer.Option(help="Redis url; default: the workers_url setting.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the workers, the syscall queues (backlog, dead letters) and the leases held."""
    import dataclasses
    import json

    from redis.exceptions import ConnectionError as RedisConnectionError

    from agentos.runtime.workers.status import cluster_status

    redis_url = _url(url)
    try:
        status = cluster_status(redis_url)
    except RedisConnectionError as error:
        raise UserError(f"Redis at {redis_url} is unreachable ({error}); start redis-server "
                        "there or pass --url") from error
    if as_json:
        data = dataclasses.asdict(status)
        for queue, q in zip(data["queues"], status.queues, strict=True):
            queue["backlog"] = q.backlog
        console.print_json(json.dumps(data))
        return
    alive = sum(w.alive for w in status.workers)
    console.print(f"[bold]{redis_url}[/]: {alive} worker(s) alive, "
                  f"{len(status.workers) - alive} gone quiet")
    workers = Table("worker", "pid", "host", "alive", "seen s ago", "running", "done", "failed",
                    "from journal", "poisoned")
    for w in status.workers:
        workers.add_row(w.id, str(w.pid), w.host, "yes" if w.alive else "no",
                        f"{w.seen_s_ago:.1f}", f"{w.running}/{w.concurrency}", str(w.done),
                        str(w.failed), str(w.replayed), str(w.poisoned))
    console.print(workers)
    queues = Table("queue", "kept", "waiting", "held", "backlog", "dead letters")
    for q in status.queues:
        queues.add_row(q.topic, str(q.length), str(q.waiting), str(q.held), str(q.backlog),
                       str(q.dead))
    console.print(queues)
    leases = Table("queue", "offset", "worker", "held s", "deliveries")
    for lease in status.leases:
        leases.add_row(lease.topic, str(lease.offset), lease.worker, f"{lease.idle_s:.1f}",
                       str(lease.deliveries))
    console.print(leases)


def mount_worker(app: typer.Typer) -> None:
    """Add ``worker`` and ``status`` to the ``agentos`` command line."""
    app.command("worker")(worker_command)
    app.command("status")(status_command)
