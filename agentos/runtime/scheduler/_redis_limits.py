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
* **Budgets.** A run's (or an agent's) tokens, cost and joules live in a hash
  (``<prefix>budget:{key}``, e.g. ``budget:run:<run_id>``): `reserve` admits a syscall only
  while used + reserved + its estimate fit the token budget and the cost and energy used are
  below their budgets, and reserves the estimate; `settle` swaps the reservation for what was
  used. So N processes spending one budget together are held to it as one process is: tokens
  overshoot only where a syscall uses more than its estimate (a completion without
  ``max_tokens``); cost and energy are known only afterwards, so the syscalls in flight, over
  all processes, when the budget is reached may each finish past it (one per process when each
  runs its syscalls one at a time). ``wall_s`` is shared too, at admission: the budget's clock
  starts at its first reserve by any process (Redis' ``TIME``), and a syscall is refused once
  it has run out; a syscall already running is cut at the deadline of the process that runs it,
  counted from that process's own ``start_run``. Each reservation is a lease the holder renews while its syscall runs: a
  process killed mid-syscall, or a `reserve` whose reply timed out (Redis may still have run
  it), leaves a reservation nobody renews, and its estimate goes back to the budget when the
  lease runs out (``lease`` seconds, default 30).

Redis going away fails the syscall with `LimitsUnavailable` (never an unlimited one): a refused
connection is tried twice more within 0.3 s, and a connect or reply waits at most ``timeout``
seconds (default 5), so a killed Redis fails it within about a second and a frozen one within
about ``timeout``.

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentos.errors import BudgetExceeded, LimitsUnavailable
from agentos.runtime._redact import masked_url

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

# Budget reservations are leases: KEYS[2] is a sorted set of reservation ids scored by lease
# expiry, KEYS[3] a hash of each id's token estimate. A reservation whose holder stopped renewing
# it (a process killed mid-syscall) is reaped on the next reserve or usage: its estimate leaves
# 'reserved' and is counted in 'expired'.
_REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(stale) do
  local e = tonumber(redis.call('HGET', KEYS[3], id)) or 0
  redis.call('HINCRBY', KEYS[1], 'reserved', -e)
  redis.call('HINCRBY', KEYS[1], 'expired', e)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
"""

# KEYS: budget hash, leases zset, estimates hash. ARGV: token limit (-1: none), cost limit (-1:
# none), energy limit (-1: none), est_tokens, reservation id, lease_ms, wall limit in ms (-1:
# none). Returns {1} when reserved, else {0, 'tokens'|'cost'|'energy_j'|'wall_s', used (as a
# string; wall_s in seconds)}. The budget's wall clock starts at its first reserve (Redis time).
_RESERVE = _REAP + """
redis.call('HSETNX', KEYS[1], 'started_ms', now)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'reserved', 'cost', 'energy_j', 'started_ms')
local used, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
local cost, energy = tonumber(v[3]) or 0, tonumber(v[4]) or 0
local tl, cl, el, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wl, elapsed = tonumber(ARGV[7]), now - tonumber(v[5])
if wl >= 0 and elapsed >= wl then return {0, 'wall_s', tostring(elapsed / 1000)} end
if tl >= 0 and used + reserved + est > tl then return {0, 'tokens', tostring(used + reserved)} end
if cl >= 0 and cost >= cl then return {0, 'cost', tostring(cost)} end
if el >= 0 and energy >= el then return {0, 'energy_j', tostring(energy)} end
redis.call('HINCRBY', KEYS[1], 'reserved', est)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], est)
return {1}
"""

# KEYS: budget hash, leases zset, estimates hash. ARGV: reservation id, used tokens, cost,
# energy_j. A reservation already reaped (its lease ran out) is not subtracted twice.
_SETTLE = """
local e = redis.call('HGET', KEYS[3], ARGV[1])
if e then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(e))
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[2]))
redis.call('HINCRBYFLOAT', KEYS[1], 'cost', ARGV[3])
redis.call('HINCRBYFLOAT', KEYS[1], 'energy_j', ARGV[4])
return 1
"""

# KEYS: budget hash, leases zset, estimates hash. Reaps expired reservations, returns the hash.
_USAGE = _REAP + """
return redis.call('HGETALL', KEYS[1])
"""


def _limited(budget: Budget | None) -> bool:
    """Whether ``budget`` has a limit kept in Redis (tokens, cost, energy or wall time)."""
    return budget is not None and not (
        budget.tokens is None and budget.cost is None and budget.energy_j is None
        and budget.wall_s is None
    )


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
        timeout: Seconds a connect or a reply may take before the call fails. A refused or
            dropped connection is tried twice more, after 0.1 and 0.2 s; a timeout is not.

    Raises:
        ImportError: The ``redis`` client is missing (``pip install "agentos-kit[redis]"``).

    `acquire`, `reserve`, `settle`, `settle_tokens`, `running` and `usage` raise
    `LimitsUnavailable` while Redis is unreachable or not answering; the client reconnects on
    the next call. `release` does not (a slot not given back frees itself by its lease).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "agentos:limits:",
        lease: float = 30.0,
        poll: float = 0.05,
        timeout: float = 5.0,
    ) -> None:
        if not lease > 0 or not poll > 0 or not timeout > 0:
            raise ValueError(f"lease, poll and timeout must be > 0 seconds, got {lease!r}, "
                             f"{poll!r}, {timeout!r}")
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import RedisError
            from redis.exceptions import TimeoutError as RedisTimeoutError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'RedisLimits needs the redis client: pip install "agentos-kit[redis]"'
            ) from exc
        self.url = url
        self.prefix = prefix
        self._redis_error = RedisError
        self._unreachable = (RedisConnectionError, RedisTimeoutError, OSError)
        self.lease = lease
        self.poll = poll
        self.timeout = timeout
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, protocol=2, socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Only refused or dropped connections are tried again: a reply that timed out may
            # come from a script that ran, and running a charge twice would double it.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2,
                        supported_errors=(RedisConnectionError,)),
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._renew = self._redis.register_script(_RENEW)
        self._settle_tokens = self._redis.register_script(_SETTLE_TOKENS)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._usage = self._redis.register_script(_USAGE)
        self._channel = f"{prefix}released"
        self._held: dict[str, set[str]] = {}
        self._reservations: dict[str, set[str]] = {}  # budget key -> ids this process holds
        self._gates: dict[str, asyncio.Lock] = {}
        self._released = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False  # set by aclose: the background loops end even where a
        # cancellation is swallowed (redis-py's get_message can; a clean-clone CI run hung so)
        self._renewer: asyncio.Task[None] | None = None

    def _key(self, resource: str, part: str) -> str:
        return f"{self.prefix}{{{resource}}}:{part}"

    @contextlib.contextmanager
    def _reaching_redis(self, what: str) -> Iterator[None]:
        """Turn a lost or silent connection into `LimitsUnavailable`; ``what`` says what it
        means for the syscall."""
        try:
            yield
        except self._unreachable as exc:
            url = masked_url(self.url)
            cause = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
            raise LimitsUnavailable(
                url,
                f"Redis at {url}, which keeps the limits and budgets shared by processes "
                f"(limits_url), is unreachable ({cause}): {what}. Check it with `redis-cli -u "
                f"{url} ping` and start redis-server there, or unset limits_url "
                f"(AGENTOS_LIMITS_URL) to keep limits and budgets in each process.",
            ) from exc

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
                with self._reaching_redis(f"the syscall on {resource!r} was refused, as its "
                                          "shared slots and rate limits could not be checked"):
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
            with self._reaching_redis(f"{actual - estimated} tokens could not be settled in "
                                      f"{resource!r}'s shared tokens-per-minute bucket"):
                await self._settle_tokens(keys=[self._key(resource, "tpm")],
                                          args=[config.tpm, actual - estimated])

    async def running(self, resource: str) -> int:
        """How many of ``resource``'s slots are taken right now, over all processes."""
        key = self._key(resource, "slots")
        with self._reaching_redis(f"{resource!r}'s running syscalls could not be counted"):
            now_s, now_us = await self._redis.time()
            return int(await self._redis.zcount(key, f"({now_s * 1000 + now_us // 1000}",
                                                "+inf"))

    # --- budgets ------------------------------------------------------------------------------

    def _budget_keys(self, key: str) -> list[str]:
        base = f"{self.prefix}budget:{key}"
        return [base, f"{base}:leases", f"{base}:estimates"]

    async def reserve(self, scope: str, key: str, budget: Budget | None,
                      est_tokens: int) -> str | None:
        """Admit a syscall against a budget kept in Redis and reserve its token estimate.

        The reservation is a lease, renewed every ``lease / 3`` seconds while this process
        holds it: a process killed mid-syscall stops renewing, and its estimate goes back to
        the budget once the lease has run out (counted in `usage`'s ``expired``).

        Args:
            scope: Names the budget in the error: ``"run"`` or ``"agent:<name>"``.
            key: Identifies the budget across processes, e.g. ``run:<run_id>``.
            budget: The limits, all shared: ``tokens``, ``cost``, ``energy_j``, and
                ``wall_s`` counted from the budget's first reserve by any process (Redis'
                clock); ``None``: nothing.
            est_tokens: Reserved until `settle`.

        Returns:
            The reservation's id, for `settle`; None when ``budget`` has no shared limit.

        Raises:
            BudgetExceeded: The estimate does not fit the tokens left, or the cost, the
                energy or the wall time is spent.
            LimitsUnavailable: Redis cannot be reached; nothing was reserved.
        """
        if not _limited(budget):
            return None
        assert budget is not None
        limits = {"tokens": -1.0 if budget.tokens is None else float(budget.tokens),
                  "cost": -1.0 if budget.cost is None else budget.cost,
                  "energy_j": -1.0 if budget.energy_j is None else budget.energy_j,
                  "wall_s": -1.0 if budget.wall_s is None else budget.wall_s}
        reservation = uuid.uuid4().hex
        with self._reaching_redis(f"the syscall was refused, as its {scope} budget could not "
                                  "be checked"):
            result = await self._reserve(keys=self._budget_keys(key),
                                         args=[limits["tokens"], limits["cost"],
                                               limits["energy_j"], est_tokens, reservation,
                                               int(self.lease * 1000),
                                               -1 if budget.wall_s is None
                                               else int(budget.wall_s * 1000)])
        if int(result[0]) == 0:
            what, used = str(result[1]), float(result[2])
            raise BudgetExceeded(scope, what, limits[what], used,
                                 est_tokens if what == "tokens" else 0.0)
        self._reservations.setdefault(key, set()).add(reservation)
        self._start_background()  # renews the lease
        return reservation

    async def settle(self, key: str, reservation: str | None, tokens: int, cost: float,
                     energy_j: float = 0.0) -> None:
        """Swap the reservation ``reservation`` (from `reserve`) for the tokens, cost and joules
        the syscall used. Nothing when ``reservation`` is None (no shared limit).

        Raises:
            LimitsUnavailable: Redis cannot be reached: the use was not charged, and the
                reservation stays held until its lease runs out.
        """
        if reservation is None:
            return
        held = self._reservations.get(key)
        if held is not None:  # not renewed from now on, whether or not Redis hears of it
            held.discard(reservation)
            if not held:
                del self._reservations[key]
        with self._reaching_redis(
            f"the syscall finished, but its use ({tokens} tokens, ${cost:g}, {energy_j:g} J) "
            f"could not be charged to the shared budget {key!r}, so other processes do not "
            "see it"
        ):
            await self._settle(keys=self._budget_keys(key),
                               args=[reservation, tokens, repr(float(cost)),
                                     repr(float(energy_j))])

    async def usage(self, key: str) -> dict[str, float]:
        """What the budget ``key`` has used and reserved so far, over all processes:
        ``tokens``, ``reserved`` (tokens held by live reservations), ``expired`` (tokens of
        reservations whose holder stopped renewing them, given back), ``cost`` and
        ``energy_j``."""
        with self._reaching_redis(f"the budget {key!r} could not be read"):
            flat = await self._usage(keys=self._budget_keys(key))
        raw = dict(zip(flat[::2], flat[1::2]))
        return {name: float(raw.get(name, 0))
                for name in ("tokens", "reserved", "expired", "cost", "energy_j")}

    # --- background ---------------------------------------------------------------------------

    def _start_background(self) -> None:
        self._stopping = False
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    async def _listen(self) -> None:
        """Set `_released` on every release any process announces (reconnects after errors)."""
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                while not self._stopping:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._released.set()
            except (self._redis_error, OSError):  # Redis went away: resubscribe after a pause
                await asyncio.sleep(self.poll)
            finally:  # bounded: closing a pubsub cancelled mid-subscribe can wait forever
                with contextlib.suppress(self._redis_error, OSError, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pubsub.aclose()), 2.0)

    async def _renew_leases(self) -> None:
        """Every ``lease / 3`` seconds, push the leases of the slots and budget reservations
        this process holds."""
        while not self._stopping:
            await asyncio.sleep(self.lease / 3)
            leases = [(self._key(resource, "slots"), holders)
                      for resource, holders in list(self._held.items())]
            leases += [(self._budget_keys(key)[1], ids)
                       for key, ids in list(self._reservations.items())]
            for zset, ids in leases:
                if ids:
                    with contextlib.suppress(self._redis_error, OSError):
                        await self._renew(keys=[zset], args=[int(self.lease * 1000), *ids])

    async def aclose(self) -> None:
        """Stop the background tasks and close the connection (held slots expire by lease)."""
        self._stopping = True
        tasks = [task for task in (self._listener, self._renewer) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a task stuck in redis-py's close must not hang the caller
            await asyncio.wait(tasks, timeout=5.0)
        self._listener = self._renewer = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._redis.aclose(), 5.0)
