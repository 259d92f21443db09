"""The message bus interface every backend implements, its `Message`, config and errors.

Semantics shared by all backends (one contract suite, ``tests/runtime/bus/test_contract.py``,
runs unchanged against each of them):

* **Topics and offsets.** ``publish`` appends a message to a topic and returns it with a unique
  ``id`` and a per-topic ``offset`` (0, 1, 2, ... in publish order).
* **Consumer groups.** Every group of a topic receives every message (publish/subscribe);
  inside a group each message is delivered to one consumer at a time (competing consumers). A
  group is created on first use (``ensure_group``, ``fetch``, ``subscribe``) and starts at the
  oldest message the topic still retains, so nothing published before the first consumer
  attached is missed.
* **At-least-once.** A delivered message stays *pending* in its group until ``ack``. If it is
  not acked within ``ack_timeout`` seconds it is delivered again (to any consumer of the group)
  with ``delivery_count`` incremented; ``nack`` makes it deliverable again at once.
* **Dead letters.** A message that has been delivered ``max_deliveries`` times without an ack is
  published to ``"<topic>.dead"`` (same payload; the original headers plus ``dead_letter.*``
  headers giving the reason, delivery count, source topic, group, offset and message id) and is
  acked in its source group.
* **Request/reply.** ``request`` publishes with ``correlation_id`` and ``reply_to`` headers and
  waits for the ``reply`` carrying the same correlation id, or raises `RequestTimeout`.
* **Replay.** ``replay`` yields the retained messages of a topic from an offset, in order. A topic
  retains its newest ``max_len`` messages.
* **Backpressure.** The *backlog* of a topic is, over its consumer groups, the largest number of
  messages from a group's oldest unacknowledged message (delivered or not) to the newest
  message: ``newest_offset - oldest_unacked_offset + 1``. ``publish`` admits a message only
  while the backlog is below ``max_pending``; otherwise it waits up to ``publish_timeout``
  seconds for consumers to ack, then raises `BusFull`. Because ``max_pending <= max_len`` is
  enforced, retention never trims a message some group has not acked. A topic without consumer
  groups is a plain log: it is never full, and it keeps its newest ``max_len`` messages.
  Dead-letter topics are written without waiting for room (a consumer must never block on them).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from agentos.errors import AgentosError, ConfigError, RunError, UserError

__all__ = [
    "CORRELATION_ID",
    "DEAD_LETTER_SUFFIX",
    "REPLY_TO",
    "Bus",
    "BusClosed",
    "BusConfig",
    "BusError",
    "BusFull",
    "BusUnavailable",
    "Message",
    "PayloadError",
    "RequestTimeout",
    "Subscription",
]

CORRELATION_ID = "correlation_id"
"""Header that ties a reply to its request."""
REPLY_TO = "reply_to"
"""Header naming the topic a request's reply goes to."""
DEAD_LETTER_SUFFIX = ".dead"
"""Dead letters of topic ``t`` are published to ``t + DEAD_LETTER_SUFFIX``."""

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}$")
_REPLY_PREFIX = "_reply."


# --------------------------------------------------------------------------------------- errors
class BusError(AgentosError):
    """Base class of every error the message bus raises (besides ``ValueError`` for bad
    arguments and `ConfigError` for a bad `BusConfig`)."""


class BusClosed(BusError, UserError):
    """The bus was used after ``close()``."""


class PayloadError(BusError, UserError, TypeError):
    """A payload or headers value cannot be sent (not a JSON-serialisable dict / str headers)."""


class BusFull(BusError, RunError):
    """``publish`` found no room in a topic within ``publish_timeout``.

    Attributes:
        topic: The topic that is full.
        group: The slowest consumer group (the one holding the backlog).
        pending: That group's backlog when the publish gave up.
        limit: The topic's ``max_pending``.
    """

    def __init__(self, topic: str, group: str, pending: int, limit: int, waited: float) -> None:
        self.topic = topic
        self.group = group
        self.pending = pending
        self.limit = limit
        super().__init__(
            f"topic {topic!r} is full: consumer group {group!r} has {pending} unacknowledged "
            f"messages (max_pending={limit}) and no room was made within {waited:g}s. Add "
            f"consumers to group {group!r} or make them ack faster, or raise the limit "
            f"(BusConfig(max_pending=..., max_pending_per_topic={{{topic!r}: ...}}) and "
            f"publish_timeout=...)."
        )


