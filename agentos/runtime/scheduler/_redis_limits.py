"""Limits shared by every process that points at one Redis: concurrency, RPM/TPM and budgets.

The in-process scheduler keeps a pool's token buckets and slot count in its own memory, so four
processes under a 60 RPM limit would make 240 requests a minute. `RedisLimits` keeps them in
Redis instead, and every decision is one Lua script, so it is atomic across processes:

* **Concurrency.** A pool's running syscalls are members of a sorted set scored by their lease
  expiry (``<prefix>{resource}:slots``). A slot is taken only while fewer than
  ``max_concurrency`` unexpired members exist. A holder renews its lease while it runs; a
  process killed mid-syscall stops renewing and its slot frees itself when the lease expires.
* **RPM / TPM.** Token buckets (``<prefix>{resource}:rpm`` / ``:tpm``, hashes of level and
  last refill) refilled on Redis' own clock (``TIME``), so the processes' clocks need not
  agree. A syscall is admitted when the slot and both buckets allow it, all in one script; it
  takes one request and its token estimate, and `settle_tokens` charges the difference
  between estimate and use afterwards (the level may go negative: a debt repaid by refill).
* **Budgets.** A run's (or an agent's) tokens and cost live in a hash
  (``<prefix>budget:{scope}``): `reserve` admits a syscall only while used + reserved + its
  estimate fit the token budget and the cost used is below the cost budget, and reserves the
  estimate; `settle` swaps the reservation for what was used.

A waiter blocked by concurrency is woken by a Pub/Sub message when any process releases a slot
(it also re-checks every ``poll`` seconds, so a lost message only costs latency).

Selected by configuration: ``limits_url = "redis://host:6379/0"`` (``AGENTOS_LIMITS_URL``) makes
the kernel build its scheduler with ``Scheduler(limits=RedisLimits(url))``; the default
``memory://`` keeps the in-process buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentos.errors import BudgetExceeded

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from agentos.runtime.scheduler._limits import Budget
    from agentos.runtime.scheduler._loop import PoolConfig

__all__ = ["Permit", "RedisLimits"]

# KEYS: slots zset, rpm hash, tpm hash. ARGV: max_concurrency, rpm (0: none), tpm (0: none),
# est_tokens, holder, lease_ms. Returns {1} when admitted, else {0, wait_ms} (-1: wait for a
# slot to be released).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxc, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local est = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= maxc then return {0, -1} end
local function level(key, limit)
  local v = redis.call('HMGET', key, 'level', 'updated')
  local lv, up = tonumber(v[1]), tonumber(v[2])
  if lv == nil then return limit end
  if now > up then lv = math.min(limit, lv + (now - up) * limit / 60000) end
  return lv
end
local wait = 0
local rl, tl = 0, 0
if rpm > 0 then
  rl = level(KEYS[2], rpm)
  if rl < 1 then wait = math.max(wait, (1 - rl) * 60000 / rpm) end
end
if tpm > 0 and est > 0 then
  tl = level(KEYS[3], tpm)
  local need = math.min(est, tpm) - tl
  if need > 0 then wait = math.max(wait, need * 60000 / tpm) end
end
if wait > 0 then return {0, math.ceil(wait)} end
if rpm > 0 then redis.call('HSET', KEYS[2], 'level', rl - 1, 'updated', now) end
if tpm > 0 and est > 0 then redis.call('HSET', KEYS[3], 'level', tl - est, 'updated', now) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[5])
return {1}
"""

# KEYS: slots zset. ARGV: holder, channel. Frees the slot and wakes the waiters.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('PUBLISH', ARGV[2], KEYS[1]) end
return 1
"""

# KEYS: slots zset. ARGV: lease_ms, holder... Pushes the leases of held slots forward.
_RENEW = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
return 1
"""

