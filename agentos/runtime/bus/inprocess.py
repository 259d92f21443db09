"""The in-process message bus: asyncio, one event loop, nothing to install (the default).

Its topics live in a broker object that every handle made by `InProcessBus.handle` shares, so
several components of one process (two kernels, say) share topics through handles of their
own, as processes do through their own `RedisBus` on one Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from agentos.runtime.bus.base import (
    DEAD_LETTER_SUFFIX,
    Bus,
    BusClosed,
    BusConfig,
    BusFull,
    Message,
    check_name,
    dead_letter_headers,
    new_message_id,
)

__all__ = ["InProcessBus"]

_log = logging.getLogger(__name__)


@dataclass
class _Stored:
    offset: int
    id: str
    data: str  # payload as JSON: every delivery decodes a fresh copy, as Redis does
    headers: dict[str, str]
    timestamp: float

    def message(self, topic: str, **delivery: object) -> Message:
        return Message(
            topic=topic,
            offset=self.offset,
            id=self.id,
            payload=json.loads(self.data),
            headers=dict(self.headers),
            timestamp=self.timestamp,
            **delivery,  # type: ignore[arg-type]
        )


@dataclass
class _Delivery:
    consumer: str
    count: int
    due: float  # loop time at which it may be redelivered


@dataclass
class _Group:
    cursor: int  # next offset never delivered to this group
    pending: dict[int, _Delivery] = field(default_factory=dict)  # offset -> delivery


@dataclass
class _Topic:
    log: deque[_Stored] = field(default_factory=deque)
    next_offset: int = 0
    groups: dict[str, _Group] = field(default_factory=dict)

    @property
    def first_offset(self) -> int:
        return self.log[0].offset if self.log else self.next_offset

    def get(self, offset: int) -> _Stored | None:
        index = offset - self.first_offset
        return self.log[index] if 0 <= index < len(self.log) else None

    def backlog(self) -> tuple[str, int]:
        """The slowest group and its backlog (newest offset - oldest unacked offset + 1)."""
        worst = ("", 0)
        for name, group in self.groups.items():
            oldest = min(group.pending, default=group.cursor)
            oldest = max(min(oldest, group.cursor), self.first_offset)
            if self.next_offset - oldest > worst[1]:
                worst = (name, self.next_offset - oldest)
        return worst


@dataclass
class _Broker:
    """What every handle on one in-process bus shares."""

    topics: dict[str, _Topic] = field(default_factory=dict)
    replies: dict[str, asyncio.Future[Message]] = field(default_factory=dict)  # reply_to ->
    wakeup: asyncio.Event | None = None  # set (and dropped) when the state changes


class InProcessBus(Bus):
    """A `Bus` whose topics live in this process's memory (lost when it exits).

    Use it, and every handle on it, from one asyncio event loop. Semantics are those of `Bus`;
    see ``agentos.runtime.bus.base``. To share its topics with another component of this
    process, give that component its own `handle`, so each can close its handle on its own.

    Args:
        config: Limits and timeouts; defaults to ``BusConfig()``.
    """

    def __init__(self, config: BusConfig | None = None) -> None:
        super().__init__(config)
        self._broker = _Broker()
        self._boxes: set[str] = set()  # reply boxes this handle's requests opened

    def handle(self) -> InProcessBus:
        """Another handle on this bus's topics, groups and pending messages.

        It has this bus's config, a consumer name of its own, and its own ``close()``: closing
        one handle ends its subscriptions and requests, not the others'.

        Raises:
            BusClosed: If this handle is closed.
        """
        self._check_open()
        other = InProcessBus(self.config)
        other._broker = self._broker
        return other

    # ------------------------------------------------------------------------------ wakeups
    def _notify(self) -> None:
        broker = self._broker
        if broker.wakeup is not None:
            broker.wakeup.set()
            broker.wakeup = None

    async def _wait(self, timeout: float) -> None:
        """Wait until the state changes (publish, ack, nack, close) or ``timeout`` passes."""
        broker = self._broker
        if broker.wakeup is None:
            broker.wakeup = asyncio.Event()
        wakeup = broker.wakeup
        try:
            async with asyncio.timeout(max(timeout, 0.0)):  # not wait_for: it can lose a cancel
                await wakeup.wait()
        except TimeoutError:
            pass

    @property
    def _topics(self) -> dict[str, _Topic]:
        return self._broker.topics

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic()
        return topic

    def _append(self, topic_name: str, data: str, headers: dict[str, str]) -> Message:
        topic = self._topic(topic_name)
        stored = _Stored(topic.next_offset, new_message_id(), data, headers, time.time())
        topic.log.append(stored)
        topic.next_offset += 1
        while len(topic.log) > self.config.max_len:
            topic.log.popleft()
        self._notify()
        return stored.message(topic_name)

    # ------------------------------------------------------------------------------ publish
    async def _publish(self, topic: str, data: str, headers: dict[str, str]) -> Message:
        limit = self.config.limit_for(topic)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.publish_timeout
        while True:
            self._check_open()
            group, backlog = self._topic(topic).backlog()
            if backlog < limit:
                return self._append(topic, data, headers)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BusFull(topic, group, backlog, limit, self.config.publish_timeout)
            await self._wait(remaining)

    # ------------------------------------------------------------------------ request/reply
    async def _open_reply_box(self, reply_to: str) -> None:
        self._broker.replies[reply_to] = asyncio.get_running_loop().create_future()
        self._boxes.add(reply_to)

    async def _await_reply(self, reply_to: str, timeout: float) -> Message | None:
        future = self._broker.replies[reply_to]
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            self._check_open()
            return None

    async def _close_reply_box(self, reply_to: str) -> None:
        self._boxes.discard(reply_to)
        future = self._broker.replies.pop(reply_to, None)
        if future is None:
            return
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # mark a BusClosed set by close() as retrieved

    async def _post_reply(self, reply_to: str, data: str, headers: dict[str, str]) -> Message:
        stored = _Stored(0, new_message_id(), data, headers, time.time())
        message = stored.message(reply_to)
        future = self._broker.replies.get(reply_to)
        if future is None or future.done():
            _log.debug("discarding reply on %s: the requester stopped waiting", reply_to)
        else:
            future.set_result(message)
        return message

    # ---------------------------------------------------------------------------- consuming
    async def ensure_group(self, topic: str, group: str) -> None:
        self._check_open()
        self._ensure(check_name("topic", topic), check_name("group", group))

    def _ensure(self, topic_name: str, group: str) -> _Group:
        topic = self._topic(topic_name)
        found = topic.groups.get(group)
        if found is None:
            found = topic.groups[group] = _Group(cursor=topic.first_offset)
        return found

    async def fetch(
        self,
        topic: str,
        group: str,
        *,
        consumer: str | None = None,
        max_messages: int = 1,
        timeout: float = 0.0,
    ) -> list[Message]:
        self._check_open()
        check_name("topic", topic)
        check_name("group", group)
        consumer = check_name("consumer", consumer or self.consumer_name)
        self._check_fetch_args(max_messages, timeout)
        state = self._ensure(topic, group)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            out = self._take(topic, group, state, consumer, max_messages, loop.time())
            now = loop.time()
            if out or now >= deadline or self._closed:
                return out
            next_due = min((d.due for d in state.pending.values()), default=deadline)
            await self._wait(min(deadline, next_due) - now)

    def _take(
        self, topic_name: str, group: str, state: _Group, consumer: str, limit: int, now: float
    ) -> list[Message]:
        topic = self._topics[topic_name]
        out: list[Message] = []
        for offset, delivery in list(state.pending.items()):
            if len(out) >= limit:
                return out
            if delivery.due > now:
                continue
            stored = topic.get(offset)
            if stored is None:  # trimmed by retention (only possible on dead-letter topics)
                del state.pending[offset]
                continue
            if delivery.count >= self.config.max_deliveries:
                self._dead_letter(topic_name, group, state, stored, delivery.count, "ack timeout")
                continue
            delivery.consumer, delivery.count = consumer, delivery.count + 1
            delivery.due = now + self.config.ack_timeout
            out.append(self._delivered(topic_name, group, stored, delivery))
        state.cursor = max(state.cursor, topic.first_offset)
        while len(out) < limit and state.cursor < topic.next_offset:
            stored = topic.get(state.cursor)
            assert stored is not None
            delivery = _Delivery(consumer, 1, now + self.config.ack_timeout)
            state.pending[state.cursor] = delivery
            state.cursor += 1
            out.append(self._delivered(topic_name, group, stored, delivery))
        return out

    @staticmethod
    def _delivered(topic: str, group: str, stored: _Stored, delivery: _Delivery) -> Message:
        return stored.message(
            topic, group=group, consumer=delivery.consumer, delivery_count=delivery.count
        )

    def _dead_letter(
        self, topic: str, group: str, state: _Group, stored: _Stored, count: int, reason: str
    ) -> None:
        original = stored.message(topic)
        headers = dead_letter_headers(original, group, reason, count)
        self._append(topic + DEAD_LETTER_SUFFIX, stored.data, headers)
        del state.pending[stored.offset]
        self._notify()

    def _pending(self, message: Message, action: str) -> tuple[_Group, _Delivery] | None:
        self._check_open()
        group = self._check_delivered(message, action)
        topic = self._topics.get(message.topic)
        state = topic.groups.get(group) if topic else None
        delivery = state.pending.get(message.offset) if state else None
        return (state, delivery) if state and delivery else None

    async def ack(self, message: Message) -> None:
        found = self._pending(message, "ack")
        if found is not None:
            del found[0].pending[message.offset]
            self._notify()

    async def nack(self, message: Message, reason: str = "nacked") -> None:
        found = self._pending(message, "nack")
        if found is None:
            return
        state, delivery = found
        if delivery.count >= self.config.max_deliveries:
            stored = self._topics[message.topic].get(message.offset)
            assert stored is not None, "a pending message is always retained"
            assert message.group is not None
            self._dead_letter(message.topic, message.group, state, stored, delivery.count, reason)
        else:
            delivery.due = 0.0
            self._notify()

    # ------------------------------------------------------------------------------- replay
    async def replay(self, topic: str, from_offset: int = 0) -> AsyncIterator[Message]:
        self._check_open()
        check_name("topic", topic)
        if from_offset < 0:
            raise ValueError(f"from_offset must be >= 0, got {from_offset!r}")
        state = self._topics.get(topic)
        if state is None:
            return
        end = state.next_offset
        offset = max(from_offset, state.first_offset)
        while offset < end:
            self._check_open()
            stored = state.get(offset)
            if stored is None:  # trimmed while we were yielding
                offset = state.first_offset
                continue
            yield stored.message(topic)
            offset += 1

    # ---------------------------------------------------------------------------- lifecycle
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for reply_to in self._boxes:
            future = self._broker.replies[reply_to]
            if not future.done():
                future.set_exception(BusClosed("InProcessBus was closed while awaiting a reply"))
        self._notify()
