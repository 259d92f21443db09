"""RedisBus behaviour that differs between Redis versions, checked on each one here."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from agentos.runtime.bus import BusConfig, RedisBus
from agentos.runtime.bus._redis_server import RedisBinary
from tests.services import RedisServers

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]


async def test_offsets_continue_after_the_newest_entries_are_deleted(
    redis_binary: RedisBinary, redis_servers: RedisServers
) -> None:
    url = redis_servers.url(redis_binary)
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    async with RedisBus(url, prefix=prefix) as bus:
        for i in range(3):
            await bus.publish("t", {"i": i})
        raw = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            assert await raw.xdel(prefix + "t", "0-2", "0-3") == 2  # by hand: newest two gone
        finally:
            await raw.aclose()
        assert (await bus.publish("t", {"i": 3})).offset == 3  # never reused
        assert [m.offset for m in [m async for m in bus.replay("t")]] == [0, 3]


async def test_a_pending_entry_trimmed_from_its_stream_leaves_the_pending_list(
    redis_binary: RedisBinary, redis_servers: RedisServers
) -> None:
    """7.x drops it from the PEL itself; on 6.2 the bus acks it (else the PEL grows forever)."""
    url = redis_servers.url(redis_binary)
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    config = BusConfig(max_len=2, max_pending=1, max_deliveries=1, ack_timeout=0.2)
    async with RedisBus(url, config=config, prefix=prefix, poll_interval=0.05) as bus:
        await bus.ensure_group("t.dead", "ops")
        for i in range(3):
            await bus.publish("t", {"i": i})
            [m] = await bus.fetch("t", "g", timeout=1)
            await bus.nack(m)  # max_deliveries=1: dead-lettered at once
            if i == 0:
                [held] = await bus.fetch("t.dead", "ops", timeout=1)  # pending, never acked
        assert held.offset == 0  # trimmed by the next two dead letters (max_len=2)
        assert [m.offset async for m in bus.replay("t.dead")] == [1, 2]
        await asyncio.sleep(0.3)  # past ack_timeout: the trimmed entry is due for redelivery
        got = await bus.fetch("t.dead", "ops", max_messages=10, timeout=1)
        assert sorted(m.offset for m in got) == [1, 2]
        raw = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            pending = await raw.xpending(prefix + "t.dead", "ops")
        finally:
            await raw.aclose()
        assert (pending["pending"], pending["min"]) == (2, "0-2")
        assert [m async for m in bus.replay("t.dead.dead")] == []