# KEYS: tpm hash. ARGV: tpm, delta (actual - estimated tokens).
_SETTLE_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'level', 'updated')
local lv, up = tonumber(v[1]), tonumber(v[2])
if lv == nil then lv, up = limit, now end
if now > up then lv = math.min(limit, lv + (now - up) * limit / 60000) end
redis.call('HSET', KEYS[1], 'level', lv - delta, 'updated', now)
return 1
"""

# KEYS: budget hash. ARGV: token limit (-1: none), cost limit (-1: none), est_tokens.
# Returns {1} when reserved, else {0, 'tokens'|'cost', used (as a string)}.
_RESERVE = """
local v = redis.call('HMGET', KEYS[1], 'tokens', 'reserved', 'cost')
local used, reserved, cost = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
local tl, cl, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tl >= 0 and used + reserved + est > tl then return {0, 'tokens', tostring(used + reserved)} end
if cl >= 0 and cost >= cl then return {0, 'cost', tostring(cost)} end
redis.call('HINCRBY', KEYS[1], 'reserved', est)
return {1}
"""

# KEYS: budget hash. ARGV: est_tokens, used tokens, cost.
_SETTLE = """
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[2]))
redis.call('HINCRBYFLOAT', KEYS[1], 'cost', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Permit:
    """One admitted syscall's slot on a pool; give it back with `RedisLimits.release`."""

    resource: str
    holder: str


class RedisLimits:
    """Concurrency slots, RPM/TPM token buckets and budgets kept in Redis, shared by processes.

    Args:
        url: Redis url, e.g. ``"redis://localhost:6379/0"``.
        prefix: Prefix of every key it uses; processes sharing limits use the same one.
        lease: Seconds a slot stays taken without renewal (a crashed holder's slot frees after
            this); held slots are renewed every ``lease / 3`` seconds while they run.
        poll: Longest wait between re-checks while waiting for a slot or a bucket.

    Raises:
        ImportError: The ``redis`` client is missing (``pip install "agentos-kit[redis]"``).

    Every method that talks to Redis raises the client's ``ConnectionError`` while Redis is
    unreachable; redis-py reconnects on the next call.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "agentos:limits:",
        lease: float = 30.0,
        poll: float = 0.05,
    ) -> None:
        if not lease > 0 or not poll > 0:
            raise ValueError(f"lease and poll must be > 0 seconds, got {lease!r}, {poll!r}")
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'RedisLimits needs the redis client: pip install "agentos-kit[redis]"'
            ) from exc
        self.url = url
        self.prefix = prefix
        self._redis_error = RedisError
        self.lease = lease
        self.poll = poll
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, protocol=2
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._renew = self._redis.register_script(_RENEW)
        self._settle_tokens = self._redis.register_script(_SETTLE_TOKENS)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._channel = f"{prefix}released"
        self._held: dict[str, set[str]] = {}
        self._gates: dict[str, asyncio.Lock] = {}
        self._released = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _key(self, resource: str, part: str) -> str:
        return f"{self.prefix}{{{resource}}}:{part}"

    # --- pools --------------------------------------------------------------------------------

    async def acquire(self, resource: str, config: PoolConfig, est_tokens: int = 0) -> Permit:
        """Wait until ``resource`` has a free slot and its RPM/TPM buckets admit the syscall.

        Args:
            resource: The pool's name (``llm:openai/gpt-4o``); shared by name across processes.
            config: The pool's limits: ``max_concurrency``, ``rpm``, ``tpm``.
            est_tokens: The syscall's token estimate, taken from the TPM bucket.

        Returns:
            The permit; `release` it when the syscall ends (in a ``finally``).
        """
        self._start_background()
        holder = uuid.uuid4().hex
        keys = [self._key(resource, "slots"), self._key(resource, "rpm"),
                self._key(resource, "tpm")]
        args = [config.max_concurrency, config.rpm or 0, config.tpm or 0, est_tokens, holder,
                int(self.lease * 1000)]
        gate = self._gates.setdefault(resource, asyncio.Lock())
        async with gate:  # one waiter per resource and process asks Redis; the others queue here
            while True:
                self._released.clear()
                result = await self._acquire(keys=keys, args=args)
                if int(result[0]) == 1:
                    self._held.setdefault(resource, set()).add(holder)
                    return Permit(resource, holder)
                wait_ms = int(result[1])
                if wait_ms < 0:  # no free slot: woken by a release, or re-check after `poll`
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), self.poll)
                else:
                    await asyncio.sleep(min(wait_ms / 1000, self.poll * 20))

    async def release(self, permit: Permit) -> None:
        """Give a slot back (idempotent) and wake the processes waiting for one.

        While Redis is unreachable this does nothing: the slot frees itself when its lease
        expires, as a crashed holder's does.
        """
        held = self._held.get(permit.resource)
        if held is not None:
            held.discard(permit.holder)
        with contextlib.suppress(self._redis_error, OSError):
            await self._release(keys=[self._key(permit.resource, "slots")],
                                args=[permit.holder, self._channel])

    async def settle_tokens(self, resource: str, config: PoolConfig, estimated: int,
                            actual: int) -> None:
        """Charge ``resource``'s TPM bucket with ``actual - estimated`` (nothing without TPM)."""
        if config.tpm and actual != estimated:
            await self._settle_tokens(keys=[self._key(resource, "tpm")],
                                      args=[config.tpm, actual - estimated])

    async def running(self, resource: str) -> int:
        """How many of ``resource``'s slots are taken right now, over all processes."""
        key = self._key(resource, "slots")
        now_s, now_us = await self._redis.time()
        return int(await self._redis.zcount(key, f"({now_s * 1000 + now_us // 1000}", "+inf"))

    # --- budgets ------------------------------------------------------------------------------

    async def reserve(self, scope: str, key: str, budget: Budget | None, est_tokens: int) -> None:
        """Admit a syscall against a budget kept in Redis and reserve its token estimate.

        Args:
            scope: Names the budget in the error: ``"run"`` or ``"agent:<name>"``.
            key: Identifies the budget across processes, e.g. ``run:<run_id>``.
            budget: The limits (only ``tokens`` and ``cost`` are shared); ``None``: nothing.
            est_tokens: Reserved until `settle`.

        Raises:
            BudgetExceeded: The estimate does not fit the tokens left, or the cost is spent.
        """
        if budget is None or (budget.tokens is None and budget.cost is None):
            return
        token_limit = -1 if budget.tokens is None else budget.tokens
        cost_limit = -1 if budget.cost is None else budget.cost
        result = await self._reserve(keys=[f"{self.prefix}budget:{key}"],
                                     args=[token_limit, cost_limit, est_tokens])
        if int(result[0]) == 0:
            what, used = str(result[1]), float(result[2])
            limit = token_limit if what == "tokens" else cost_limit
            raise BudgetExceeded(scope, what, limit, used,
                                 est_tokens if what == "tokens" else 0.0)

    async def settle(self, key: str, budget: Budget | None, est_tokens: int, tokens: int,
                     cost: float) -> None:
        """Swap a `reserve`'s estimate for the tokens and cost the syscall used."""
        if budget is None or (budget.tokens is None and budget.cost is None):
            return
        await self._settle(keys=[f"{self.prefix}budget:{key}"],
                           args=[est_tokens, tokens, repr(float(cost))])

    async def usage(self, key: str) -> dict[str, float]:
        """What the budget ``key`` has used and reserved so far, over all processes."""
        raw = await self._redis.hgetall(f"{self.prefix}budget:{key}")
        return {name: float(raw.get(name, 0)) for name in ("tokens", "reserved", "cost")}

    # --- background ---------------------------------------------------------------------------

    def _start_background(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    async def _listen(self) -> None:
        """Set `_released` on every release any process announces (reconnects after errors)."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._released.set()
            except (self._redis_error, OSError):  # Redis went away: resubscribe after a pause
                await asyncio.sleep(self.poll)
            finally:
                with contextlib.suppress(self._redis_error, OSError):
                    await pubsub.aclose()

    async def _renew_leases(self) -> None:
        """Every ``lease / 3`` seconds, push the leases of the slots this process holds."""
        while True:
            await asyncio.sleep(self.lease / 3)
            for resource, holders in list(self._held.items()):
                if holders:
                    with contextlib.suppress(self._redis_error, OSError):
                        await self._renew(keys=[self._key(resource, "slots")],
                                          args=[int(self.lease * 1000), *holders])

    async def aclose(self) -> None:
        """Stop the background tasks and close the connection (held slots expire by lease)."""
        for task in (self._listener, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._renewer = None
        await self._redis.aclose()
