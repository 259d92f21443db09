"""The scheduler loop: resource pools, dispatch, timers, timeouts, retries and cancellation.

The decision of what runs next is :func:`agentos.runtime.scheduler._policy.choose`; this module
only drives it. A syscall is submitted to a named resource pool (an LLM model, the local model's
slots, a tool with limited concurrency). The coroutine that submitted it waits on a future until
the pool dispatches it, then runs the work itself, so a dispatched syscall costs no extra task.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentos.errors import Cancelled, ProviderError, SyscallTimeout
from agentos.runtime.scheduler._limits import TokenBucket
from agentos.runtime.scheduler._policy import POLICIES, Pending, PolicyName, PolicyState, choose

if TYPE_CHECKING:
    from agentos.runtime.scheduler._redis_limits import RedisLimits

__all__ = ["Outcome", "PoolConfig", "RetryPolicy", "Scheduler", "is_transient"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Limits of one resource pool.

    Attributes:
        max_concurrency: syscalls of the pool running at once; the rest wait in its queue.
        policy: which queued syscall runs next: ``fifo``, ``round_robin`` (across agents),
            ``priority`` (with aging) or ``fair_share`` (weighted, across agents).
        aging_rate: for ``priority``: priority points a waiting syscall gains per second.
        rpm: requests per minute (a token bucket: bursts up to ``rpm``); ``None``: no limit.
        tpm: tokens per minute, charged with each syscall's estimate and settled with what it
            used; ``None``: no limit.

    Raises:
        ValueError: a limit is out of range or the policy is unknown.
    """

    max_concurrency: int = 4
    policy: PolicyName = "fifo"
    aging_rate: float = 1.0
    rpm: float | None = None
    tpm: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {POLICIES}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    Only transient errors (:func:`is_transient`) are retried; each retry queues again.

    Attributes:
        max_retries: retries after the first attempt (0: none).
        base_delay, max_delay: seconds; the ceiling doubles from ``base_delay`` up to
            ``max_delay``.
        jitter: wait a uniform random time below the ceiling (else exactly the ceiling).
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: provider errors marked transient, timeouts, dropped links."""
    if isinstance(error, ProviderError):
        return error.transient
    return isinstance(error, (TimeoutError, ConnectionError))


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What a syscall returned and what it cost in time."""

    value: T
    queue_wait: float  # seconds spent queued, summed over attempts
    service_time: float  # seconds the last attempt ran
    attempts: int


@dataclass(slots=True)
class _Job:
    pending: Pending
    run_id: str | None
    est_tokens: int
    go: asyncio.Future[float]
    task: asyncio.Task[Any] | None = None
    cancelled_by_run: bool = False


@dataclass(slots=True)
class _Pool:
    name: str
    config: PoolConfig
    state: PolicyState
    rpm: TokenBucket | None
    tpm: TokenBucket | None
    queue: dict[int, _Job] = field(default_factory=dict)
    running: dict[int, _Job] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    held: int = 0  # slots held by work no syscall waits for any more (see Scheduler.occupy)


