"""The message bus contract: every test runs unchanged against every backend (see conftest)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from agentos.errors import ConfigError, RunError, UserError
from agentos.runtime.bus import (
    Bus,
    BusClosed,
    BusConfig,
    BusFull,
    Message,
    PayloadError,
    RequestTimeout,
)
from tests.runtime.bus.conftest import BusFactory

pytestmark = pytest.mark.asyncio


def offsets(messages: list[Message]) -> list[int]:
    return sorted(m.offset for m in messages)


async def replayed(bus: Bus, topic: str, from_offset: int = 0) -> list[Message]:
    return [m async for m in bus.replay(topic, from_offset)]


# ------------------------------------------------------------------------------------ publish
async def test_publish_returns_id_and_per_topic_increasing_offsets(make_bus: BusFactory) -> None:
    bus = make_bus()
    sent = [await bus.publish("orders", {"n": i}, headers={"k": "v"}) for i in range(3)]
    assert [m.offset for m in sent] == [0, 1, 2]
    assert len({m.id for m in sent}) == 3
    first = sent[0]
    assert (first.topic, first.payload, first.headers) == ("orders", {"n": 0}, {"k": "v"})
    assert (first.group, first.consumer, first.delivery_count) == (None, None, 0)
    assert first.timestamp > 0
    assert (await bus.publish("other", {})).offset == 0


async def test_publish_many_appends_in_order_and_respects_backpressure(
    make_bus: BusFactory,
) -> None:
    bus = make_bus(max_pending=3, publish_timeout=0.1)
    sent = await bus.publish_many("batch", [{"n": i} for i in range(5)], headers={"k": "v"})
    assert [m.offset for m in sent] == [0, 1, 2, 3, 4]
    assert [m.payload["n"] for m in await replayed(bus, "batch")] == [0, 1, 2, 3, 4]
    assert all(m.headers == {"k": "v"} for m in sent)
    await bus.ensure_group("batch", "g")  # now 5 unacked: the topic is full
    with pytest.raises(BusFull):
        await bus.publish_many("batch", [{"n": 5}])
    with pytest.raises(PayloadError):
        await bus.publish_many("batch", [{"ok": 1}, {"bad": {1}}])
    assert len(await replayed(bus, "batch")) == 5


async def test_unsendable_payload_is_refused_before_anything_is_written(
    make_bus: BusFactory,
) -> None:
    bus = make_bus()
    with pytest.raises(PayloadError, match="'t' is not JSON-serialisable"):
        await bus.publish("t", {"s": {1, 2}})
    with pytest.raises(PayloadError, match="must be a dict"):
        await bus.publish("t", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(PayloadError):
        await bus.publish("t", {"x": float("nan")})
    with pytest.raises(UserError, match="headers"):  # PayloadError: a UserError, a TypeError
        await bus.publish("t", {}, headers={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="invalid topic name"):
        await bus.publish("bad topic", {})
    assert await replayed(bus, "t") == []
    assert (await bus.publish("t", {"ok": True})).offset == 0


# ---------------------------------------------------------------------------- consumer groups
async def test_fetch_delivers_a_copy_of_payload_and_headers(make_bus: BusFactory) -> None:
    bus = make_bus()
    payload = {"a": [1, {"b": None}], "f": 1.5, "s": "é"}
    await bus.publish("t", payload, headers={"h": "1"})
    [m] = await bus.fetch("t", "g", consumer="c1", max_messages=10, timeout=1)
    assert (m.payload, m.headers, m.offset) == (payload, {"h": "1"}, 0)
    assert (m.group, m.consumer, m.delivery_count) == ("g", "c1", 1)
    await bus.ack(m)
    await bus.ack(m)  # acking twice is harmless
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await bus.fetch("t", "g", timeout=0.1) == []
    assert 0.05 <= loop.time() - start < 1.0


async def test_competing_consumers_each_message_goes_to_one(make_bus: BusFactory) -> None:
    bus = make_bus()
    for i in range(10):
        await bus.publish("jobs", {"i": i})
    a = await bus.fetch("jobs", "workers", consumer="a", max_messages=4, timeout=1)
    b = await bus.fetch("jobs", "workers", consumer="b", max_messages=10, timeout=1)
    assert (len(a), len(b)) == (4, 6)
    assert offsets(a + b) == list(range(10))
    assert {m.consumer for m in a} == {"a"} and {m.consumer for m in b} == {"b"}
    for m in a + b:
        await bus.ack(m)
    assert await bus.fetch("jobs", "workers", consumer="a", timeout=0) == []


async def test_concurrent_subscribers_split_the_stream(make_bus: BusFactory) -> None:
    bus = make_bus()
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def worker(name: str) -> None:
        async for m in bus.subscribe("jobs", "workers", consumer=name):
            seen.append((name, m.payload["i"]))
            await bus.ack(m)
            if len(seen) == 20:
                done.set()

    tasks = [asyncio.create_task(worker(n)) for n in ("w1", "w2")]
    for i in range(20):
        await bus.publish("jobs", {"i": i})
    await asyncio.wait_for(done.wait(), 10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(i for _, i in seen) == list(range(20))


async def test_every_group_gets_every_message(make_bus: BusFactory) -> None:
    bus = make_bus()
    sent = [await bus.publish("events", {"i": i}) for i in range(3)]
    for group in ("audit", "billing"):
        got = await bus.fetch("events", group, max_messages=10, timeout=1)
        assert [m.id for m in got] == [m.id for m in sent]
        assert {m.group for m in got} == {group}


async def test_new_group_starts_at_oldest_retained_message(make_bus: BusFactory) -> None:
    bus = make_bus(max_len=3, max_pending=3)
    for i in range(5):  # no group yet: a plain log that keeps the newest max_len
        await bus.publish("t", {"i": i})
    got = await bus.fetch("t", "late", max_messages=10, timeout=1)
    assert [m.offset for m in got] == [2, 3, 4]


async def test_subscription_iterates_in_order_and_fetches_batches(make_bus: BusFactory) -> None:
    bus = make_bus()
    sub = bus.subscribe("t", "g", consumer="c")

    async def produce() -> None:
        for i in range(5):
            await bus.publish("t", {"i": i})
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    got = []
    async for m in sub:
        got.append(m.payload["i"])
        await bus.ack(m)
        if len(got) == 5:
            break
    await producer
    assert got == [0, 1, 2, 3, 4]
    await bus.publish("t", {"i": 5})
    await bus.publish("t", {"i": 6})
    batch = await sub.fetch(max_messages=5, timeout=1)
    assert [m.payload["i"] for m in batch] == [5, 6]


async def test_handles_on_the_same_bus_share_topics(make_bus: BusFactory) -> None:
    one = make_bus()
    two = make_bus.handle(one)  # Redis: a second client, as another process would open
    assert two is not one
    await one.publish("shared", {"i": 0})
    await two.publish("shared", {"i": 1})
    assert [m.payload["i"] for m in await replayed(one, "shared")] == [0, 1]
    a = await one.fetch("shared", "g", consumer="a", timeout=1)
    b = await two.fetch("shared", "g", consumer="b", timeout=1)  # one group, two handles
    assert offsets(a + b) == [0, 1]
    await two.ack(a[0])  # any handle may ack
    await one.ack(b[0])
    assert await two.fetch("shared", "g", timeout=0) == []
    request = asyncio.create_task(one.request("rpc", {"q": 1}, timeout=5))
    [asked] = await two.fetch("rpc", "servers", timeout=5)
    await two.reply(asked, {"a": 2})
    assert (await request).payload == {"a": 2}  # request/reply across handles

    await two.close()  # closing one handle leaves the other working
    assert (await one.publish("shared", {"i": 2})).offset == 2
    other = make_bus()  # control: a bus that is not a handle on `one` shares nothing
    assert (await other.publish("shared", {"i": 9})).offset == 0
    assert [m.payload["i"] for m in await replayed(other, "shared")] == [9]
    [only] = await other.fetch("shared", "g", max_messages=10, timeout=1)
    assert only.payload == {"i": 9}
    assert [m.payload["i"] for m in await replayed(one, "shared")] == [0, 1, 2]


# ------------------------------------------------------------------------------ at-least-once
async def test_unacked_message_is_redelivered_after_ack_timeout(make_bus: BusFactory) -> None:
    bus = make_bus(ack_timeout=0.5)
    sent = await bus.publish("t", {"x": 1})
    [first] = await bus.fetch("t", "g", consumer="a", timeout=1)
    assert await bus.fetch("t", "g", consumer="b", timeout=0) == []  # invisible while in flight
    [again] = await bus.fetch("t", "g", consumer="b", timeout=3)
    assert (again.id, again.offset, again.payload) == (sent.id, 0, {"x": 1})
    assert (first.delivery_count, again.delivery_count, again.consumer) == (1, 2, "b")
    await bus.ack(again)
    assert await bus.fetch("t", "g", consumer="a", timeout=0.5) == []  # acked: never again


async def test_nack_redelivers_promptly(make_bus: BusFactory) -> None:
    bus = make_bus(ack_timeout=30.0)
    await bus.publish("t", {"x": 1})
    [m] = await bus.fetch("t", "g", consumer="a", timeout=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await bus.nack(m)
    [again] = await bus.fetch("t", "g", consumer="b", timeout=5)
    assert loop.time() - start < 1.0
    assert (again.offset, again.delivery_count) == (0, 2)
    await bus.ack(again)
    await bus.nack(again)  # no longer pending: nothing happens
    assert await bus.fetch("t", "g", timeout=0.1) == []


async def test_ack_many_acks_every_message_of_a_batch(make_bus: BusFactory) -> None:
    bus = make_bus(ack_timeout=0.2)
    await bus.ensure_group("jobs", "g")
    await bus.publish_many("jobs", [{"n": i} for i in range(4)])
    got = await bus.fetch("jobs", "g", consumer="c", max_messages=4)
    await bus.ack_many(got)
    await asyncio.sleep(0.3)  # past the ack timeout: nothing comes back
    assert await bus.fetch("jobs", "g", consumer="c", max_messages=4) == []
    with pytest.raises(ValueError, match="not delivered through a consumer group"):
        await bus.ack_many([(await replayed(bus, "jobs"))[0]])


async def test_ack_and_nack_need_a_delivered_message(make_bus: BusFactory) -> None:
    bus = make_bus()
    published = await bus.publish("t", {})
    with pytest.raises(ValueError, match="not delivered through a consumer group"):
        await bus.ack(published)
    with pytest.raises(ValueError, match="not delivered through a consumer group"):
        await bus.nack(published)


# -------------------------------------------------------------------------------- dead letter
async def test_dead_letter_after_max_deliveries_of_nacks(make_bus: BusFactory) -> None:
    bus = make_bus(max_deliveries=3)
    original = await bus.publish("pay", {"x": 1}, headers={"trace": "t1"})
    for expected in (1, 2, 3):
        [m] = await bus.fetch("pay", "g", timeout=1)
        assert m.delivery_count == expected
        await bus.nack(m, reason="card declined")
    assert await bus.fetch("pay", "g", timeout=0.2) == []  # acked in the source
    [dead] = await replayed(bus, "pay.dead")
    assert dead.payload == {"x": 1}
    assert dead.headers == {
        "trace": "t1",
        "dead_letter.reason": "card declined",
        "dead_letter.delivery_count": "3",
        "dead_letter.topic": "pay",
        "dead_letter.group": "g",
        "dead_letter.offset": "0",
        "dead_letter.message_id": original.id,
    }
    [consumed] = await bus.fetch("pay.dead", "ops", timeout=1)  # dead letters are a topic
    assert consumed.id == dead.id


async def test_dead_letter_after_ack_timeouts_only_for_the_failing_group(
    make_bus: BusFactory,
) -> None:
    bus = make_bus(ack_timeout=0.15, max_deliveries=2)
    await bus.publish("t", {"x": 1})
    [m1] = await bus.fetch("t", "flaky", timeout=1)
    [m2] = await bus.fetch("t", "flaky", timeout=1)  # after the first ack timeout
    assert (m1.delivery_count, m2.delivery_count) == (1, 2)
    assert await bus.fetch("t", "flaky", timeout=0.5) == []  # third would exceed: dead
    [dead] = await replayed(bus, "t.dead")
    assert dead.headers["dead_letter.reason"] == "ack timeout"
    assert dead.headers["dead_letter.delivery_count"] == "2"
    assert dead.headers["dead_letter.group"] == "flaky"
    [ok] = await bus.fetch("t", "healthy", timeout=1)  # another group is unaffected
    assert ok.delivery_count == 1


# ------------------------------------------------------------------------------ request/reply
async def test_request_reply_matches_correlation_ids(make_bus: BusFactory) -> None:
    bus = make_bus()
    served: dict[str, int] = {}

    async def server() -> None:
        async for m in bus.subscribe("rpc.add", "servers"):
            assert m.reply_to is not None and m.correlation_id is not None
            served[m.correlation_id] = m.payload["a"]
            await bus.reply(m, {"sum": m.payload["a"] + m.payload["b"]}, headers={"by": "s1"})
            await bus.ack(m)

    task = asyncio.create_task(server())
    try:
        replies = await asyncio.gather(
            *(bus.request("rpc.add", {"a": i, "b": 1}, timeout=5) for i in range(3))
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [r.payload["sum"] for r in replies] == [1, 2, 3]
    assert {r.correlation_id: r.payload["sum"] - 1 for r in replies} == served
    assert all(r.headers["by"] == "s1" for r in replies)


async def test_request_without_reply_raises_request_timeout(make_bus: BusFactory) -> None:
    bus = make_bus()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(RequestTimeout, match=r"topic 'nobody\.home' within 0\.2s") as info:
        await bus.request("nobody.home", {"q": 1}, timeout=0.2)
    assert 0.15 <= loop.time() - start < 2.0
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, RunError)
    assert (info.value.topic, info.value.timeout) == ("nobody.home", 0.2)
    [late] = await bus.fetch("nobody.home", "g", timeout=1)  # a late reply is discarded
    assert late.correlation_id == info.value.correlation_id
    await bus.reply(late, {"too": "late"})


async def test_reply_needs_a_request(make_bus: BusFactory) -> None:
    bus = make_bus()
    await bus.publish("t", {})
    [m] = await bus.fetch("t", "g", timeout=1)
    with pytest.raises(ValueError, match="is not a request"):
        await bus.reply(m, {})
    with pytest.raises(ValueError, match="timeout must be > 0"):
        await bus.request("t", {}, timeout=0)


# ------------------------------------------------------------------------------------- replay
async def test_replay_from_an_offset_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    sent = [await bus.publish("log", {"i": i}) for i in range(250)]  # > one Redis page
    assert [m.id for m in await replayed(bus, "log")] == [m.id for m in sent]
    tail = await replayed(bus, "log", 120)
    assert [m.offset for m in tail] == list(range(120, 250))
    assert [m.payload["i"] for m in tail] == list(range(120, 250))
    assert await replayed(bus, "log", 250) == []
    assert await replayed(bus, "never.published") == []
    with pytest.raises(ValueError, match="from_offset"):
        await replayed(bus, "log", -1)
    got = await bus.fetch("log", "g", max_messages=1000, timeout=1)  # replay consumed nothing
    assert len(got) == 250


async def test_replay_retention_is_bounded_by_max_len(make_bus: BusFactory) -> None:
    bus = make_bus(max_len=4, max_pending=2)
    for i in range(10):  # no consumer group: never full, keeps the newest max_len
        await bus.publish("t", {"i": i})
    assert [m.offset for m in await replayed(bus, "t")] == [6, 7, 8, 9]
    assert [m.offset for m in await replayed(bus, "t", 8)] == [8, 9]


# ------------------------------------------------------------------------------- backpressure
async def test_full_topic_raises_bus_full_and_writes_nothing(make_bus: BusFactory) -> None:
    bus = make_bus(max_pending=3, publish_timeout=0.2)
    await bus.ensure_group("jobs", "workers")
    for i in range(3):
        await bus.publish("jobs", {"i": i})
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(BusFull) as info:
        await bus.publish("jobs", {"i": 3})
    assert 0.15 <= loop.time() - start < 2.0
    error = info.value
    assert (error.topic, error.group, error.pending, error.limit) == ("jobs", "workers", 3, 3)
    assert isinstance(error, RunError)
    for part in ("'jobs'", "'workers'", "max_pending=3", "Add consumers", "raise the limit"):
        assert part in str(error)
    assert [m.offset for m in await replayed(bus, "jobs")] == [0, 1, 2]


async def test_backlog_is_counted_from_the_slowest_groups_oldest_unacked(
    make_bus: BusFactory,
) -> None:
    bus = make_bus(max_pending=3, publish_timeout=0)
    for group in ("fast", "slow"):
        await bus.ensure_group("t", group)
    for i in range(3):
        await bus.publish("t", {"i": i})
    for m in await bus.fetch("t", "fast", max_messages=3, timeout=1):
        await bus.ack(m)
    with pytest.raises(BusFull, match="'slow'"):  # undelivered messages count
        await bus.publish("t", {})
    delivered = await bus.fetch("t", "slow", max_messages=3, timeout=1)
    await bus.ack(delivered[1])
    await bus.ack(delivered[2])
    with pytest.raises(BusFull):  # offset 0 is still unacked: the window is 0..2
        await bus.publish("t", {})
    await bus.ack(delivered[0])
    assert (await bus.publish("t", {})).offset == 3


async def test_publish_waits_for_room(make_bus: BusFactory) -> None:
    bus = make_bus(max_pending=2, publish_timeout=3.0)
    await bus.ensure_group("t", "g")
    await bus.publish("t", {"i": 0})
    await bus.publish("t", {"i": 1})
    [m0, _] = await bus.fetch("t", "g", max_messages=2, timeout=1)

    async def ack_soon() -> None:
        await asyncio.sleep(0.2)
        await bus.ack(m0)

    acker = asyncio.create_task(ack_soon())
    loop = asyncio.get_running_loop()
    start = loop.time()
    third = await bus.publish("t", {"i": 2})
    await acker
    assert 0.15 <= loop.time() - start < 2.5
    assert third.offset == 2


async def test_max_pending_per_topic(make_bus: BusFactory) -> None:
    bus = make_bus(max_pending=100, max_pending_per_topic={"small": 1}, publish_timeout=0)
    for topic in ("small", "big"):
        await bus.ensure_group(topic, "g")
    await bus.publish("small", {})
    with pytest.raises(BusFull, match="max_pending=1"):
        await bus.publish("small", {})
    for _ in range(5):
        await bus.publish("big", {})


# ---------------------------------------------------------------------------------- lifecycle
async def test_close_ends_subscriptions_and_refuses_further_use(make_bus: BusFactory) -> None:
    bus = make_bus()

    async def consume() -> list[Message]:
        return [m async for m in bus.subscribe("t", "g")]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await bus.close()
    assert await asyncio.wait_for(consumer, 3) == []
    assert bus.closed
    with pytest.raises(BusClosed):
        await bus.publish("t", {})
    with pytest.raises(BusClosed):
        await bus.fetch("t", "g")
    with pytest.raises(BusClosed):
        await bus.request("t", {}, timeout=1)
    with pytest.raises(BusClosed):
        bus.subscribe("t", "g")
    await bus.close()  # idempotent


async def test_async_context_manager_closes(make_bus: BusFactory) -> None:
    async with make_bus() as bus:
        assert (await bus.publish("t", {"x": 1})).offset == 0
    assert bus.closed


# ------------------------------------------------------------------ not per backend (no fixture)
async def test_config_is_validated_when_built() -> None:
    with pytest.raises(ConfigError, match="Raise max_len or lower max_pending"):
        BusConfig(max_len=10, max_pending=20)
    with pytest.raises(ConfigError, match=r"max_pending_per_topic\['t'\]"):
        BusConfig(max_len=10, max_pending=5, max_pending_per_topic={"t": 11})
    with pytest.raises(ConfigError, match="ack_timeout: must be > 0"):
        BusConfig(ack_timeout=0)
    assert BusConfig(max_pending_per_topic={"t": 7}).limit_for("t") == 7
    assert issubclass(PayloadError, TypeError) and issubclass(BusClosed, UserError)


async def test_importing_the_bus_does_not_import_redis() -> None:
    code = "import sys, agentos.runtime.bus; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
