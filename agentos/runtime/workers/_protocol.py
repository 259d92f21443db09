"""What kernels and workers say to each other over Redis, and the journal they share.

A syscall sent to the workers is a bus request on topic ``syscalls.<kind>`` (``llm``, ``tool``,
``memory``), consumer group ``workers``, with payload::

    {"key": idempotency key, "kind": ..., "resource": pool name, "est_tokens": int,
     "timeout": seconds, "body": {...}}

and the reply is ``{"ok": true, "value": ..., "worker": id}`` or ``{"ok": false, "error":
{"type", "message", "transient", "status"}, "worker": id}``.

The **journal** (a Redis hash per idempotency key) is how a syscall completes once: a worker
marks the key ``running`` before it starts, stores the reply and marks it ``done`` before it
replies and acks. A redelivered syscall whose key is ``done`` is answered from the journal and
not run again, so a worker killed after the work finished (before its reply or ack) repeats no
side effect. A worker killed *while* the work runs leaves the key ``running``: the next worker
runs it again (the journal counts the ``starts``), since nothing can know how far the dead
one got.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from agentos import errors
from agentos.runtime.llm.types import Completion, ToolCall

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = [
    "BUS_PREFIX",
    "GROUP",
    "JOURNAL_PREFIX",
    "KINDS",
    "WORKERS_KEY",
    "Journal",
    "decode_value",
    "encode_error",
    "encode_value",
    "raise_error",
    "topic",
]

KINDS = ("llm", "tool", "memory")
GROUP = "workers"
BUS_PREFIX = "agentos:syscalls:"
JOURNAL_PREFIX = "agentos:journal:"
WORKERS_KEY = "agentos:workers"
"""Hash: worker id -> JSON heartbeat (pid, host, started, seen, running, done, failed)."""


def topic(kind: str) -> str:
    """The topic syscalls of ``kind`` are sent to."""
    return f"syscalls.{kind}"


# --- values -------------------------------------------------------------------------------------


def encode_value(value: Any) -> dict[str, Any]:
    """A syscall's result as JSON: a `Completion`, memory `Hit` lists, or plain JSON values."""
    from agentos.runtime.memory.store import Hit

    if isinstance(value, Completion):
        data = dataclasses.asdict(value)
        return {"type": "completion", "data": data}
    if isinstance(value, list) and value and all(isinstance(v, Hit) for v in value):
        return {"type": "hits", "data": [dataclasses.asdict(v) for v in value]}
    json.dumps(value)  # a TypeError here names what cannot be sent
    return {"type": "json", "data": value}


def decode_value(encoded: dict[str, Any]) -> Any:
    """The inverse of `encode_value`."""
    kind, data = encoded["type"], encoded["data"]
    if kind == "completion":
        calls = [ToolCall(**c) for c in data.pop("tool_calls")]
        return Completion(tool_calls=calls, **data)
    if kind == "hits":
        from agentos.runtime.memory.store import Hit

        return [Hit(**h) for h in data]
    return data


def encode_error(error: BaseException) -> dict[str, Any]:
    """An exception as JSON: its class name, message, and ProviderError's transient/status."""
    return {
        "type": type(error).__name__,
        "message": str(error),
        "transient": bool(getattr(error, "transient", False)),
        "status": getattr(error, "status", None),
    }


def raise_error(error: dict[str, Any], worker: str) -> None:
    """Raise the agentos error a worker reported (same class when agentos has it).

    Raises:
        ProviderError: keeps ``transient`` and ``status``, so the kernel's retries and fallbacks
            work as in-process.
        RunError: for an error class agentos does not define (the message names it).
    """
    name, message = str(error["type"]), str(error["message"])
    cls = getattr(errors, name, None)
    where = f" (on worker {worker})"
    if cls is errors.ProviderError:
        raise errors.ProviderError(message + where, transient=bool(error["transient"]),
                                   status=error["status"])
    if cls is errors.BudgetExceeded:
        raise errors.RunError(message + where)
    if isinstance(cls, type) and issubclass(cls, errors.AgentosError):
        try:
            raise cls(message + where)
        except TypeError:  # a constructor with other arguments
            pass
    raise errors.RunError(f"{name}: {message}{where}")


# --- journal ------------------------------------------------------------------------------------

# KEYS[1]: journal hash. ARGV: worker, ttl_s, lease_ms. Returns {'done', reply} when done,
# {'busy'} while another worker runs it under an unexpired lease, else marks it running by this
# worker until now + lease (counting the start) and returns {'go'}.
_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'state', 'worker', 'until', 'reply')
if v[1] == 'done' then return {'done', v[4]} end
if v[1] == 'running' and v[2] ~= ARGV[1] and tonumber(v[3]) > now then return {'busy'} end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'until', now + ARGV[3])
redis.call('HINCRBY', KEYS[1], 'starts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'go'}
"""

# KEYS[1]: journal hash. ARGV: worker, lease_ms. Extends this worker's running lease.
_RENEW = """
local v = redis.call('HMGET', KEYS[1], 'state', 'worker')
if v[1] ~= 'running' or v[2] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'until', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
           + ARGV[2])
return 1
"""

# KEYS[1]: journal hash. ARGV: reply JSON, worker, ttl_s. Keeps the first reply stored.
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'reply', ARGV[1], 'worker', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Journal:
    """Which syscalls (by idempotency key) ran and what they answered; kept in Redis.

    Args:
        redis: An async redis-py client with ``decode_responses=True``.
        ttl: Seconds an entry is kept after its last change (a day by default).
    """

    def __init__(self, redis: aioredis.Redis, *, ttl: int = 86_400) -> None:
        self._redis = redis
        self._ttl = ttl
        self._begin = redis.register_script(_BEGIN)
        self._renew = redis.register_script(_RENEW)
        self._finish = redis.register_script(_FINISH)

    async def begin(self, key: str, worker: str, lease: float) -> tuple[str, dict[str, Any] | None]:
        """Claim ``key`` for ``worker`` for ``lease`` seconds.

        Returns:
            ``("done", reply)`` when it already completed; ``("busy", None)`` while another
            worker holds it under an unexpired lease; else ``("go", None)``: run it.
        """
        result = await self._begin(keys=[JOURNAL_PREFIX + key],
                                   args=[worker, self._ttl, int(lease * 1000)])
        state = str(result[0])
        return state, (dict(json.loads(result[1])) if state == "done" else None)

    async def renew(self, key: str, worker: str, lease: float) -> None:
        """Extend ``worker``'s claim on ``key`` (nothing if it no longer holds it)."""
        await self._renew(keys=[JOURNAL_PREFIX + key], args=[worker, int(lease * 1000)])

    async def finish(self, key: str, reply: dict[str, Any], worker: str) -> bool:
        """Store ``reply`` as the outcome of ``key``; False when another worker finished it."""
        done = await self._finish(keys=[JOURNAL_PREFIX + key],
                                  args=[json.dumps(reply), worker, self._ttl])
        return bool(done)

    async def entry(self, key: str) -> dict[str, str]:
        """The raw entry of ``key``: ``state``, ``worker``, ``starts``, ``reply``."""
        return dict(await self._redis.hgetall(JOURNAL_PREFIX + key))