class Scheduler:
    """Queues syscalls per resource pool and dispatches them under the pool's policy and limits.

    Args:
        default: the limits of a pool that was never configured.
        clock: monotonic seconds; tests pass a fake.
        seed: seeds the retry jitter.
        limits: where the pools' limits are kept across processes (a
            :class:`~agentos.runtime.scheduler.RedisLimits`): a syscall dispatched by its local
            pool then also waits for a slot and for the RPM/TPM buckets in Redis, shared by
            every process using the same Redis and prefix, and the local pools keep no buckets
            of their own. ``None``: the limits hold in this process only.
    """

    def __init__(
        self,
        default: PoolConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        limits: RedisLimits | None = None,
    ) -> None:
        self._default = default or PoolConfig()
        self.limits = limits
        self._settling: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._rng = random.Random(seed)
        self._pools: dict[str, _Pool] = {}
        self._seq = itertools.count()

    # --- configuration ------------------------------------------------------------------------

    def configure(self, resource: str, config: PoolConfig) -> None:
        """Set the limits of ``resource``'s pool, before or while it runs syscalls.

        Running syscalls keep their slots; a smaller ``max_concurrency`` takes effect as they
        finish, a larger one dispatches queued syscalls at once. The rate-limit buckets restart
        full.
        """
        pool = self._pools.get(resource)
        if pool is None:
            self._pools[resource] = self._new_pool(resource, config)
            return
        pool.config = config
        pool.state.policy = config.policy
        pool.state.aging_rate = config.aging_rate
        pool.rpm, pool.tpm = self._buckets(config)
        if pool.queue:  # queued syscalls exist only inside a running event loop
            self._pump(pool)

    def pool_config(self, resource: str) -> PoolConfig:
        """The limits of ``resource``'s pool (the default ones for a pool never configured)."""
        return self._pool(resource).config

    def _buckets(self, config: PoolConfig) -> tuple[TokenBucket | None, TokenBucket | None]:
        """The pool's local RPM/TPM buckets; none when `limits` keeps them in Redis."""
        if self.limits is not None:
            return None, None
        now = self._clock()
        return (TokenBucket.per_minute(config.rpm, now) if config.rpm else None,
                TokenBucket.per_minute(config.tpm, now) if config.tpm else None)

    def _new_pool(self, resource: str, config: PoolConfig) -> _Pool:
        rpm, tpm = self._buckets(config)
        return _Pool(
            name=resource,
            config=config,
            state=PolicyState(policy=config.policy, aging_rate=config.aging_rate),
            rpm=rpm,
            tpm=tpm,
        )

    def _pool(self, resource: str) -> _Pool:
        pool = self._pools.get(resource)
        if pool is None:
            pool = self._pools[resource] = self._new_pool(resource, self._default)
        return pool

    def queued(self, resource: str) -> int:
        """How many syscalls wait in ``resource``'s queue."""
        return len(self._pool(resource).queue)

    def running(self, resource: str) -> int:
        """How many of ``resource``'s slots are taken (running syscalls and :meth:`occupy`)."""
        pool = self._pool(resource)
        return len(pool.running) + pool.held

    def occupy(self, resource: str) -> Callable[[], None]:
        """Take one of ``resource``'s slots until the returned ``release`` is called.

        For work a syscall started but could not stop (a sync tool's thread after a timeout):
        it still runs, so it still counts against the pool's ``max_concurrency``. Call
        ``release`` on the event loop's thread; calls after the first do nothing.
        """
        pool = self._pool(resource)
        pool.held += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                pool.held -= 1
                self._pump(pool)

        return release

    # --- submission ---------------------------------------------------------------------------

    async def submit(
        self,
        resource: str,
        fn: Callable[[], Awaitable[T]],
        *,
        share_key: str = "default",
        run_id: str | None = None,
        priority: float = 0.0,
        weight: float = 1.0,
        est_tokens: int = 0,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Outcome[T]:
        """Queue ``fn`` on ``resource``, run it when dispatched, retry transient failures.

        Each attempt queues again, so a backing-off syscall does not hold a slot. ``deadline``
        (on the scheduler's clock) bounds every attempt's timeout; nothing is retried past it.

        Raises:
            SyscallTimeout: the last attempt ran longer than ``timeout``.
            Cancelled: :meth:`cancel` was called for ``run_id``.
            Exception: whatever ``fn`` raised, once retries are exhausted or it is not transient.
        """
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        attempt = 0
        queue_wait = 0.0
        while True:
            limit = timeout
            if deadline is not None:
                left = max(0.001, deadline - self._clock())
                limit = left if limit is None else min(limit, left)
            try:
                value, waited, service = await self._run_once(
                    resource, fn, share_key, run_id, priority, weight, est_tokens, limit
                )
                return Outcome(value, queue_wait + waited, service, attempt + 1)
            except Exception as error:
                if retry is None or attempt >= retry.max_retries or not is_transient(error):
                    raise
                if deadline is not None and self._clock() >= deadline:
                    raise
                await asyncio.sleep(retry.delay(attempt, self._rng))
                attempt += 1

    async def _run_once(
        self,
        resource: str,
        fn: Callable[[], Awaitable[T]],
        share_key: str,
        run_id: str | None,
        priority: float,
        weight: float,
        est_tokens: int,
        timeout: float | None,
    ) -> tuple[T, float, float]:
        pool = self._pool(resource)
        submitted = self._clock()
        pending = Pending(
            seq=next(self._seq),
            share_key=share_key,
            submitted_at=submitted,
            priority=priority,
            weight=weight,
            cost=float(est_tokens or 1),
        )
        loop = asyncio.get_running_loop()
        job = _Job(pending, run_id, est_tokens, loop.create_future())
        pool.queue[pending.seq] = job
        self._pump(pool)
        if not job.go.done():
            try:
                await job.go
            except asyncio.CancelledError:
                pool.queue.pop(pending.seq, None)
                if job.go.done() and not job.go.cancelled() and job.go.exception() is None:
                    self._release(pool, job)  # dispatched in the same tick: give the slot back
                raise
        started = job.go.result()  # raises Cancelled when cancel() rejected it while queued
        job.task = asyncio.current_task()
        permit = None
        try:
            if self.limits is not None:  # the slot and buckets shared with other processes
                permit = await self.limits.acquire(resource, pool.config, est_tokens)
                started = self._clock()
            if timeout is None:
                value = await fn()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        value = await fn()
                except TimeoutError as error:
                    raise SyscallTimeout(
                        f"syscall on {resource!r} took longer than {timeout:g}s"
                    ) from error
        except asyncio.CancelledError:
            if job.cancelled_by_run:
                raise Cancelled(f"run {run_id} was cancelled") from None
            raise
        finally:
            self._release(pool, job)
            if permit is not None:
                assert self.limits is not None
                await self.limits.release(permit)
        return value, started - submitted, self._clock() - started

    def _release(self, pool: _Pool, job: _Job) -> None:
        if pool.running.pop(job.pending.seq, None) is not None:
            self._pump(pool)

    def _pump(self, pool: _Pool) -> None:
        """Dispatch queued jobs while the pool has free slots and its rate limits allow."""
        while pool.queue and len(pool.running) + pool.held < pool.config.max_concurrency:
            now = self._clock()
            item = choose([job.pending for job in pool.queue.values()], pool.state, now)
            assert item is not None
            job = pool.queue[item.seq]
            if job.go.done():  # its waiter was cancelled and has not run to dequeue it yet
                del pool.queue[item.seq]
                continue
            wait = 0.0
            if pool.rpm is not None:
                wait = pool.rpm.wait_time(1, now)
            if pool.tpm is not None and job.est_tokens:
                wait = max(wait, pool.tpm.wait_time(job.est_tokens, now))
            if wait > 0:
                if pool.timer is None:
                    pool.timer = asyncio.get_running_loop().call_later(wait, self._wake, pool)
                return
            del pool.queue[item.seq]
            pool.state.dispatched(
                item,
                [j.pending for j in pool.queue.values()] if pool.config.policy == "fair_share" else (),
            )
            if pool.rpm is not None:
                pool.rpm.take(1, now)
            if pool.tpm is not None and job.est_tokens:
                pool.tpm.take(job.est_tokens, now)
            pool.running[item.seq] = job
            job.go.set_result(now)

    def _wake(self, pool: _Pool) -> None:
        pool.timer = None
        self._pump(pool)

    def settle_tokens(self, resource: str, estimated: int, actual: int) -> None:
        """Charge a pool's tokens-per-minute bucket with the difference actual - estimated."""
        pool = self._pool(resource)
        if pool.tpm is not None and actual != estimated:
            pool.tpm.take(actual - estimated, self._clock())
        elif self.limits is not None and pool.config.tpm and actual != estimated:
            task = asyncio.get_running_loop().create_task(
                self.limits.settle_tokens(resource, pool.config, estimated, actual)
            )
            self._settling.add(task)  # kept until done, so it is not garbage-collected
            task.add_done_callback(self._settling.discard)

    def cancel(self, run_id: str) -> int:
        """Cancel every queued and running syscall of ``run_id``; returns how many.

        Each one's :meth:`submit` raises :class:`~agentos.errors.Cancelled`.
        """
        count = 0
        for pool in self._pools.values():
            for seq, job in list(pool.queue.items()):
                if job.run_id == run_id:
                    del pool.queue[seq]
                    if not job.go.done():
                        job.go.set_exception(Cancelled(f"run {run_id} was cancelled"))
                    count += 1
            for job in list(pool.running.values()):
                if job.run_id == run_id and job.task is not None:
                    job.cancelled_by_run = True
                    job.task.cancel()
                    count += 1
        return count
