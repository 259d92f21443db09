"""InProcessBus beyond the contract suite: handles that share one in-process bus."""

from __future__ import annotations

import asyncio

import pytest

from agentos.runtime.bus import BusClosed, InProcessBus, Message

pytestmark = pytest.mark.asyncio


async def test_closing_a_handle_ends_only_its_own_subscriptions_and_requests() -> None:
    bus = InProcessBus()
    other = bus.handle()
    assert other.config is bus.config and other.consumer_name != bus.consumer_name

    async def consume() -> list[Message]:
        return [m async for m in other.subscribe("t", "g")]

    mine = asyncio.create_task(bus.request("rpc", {"who": "bus"}, timeout=5))
    theirs = asyncio.create_task(other.request("rpc", {"who": "other"}, timeout=5))
    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await other.close()
    with pytest.raises(BusClosed):
        await theirs
    assert await asyncio.wait_for(consumer, 3) == []
    with pytest.raises(BusClosed):
        other.handle()

    requests = await bus.fetch("rpc", "servers", max_messages=2, timeout=1)  # still served
    assert sorted(r.payload["who"] for r in requests) == ["bus", "other"]
    for request in requests:
        await bus.reply(request, {"to": request.payload["who"]})  # other's: discarded
    assert (await mine).payload == {"to": "bus"}
    assert (await bus.publish("t", {})).offset == 0
    await bus.close()
