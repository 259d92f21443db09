"""Message bus throughput and latency: in-process, Redis Streams, and raw redis-py beside it.

For each backend, on one redis-server started here (a throwaway one on a free port, no
persistence):

1. publish, one at a time: ``await bus.publish`` in a loop (raw: ``XADD`` awaited one by one);
2. publish, batched: ``bus.publish_many`` of 100 messages (Redis: one script that checks the
   backlog once and appends them; raw: ``XADD`` in a pipeline of 100, the fastest redis-py
   can do);
3. consume + ack: fetch batches of 100 from a consumer group and ``ack_many`` them (raw:
   ``XREADGROUP COUNT 100`` and one ``XACK`` of the batch's ids);
4. request/reply round trip, one at a time, against a responder task in the same process
   (raw: ``XADD`` the request, a responder ``XREADGROUP``s it and ``XADD``s the reply to a
   per-request stream the requester waits on with ``XREAD BLOCK``).

Prints messages/s and p50/p99 latency per operation, the Redis bus as a percentage of raw
redis-py, and writes benchmarks/results/bus.json.

    python benchmarks/bus.py [--messages 2000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentos.runtime.bus import Bus, BusConfig, InProcessBus, RedisBus  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bus.json"
PAYLOAD = {"agent": "researcher", "kind": "llm", "text": "x" * 200}
CONFIG = BusConfig(max_len=200_000, max_pending=100_000, ack_timeout=60.0)


def _stats(latencies: list[float], seconds: float, count: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "messages_per_s": count / seconds,
        "p50_us": statistics.median(ordered) * 1e6 if ordered else 0.0,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6 if ordered else 0.0,
        "seconds": seconds,
        "count": count,
    }


async def _timed(n: int, one: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - t0)
    return _stats(latencies, time.perf_counter() - start, n)


async def _timed_batches(n: int, batch: int, many: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    """Latency here is per batch divided by its size (each message's share)."""
    latencies = []
    start = time.perf_counter()
    done = 0
    while done < n:
        size = min(batch, n - done)
        t0 = time.perf_counter()
        await many(size)
        latencies.append((time.perf_counter() - t0) / size)
        done += size
    return _stats(latencies, time.perf_counter() - start, n)


# --- agentos buses --------------------------------------------------------------------------


async def bench_bus(bus: Bus, n: int, requests: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    await bus.ensure_group("seq", "g")
    out["publish"] = await _timed(n, lambda: bus.publish("seq", PAYLOAD))
    await bus.ensure_group("batch", "g")
    out["publish_batch"] = await _timed_batches(
        n, 100, lambda k: bus.publish_many("batch", [PAYLOAD] * k))

    async def consume(k: int) -> None:
        got = await bus.fetch("seq", "g", consumer="c", max_messages=k, timeout=1.0)
        assert len(got) == k, (len(got), k)
        await bus.ack_many(got)

    out["consume_ack"] = await _timed_batches(n, 100, consume)

    stop = asyncio.Event()

    async def responder() -> None:
        while not stop.is_set():
            for m in await bus.fetch("rpc", "servers", consumer="s", max_messages=10, timeout=0.05):
                await bus.reply(m, {"ok": True})
                await bus.ack(m)

    await bus.ensure_group("rpc", "servers")
    task = asyncio.create_task(responder())
    out["request_reply"] = await _timed(requests, lambda: bus.request("rpc", PAYLOAD, timeout=10))
    stop.set()
    await task
    return out


# --- raw redis-py ---------------------------------------------------------------------------


async def bench_raw(url: str, n: int, requests: int) -> dict[str, dict[str, float]]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url, decode_responses=True)
    p = f"raw:{uuid.uuid4().hex[:6]}:"
    data = json.dumps(PAYLOAD)
    out: dict[str, dict[str, float]] = {}
    await r.xgroup_create(p + "seq", "g", id="0", mkstream=True)
    out["publish"] = await _timed(n, lambda: r.xadd(p + "seq", {"p": data}))

    async def pipelined(k: int) -> None:
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(k):
                pipe.xadd(p + "batch", {"p": data})
            await pipe.execute()

    out["publish_batch"] = await _timed_batches(n, 100, pipelined)

    async def consume(k: int) -> None:
        reply = await r.xreadgroup("g", "c", {p + "seq": ">"}, count=k, block=1000)
        entries = reply[0][1]
        for _id, fields in entries:
            json.loads(fields["p"])
        await r.xack(p + "seq", "g", *[stream_id for stream_id, _ in entries])

    out["consume_ack"] = await _timed_batches(n, 100, consume)

    await r.xgroup_create(p + "rpc", "servers", id="0", mkstream=True)
    stop = asyncio.Event()

    async def responder() -> None:
        while not stop.is_set():
            reply = await r.xreadgroup("servers", "s", {p + "rpc": ">"}, count=10, block=50)
            for _stream, entries in reply or []:
                for stream_id, fields in entries:
                    await r.xadd(fields["reply_to"], {"p": '{"ok": true}'})
                    await r.xack(p + "rpc", "servers", stream_id)

    async def request() -> None:
        box = p + "reply:" + uuid.uuid4().hex
        await r.xadd(p + "rpc", {"p": data, "reply_to": box})
        while not await r.xread({box: "0-0"}, count=1, block=10_000):
            pass
        await r.delete(box)

    task = asyncio.create_task(responder())
    out["request_reply"] = await _timed(requests, request)
    stop.set()
    await task
    await r.aclose()
    return out


# --- main -----------------------------------------------------------------------------------


async def run(url: str, n: int, requests: int) -> dict[str, Any]:
    async with InProcessBus(CONFIG) as inproc:
        inprocess = await bench_bus(inproc, n, requests)
    async with RedisBus(url, config=CONFIG, prefix=f"bench:{uuid.uuid4().hex[:6]}:",
                        poll_interval=0.05) as rbus:
        redis_bus = await bench_bus(rbus, n, requests)
    raw = await bench_raw(url, n, requests)
    return {"inprocess": inprocess, "redis": redis_bus, "raw_redis_py": raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from agentos.runtime.bus._redis_server import find_redis_server
    from tests.services import RedisServer

    binary = find_redis_server()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), binary=binary)
        server.start()
        try:
            results = asyncio.run(run(server.url, args.messages, args.requests))
        finally:
            server.stop()

    console = Console()
    table = Table("operation", "backend", "msg/s", "p50 µs", "p99 µs", "vs raw redis-py")
    for op in ("publish", "publish_batch", "consume_ack", "request_reply"):
        raw = results["raw_redis_py"][op]["messages_per_s"]
        for backend in ("inprocess", "redis", "raw_redis_py"):
            row = results[backend][op]
            share = f"{row['messages_per_s'] / raw * 100:.0f} %" if backend == "redis" else ""
            table.add_row(op, backend, f"{row['messages_per_s']:,.0f}", f"{row['p50_us']:.0f}",
                          f"{row['p99_us']:.0f}", share)
    console.print(table)
    out = {
        "benchmark": "bus",
        "args": vars(args),
        "redis_server": str(binary),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_start": os.getloadavg()},
        "results": results,
        "redis_vs_raw": {op: results["redis"][op]["messages_per_s"]
                         / results["raw_redis_py"][op]["messages_per_s"]
                         for op in results["raw_redis_py"]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