class BusUnavailable(BusError, RunError):
    """The service behind the bus (e.g. Redis) cannot be reached, or stopped answering.

    Raised by any operation that needs the service, after the client's own retries. The bus
    stays usable: it reconnects on its next operation once the service is back. What was
    published before the outage is kept by the service (across a restart if it persists
    data); messages delivered but not acked are delivered again after ``ack_timeout``. An
    operation that raised this may or may not have taken effect (a publish may have been
    written): retrying it is safe under at-least-once delivery, a duplicate keeps its ``id``.

    Attributes:
        url: Where the service was expected (password masked).
    """

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


class RequestTimeout(BusError, RunError, TimeoutError):
    """``request`` got no reply within its timeout.

    Attributes:
        topic: The topic the request was published to.
        timeout: The timeout in seconds.
        correlation_id: The request's correlation id.
    """

    def __init__(self, topic: str, timeout: float, correlation_id: str) -> None:
        self.topic = topic
        self.timeout = timeout
        self.correlation_id = correlation_id
        super().__init__(
            f"no reply to the request on topic {topic!r} within {timeout:g}s "
            f"(correlation_id={correlation_id}). Is a consumer group reading {topic!r} and "
            f"answering with bus.reply(message, payload)?"
        )


# --------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BusConfig:
    """Limits and timeouts of a bus, validated when built.

    Attributes:
        ack_timeout: Seconds a delivered message may stay unacked before it is redelivered.
        max_deliveries: Deliveries without an ack after which a message is dead-lettered.
        max_len: Messages a topic retains (for replay and for pending deliveries).
        max_pending: Default backlog limit of a topic (see the module docstring).
        max_pending_per_topic: Per-topic overrides of ``max_pending``.
        publish_timeout: Seconds ``publish`` waits for room before raising `BusFull`.
        reply_ttl: Seconds a reply is kept for a requester that may still read it.

    Raises:
        ConfigError: If a value is out of range, or a ``max_pending`` exceeds ``max_len``.
    """

    ack_timeout: float = 30.0
    max_deliveries: int = 5
    max_len: int = 10_000
    max_pending: int = 1_000
    max_pending_per_topic: Mapping[str, int] = field(default_factory=dict)
    publish_timeout: float = 5.0
    reply_ttl: float = 60.0

    def __post_init__(self) -> None:
        checks = [
            ("ack_timeout", self.ack_timeout > 0, "must be > 0 seconds"),
            ("max_deliveries", self.max_deliveries >= 1, "must be >= 1"),
            ("max_len", self.max_len >= 1, "must be >= 1"),
            ("publish_timeout", self.publish_timeout >= 0, "must be >= 0 seconds"),
            ("reply_ttl", self.reply_ttl > 0, "must be > 0 seconds"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(name, f"{rule}, got {getattr(self, name)!r}")
        limits = {"max_pending": self.max_pending} | {
            f"max_pending_per_topic[{t!r}]": n for t, n in self.max_pending_per_topic.items()
        }
        for name, n in limits.items():
            if not 1 <= n <= self.max_len:
                raise ConfigError(
                    name,
                    f"{n} must be between 1 and max_len={self.max_len}: retention must hold "
                    f"every unacknowledged message. Raise max_len or lower {name}.",
                )

    def limit_for(self, topic: str) -> int:
        """The backlog limit (``max_pending``) of ``topic``."""
        return self.max_pending_per_topic.get(topic, self.max_pending)


# -------------------------------------------------------------------------------------- message
@dataclass(frozen=True)
class Message:
    """One message of a topic, as published, replayed or delivered.

    Attributes:
        topic: The topic it was published to.
        offset: Its position in the topic: 0, 1, 2, ... in publish order.
        id: A unique id (uuid4 hex).
        payload: The JSON-serialisable dict that was published (a fresh copy per delivery).
        headers: String headers (``correlation_id``, ``reply_to``, ``dead_letter.*``, yours).
        timestamp: Publish time, seconds since the epoch.
        group: The consumer group it was delivered to; ``None`` unless delivered.
        consumer: The consumer it was delivered to; ``None`` unless delivered.
        delivery_count: 1 on first delivery, incremented on each redelivery; 0 unless delivered.
    """

    topic: str
    offset: int
    id: str
    payload: dict[str, Any]
    headers: dict[str, str]
    timestamp: float
    group: str | None = None
    consumer: str | None = None
    delivery_count: int = 0

    @property
    def correlation_id(self) -> str | None:
        """The ``correlation_id`` header, if any."""
        return self.headers.get(CORRELATION_ID)

    @property
    def reply_to(self) -> str | None:
        """The ``reply_to`` header, if any (set on requests)."""
        return self.headers.get(REPLY_TO)


# ----------------------------------------------------------------------------------- validation
def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid topic/group/consumer name, else raise ``ValueError``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-200 characters from letters, digits and "
            f"'_.:-', not starting with '.', ':' or '-'"
        )
    return name


def encode_payload(topic: str, payload: object) -> str:
    """Serialise a payload to JSON, refusing anything that is not a JSON-serialisable dict.

    Raises:
        PayloadError: If ``payload`` is not a dict or cannot be serialised to strict JSON.
    """
    if not isinstance(payload, dict):
        raise PayloadError(
            f"payload for topic {topic!r} must be a dict, got {type(payload).__name__}; "
            f"wrap it, e.g. {{'value': ...}}"
        )
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"payload for topic {topic!r} is not JSON-serialisable ({exc}); send only dicts, "
            f"lists, str, int, finite float, bool and None"
        ) from exc


def check_headers(topic: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    """Copy headers into a dict, refusing non-string keys or values.

    Raises:
        PayloadError: If a key or value is not a ``str``.
    """
    out: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PayloadError(
                f"headers for topic {topic!r} must map str to str, got {key!r}: {value!r}"
            )
        out[key] = value
    return out


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if this task was cancelled but the cancellation got lost.

    On Python 3.11, ``asyncio.wait_for`` (used inside redis-py) drops a cancellation that
    arrives just as its inner future completes; polling loops call this after each wait so a
    cancelled consumer task still stops.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def new_message_id() -> str:
    """A fresh message id."""
    return uuid.uuid4().hex


def dead_letter_headers(
    message: Message, group: str, reason: str, delivery_count: int
) -> dict[str, str]:
    """The headers of the dead letter for ``message`` (original headers + ``dead_letter.*``)."""
    return message.headers | {
        "dead_letter.reason": reason,
        "dead_letter.delivery_count": str(delivery_count),
        "dead_letter.topic": message.topic,
        "dead_letter.group": group,
        "dead_letter.offset": str(message.offset),
        "dead_letter.message_id": message.id,
    }


# ------------------------------------------------------------------------------------ interface
class Bus(ABC):
    """A message bus: topics, consumer groups, at-least-once delivery, request/reply, replay.

    Use it as an async context manager, or call ``close()``. Every method raises `BusClosed`
    once the bus is closed. Names of topics, groups and consumers are 1-200 characters from
    letters, digits and ``_.:-``; a bad name raises ``ValueError``. A backend that relies on a
    service (Redis) raises `BusUnavailable` from any method that needs it while it is down.
    """

    def __init__(self, config: BusConfig | None = None) -> None:
        self.config = config or BusConfig()
        self.consumer_name = f"c-{uuid.uuid4().hex[:12]}"
        """Consumer name used when ``fetch``/``subscribe`` are given none."""
        self._closed = False

    # ---------------------------------------------------------------- publish / request / reply
    async def publish(
        self, topic: str, payload: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Message:
        """Append a message to ``topic``.

        Args:
            topic: Topic name.
            payload: A JSON-serialisable dict.
            headers: Optional ``str -> str`` headers.

        Returns:
            The stored message, with its ``id`` and ``offset``.

        Raises:
            PayloadError: If the payload or headers cannot be sent; nothing is written.
            BusFull: If the topic's backlog stays at ``max_pending`` for ``publish_timeout``
                seconds; nothing is written.
            BusClosed: If the bus is closed.
            ValueError: If ``topic`` is not a valid name.
        """
        self._check_open()
        check_name("topic", topic)
        data = encode_payload(topic, payload)
        return await self._publish(topic, data, check_headers(topic, headers))

    async def publish_many(
        self, topic: str, payloads: list[dict[str, Any]],
        headers: Mapping[str, str] | None = None,
    ) -> list[Message]:
        """Append several messages to ``topic`` (the same ``headers`` on each), in order.

        Each message is admitted by backpressure as `publish` admits one. A backend may send
        the batch in one round trip (Redis: one script); when backpressure refuses part of a
        batch, the refused messages are published again one by one, so they may land after
        later messages of the same batch.

        Returns:
            The stored messages, in the order of ``payloads``.

        Raises:
            PayloadError: If a payload or the headers cannot be sent; nothing is written.
            BusFull, BusClosed, ValueError: As for `publish`; messages before the failing
                one may have been written.
        """
        self._check_open()
        check_name("topic", topic)
        data = [encode_payload(topic, payload) for payload in payloads]
        return await self._publish_many(topic, data, check_headers(topic, headers))

    async def _publish_many(self, topic: str, data: list[str],
                            headers: dict[str, str]) -> list[Message]:
        """Append each of ``data``; backends that can batch override this."""
        return [await self._publish(topic, one, headers) for one in data]

    async def request(
        self,
        topic: str,
        payload: dict[str, Any],
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Publish a request and wait for its reply.

        The request carries ``correlation_id`` and ``reply_to`` headers; a consumer answers
        with `reply`. ``timeout`` covers the wait for the reply (``publish`` itself may wait
        up to ``publish_timeout`` for room first).

        Returns:
            The reply message (its ``correlation_id`` equals the request's).

        Raises:
            RequestTimeout: If no reply arrives within ``timeout`` seconds (a ``TimeoutError``).
            ValueError: If ``timeout`` is not positive or ``topic`` is not a valid name.
            PayloadError, BusFull, BusClosed: As for `publish`.
        """
        if not timeout > 0:
            raise ValueError(f"request timeout must be > 0 seconds, got {timeout!r}")
        correlation_id = new_message_id()
        reply_to = f"{_REPLY_PREFIX}{correlation_id}"
        request_headers = check_headers(topic, headers) | {
            CORRELATION_ID: correlation_id,
            REPLY_TO: reply_to,
        }
        await self._open_reply_box(reply_to)
        try:
            await self.publish(topic, payload, request_headers)
            reply = await self._await_reply(reply_to, timeout)
        finally:
            await self._close_reply_box(reply_to)
        if reply is None:
            raise RequestTimeout(topic, timeout, correlation_id)
        return reply

    async def reply(
        self,
        request: Message,
        payload: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Answer a request received from this bus (it does not ack the request).

        Returns:
            The reply message. A reply to a requester that already timed out is discarded.

        Raises:
            ValueError: If ``request`` has no ``reply_to`` / ``correlation_id`` header.
            PayloadError, BusClosed: As for `publish`.
        """
        self._check_open()
        reply_to, correlation_id = request.reply_to, request.correlation_id
        if reply_to is None or correlation_id is None:
            raise ValueError(
                f"message {request.id} on topic {request.topic!r} is not a request (it has no "
                f"{REPLY_TO!r}/{CORRELATION_ID!r} headers); send requests with bus.request(...)"
            )
        check_name("reply_to topic", reply_to)
        data = encode_payload(reply_to, payload)
        reply_headers = check_headers(reply_to, headers) | {CORRELATION_ID: correlation_id}
        return await self._post_reply(reply_to, data, reply_headers)

    # -------------------------------------------------------------------------------- consuming
    def subscribe(self, topic: str, group: str, consumer: str | None = None) -> Subscription:
        """A consumer of ``group`` on ``topic``: an async iterator of messages, and ``fetch``.

        Iteration waits for the next message and ends when the subscription or bus is closed.
        Each yielded message must be acked (or nacked).

        Raises:
            ValueError: If a name is invalid.
            BusClosed: If the bus is closed.
        """
        self._check_open()
        check_name("topic", topic)
        check_name("group", group)
        consumer = check_name("consumer", consumer or self.consumer_name)
        return Subscription(self, topic, group, consumer)

    @abstractmethod
    async def ensure_group(self, topic: str, group: str) -> None:
        """Create consumer group ``group`` on ``topic`` if it does not exist (idempotent).

        A new group starts at the oldest retained message. Create groups before publishing
        when backpressure must count them from the first message.

        Raises:
            ValueError: If a name is invalid.
            BusClosed: If the bus is closed.
        """

    @abstractmethod
    async def fetch(
        self,
        topic: str,
        group: str,
        *,
        consumer: str | None = None,
        max_messages: int = 1,
        timeout: float = 0.0,
    ) -> list[Message]:
        """Receive up to ``max_messages`` messages for ``consumer`` of ``group``.

        Messages due for redelivery (ack timeout expired, or nacked) come first, then new ones.
        A message redelivered after ``max_deliveries`` deliveries is dead-lettered instead.

        Args:
            topic: Topic name.
            group: Consumer group (created on first use).
            consumer: Consumer name; defaults to ``self.consumer_name``.
            max_messages: At most this many messages are returned.
            timeout: Seconds to wait when none is ready; 0 returns at once.

        Returns:
            The delivered messages, possibly empty (timeout, or the bus closed meanwhile).

        Raises:
            ValueError: If a name is invalid, ``max_messages < 1`` or ``timeout < 0``.
            BusClosed: If the bus is closed when called.
        """

    @abstractmethod
    async def ack(self, message: Message) -> None:
        """Acknowledge a delivered message so its group never delivers it again.

        Acking a message that is no longer pending (already acked, dead-lettered) does nothing.

        Raises:
            ValueError: If ``message`` was not delivered through a consumer group.
            BusClosed: If the bus is closed.
        """

    async def ack_many(self, messages: list[Message]) -> None:
        """`ack` each of ``messages`` (a backend may do it in one round trip: Redis does).

        Raises:
            ValueError: If one was not delivered through a consumer group; none is acked.
            BusClosed: If the bus is closed.
        """
        for message in messages:
            self._check_delivered(message, "ack")
        for message in messages:
            await self.ack(message)

    @abstractmethod
    async def nack(self, message: Message, reason: str = "nacked") -> None:
        """Give a delivered message back for prompt redelivery to the group.

        If it has already been delivered ``max_deliveries`` times it is dead-lettered now,
        with ``reason``. Nacking a message that is no longer pending does nothing.

        Raises:
            ValueError: If ``message`` was not delivered through a consumer group.
            BusClosed: If the bus is closed.
        """

    # ---------------------------------------------------------------------------------- replay
    @abstractmethod
    def replay(self, topic: str, from_offset: int = 0) -> AsyncIterator[Message]:
        """Yield the retained messages of ``topic`` with ``offset >= from_offset``, in order.

        Only messages published before iteration starts are yielded; the iterator does not
        wait for new ones, and it consumes nothing (groups are unaffected). Offsets older than
        the retention window (``max_len``) are gone: the iterator starts at the oldest retained
        message, whose ``offset`` shows the gap. An unknown topic yields nothing.

        Raises:
            ValueError: If ``from_offset < 0`` or ``topic`` is not a valid name (raised by the
                first step of the iteration, like every error of an async generator).
            BusClosed: If the bus is closed.
        """

    # ------------------------------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @abstractmethod
    async def close(self) -> None:
        """Close the bus (idempotent). Pending fetches return what they have."""

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------ backend hooks
    @abstractmethod
    async def _publish(self, topic: str, data: str, headers: dict[str, str]) -> Message:
        """Append validated JSON ``data``, applying backpressure."""

    @abstractmethod
    async def _open_reply_box(self, reply_to: str) -> None:
        """Prepare to receive the reply on ``reply_to``."""

    @abstractmethod
    async def _await_reply(self, reply_to: str, timeout: float) -> Message | None:
        """Wait for the reply on ``reply_to``; ``None`` on timeout."""

    @abstractmethod
    async def _close_reply_box(self, reply_to: str) -> None:
        """Forget ``reply_to`` (idempotent); a later reply is discarded."""

    @abstractmethod
    async def _post_reply(self, reply_to: str, data: str, headers: dict[str, str]) -> Message:
        """Deliver a reply (no backpressure; kept ``reply_ttl`` seconds at most)."""

    # ------------------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise BusClosed(f"{type(self).__name__} is closed")

    @staticmethod
    def _check_delivered(message: Message, action: str) -> str:
        if message.group is None:
            raise ValueError(
                f"cannot {action} message {message.id} of topic {message.topic!r}: it was not "
                f"delivered through a consumer group (use fetch or subscribe)"
            )
        return message.group

    @staticmethod
    def _check_fetch_args(max_messages: int, timeout: float) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages!r}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")


class Subscription:
    """A consumer of one group on one topic; made by `Bus.subscribe`.

    ``async for message in subscription`` waits for messages one at a time and stops when the
    subscription or its bus is closed. ``fetch`` receives a batch.
    """

    _POLL = 1.0  # seconds per wait while iterating; close() is noticed within this

    def __init__(self, bus: Bus, topic: str, group: str, consumer: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._closed = False

    async def fetch(self, max_messages: int = 1, timeout: float = 0.0) -> list[Message]:
        """`Bus.fetch` for this subscription's topic, group and consumer."""
        return await self.bus.fetch(
            self.topic,
            self.group,
            consumer=self.consumer,
            max_messages=max_messages,
            timeout=timeout,
        )

    def close(self) -> None:
        """Stop iteration after the current wait; pending messages stay pending."""
        self._closed = True

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while not (self._closed or self.bus.closed):
            try:
                batch = await self.fetch(1, timeout=self._POLL)
            except BusClosed:
                break
            raise_if_cancelled()
            if batch:
                return batch[0]
        raise StopAsyncIteration
