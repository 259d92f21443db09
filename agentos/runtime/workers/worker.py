"""``agentos worker``: a process that runs the kernel's syscalls taken from Redis.

A worker reads topics ``syscalls.llm``, ``syscalls.tool`` and ``syscalls.memory`` as a member of
consumer group ``workers`` (competing consumers: each syscall goes to one worker), runs each
under its scheduler with the pools' policies, and limits shared through Redis
(`RedisLimits`: concurrency, RPM/TPM over every worker), and replies to the kernel that sent it.

Leases. A syscall taken is pending for this worker; its lease (the bus's ``ack_timeout``) is
renewed every ``lease / 3`` seconds while it runs. A worker that dies stops renewing, and after
the lease another worker's fetch takes the syscall over (``XAUTOCLAIM``). The journal
(`agentos.runtime.workers._protocol.Journal`) makes it complete once: a syscall already done is
answered from the journal, not run again. A syscall delivered more than ``attempts`` times that
the journal does not show finished (its workers kept dying) is poison: it is answered with an
error and moved to the dead-letter topic ``syscalls.<kind>.dead``. Topics are bounded by backpressure, never by trimming pending entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentos.errors import LimitsUnavailable, ToolFailed, ToolRetry, UserError
from agentos.runtime.bus import BusUnavailable, Message, RedisBus
from agentos.runtime.llm.types import LLM, Completion
from agentos.runtime.scheduler import PoolConfig, RedisLimits, Scheduler
from agentos.runtime.workers._protocol import (
    BUS_PREFIX,
    GROUP,
    KINDS,
    WORKERS_KEY,
    Journal,
    encode_error,
    encode_value,
    topic,
)
from agentos.runtime.workers.client import syscall_bus_config

if TYPE_CHECKING:
    from agentos.config import Settings
    from agentos.runtime.memory import Memory
    from agentos.runtime.registry import ToolRegistry

__all__ = ["Worker", "WorkerConfig", "load_object"]


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker takes syscalls.

    Attributes:
        url: Redis url of the syscall topics (the kernels' ``workers_url``).
        concurrency: Syscalls this worker holds at once (taken from Redis, queued or running).
        lease: Seconds a syscall stays this worker's without a renewal.
        attempts: Deliveries a syscall gets; the next one dead-letters it as poison.
        heartbeat: Seconds between the heartbeats ``agentos status`` reads.
        prefix: Key prefix of the syscall topics.
        kinds: Which syscall kinds it takes.
        worker_id: Its name in Redis; a fresh one by default.

    Raises:
        ValueError: A value out of range.
    """

    url: str
    concurrency: int = 8
    lease: float = 30.0
    attempts: int = 3
    heartbeat: float = 1.0
    prefix: str = BUS_PREFIX
    kinds: tuple[str, ...] = KINDS
    worker_id: str = field(default_factory=lambda: f"w-{socket.gethostname()}-{os.getpid()}-"
                                                    f"{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.attempts < 1:
            raise ValueError("concurrency and attempts must be >= 1")
        if not self.lease > 0 or not self.heartbeat > 0:
            raise ValueError("lease and heartbeat must be > 0 seconds")
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown syscall kinds {sorted(unknown)}; choose from {KINDS}")


def load_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"``.

    Raises:
        UserError: The spec is malformed, the module cannot be imported or has no such name.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserError(f"{spec!r} is not MODULE:ATTRIBUTE, e.g. mypkg.tools:TOOLS")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as error:
        raise UserError(f"cannot load {spec!r}: {error}; is the module on PYTHONPATH?") from error


class Worker:
    """Takes syscalls from Redis and runs them; `run` until `stop`.

    Args:
        config: Where and how to take syscalls.
        settings: Pool defaults (``max_concurrency``, ``policy``, ``rpm``, ``tpm``), timeouts,
            memory, and ``limits_url`` (the shared limits; defaults to ``config.url``).
        registry: The tools it can run; defaults to the discovered plug-ins.
        llms: LLM objects served for model strings (``{"scripted": ScriptedLLM(...)}``);
            other model strings go through the LLM gateway (litellm).
        memory: Vector memory for ``memory`` syscalls; defaults to ``Memory.from_settings``.
    """

    def __init__(
        self,
        config: WorkerConfig,
        settings: Settings | None = None,
        *,
        registry: ToolRegistry | None = None,
        llms: Mapping[str, LLM] | None = None,
        memory: Memory | None = None,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        if settings is None:
            from agentos.config import load_settings

            settings = load_settings()
        self.config = config
        self.settings = settings
        self.id = config.worker_id
        self._redis_error = RedisError
        limits_url = settings.limits_url
        if not limits_url.startswith(("redis://", "rediss://")):
            limits_url = config.url
        self.limits = RedisLimits(limits_url, lease=config.lease)
        self.scheduler = Scheduler(
            PoolConfig(max_concurrency=settings.max_concurrency, policy=settings.policy),
            limits=self.limits,
        )
        self.bus = RedisBus(config.url, config=syscall_bus_config(config.lease, config.attempts),
                            prefix=config.prefix, poll_interval=0.1)
        self._redis = aioredis.Redis.from_url(config.url, decode_responses=True, protocol=2)
        self.journal = Journal(self._redis)
        self._registry = registry
        self._llms: dict[str, LLM] = dict(llms or {})
        self._rated: set[str] = set()  # models whose pools got the rpm/tpm settings
        self._memory = memory
        self._free = config.concurrency
        self._room = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts = {"done": 0, "failed": 0, "replayed": 0, "poisoned": 0}
        self.started = time.time()

    # --- what it runs -------------------------------------------------------------------------

    @property
    def registry(self) -> ToolRegistry:
        if self._registry is None:
            from agentos.runtime.registry import ToolRegistry

            self._registry = ToolRegistry(discover=True)
        return self._registry

    def _llm(self, model: str) -> LLM:
        """The LLM serving ``model``; on first use its pool gets the ``rpm``/``tpm`` settings
        (as the kernel does for non-local models)."""
        llm = self._llms.get(model)
        if llm is None:
            from agentos.runtime.llm.gateway import resolve_llm

            llm = self._llms[model] = resolve_llm(model)
        if model not in self._rated:
            self._rated.add(model)
            if not model.startswith("local/") and (self.settings.rpm or self.settings.tpm):
                self.scheduler.configure(f"llm:{model}", PoolConfig(
                    max_concurrency=self.settings.max_concurrency, policy=self.settings.policy,
                    rpm=self.settings.rpm, tpm=self.settings.tpm,
                ))
        return llm

    def _work(self, kind: str, body: dict[str, Any]) -> Any:
        """The awaitable factory that runs a syscall's body."""
        if kind == "llm":
            llm = self._llm(body["model"])
            return lambda: llm.complete(body["messages"], body.get("tools"),
                                        **body.get("params", {}))
        if kind == "tool":
            name = body["name"]
            t = self.registry.get(name)
            values = t.validate(body["arguments"])

            async def invoke() -> Any:
                try:
                    return await t.ainvoke(values)
                except ToolRetry:
                    raise
                except Exception as error:
                    raise ToolFailed(
                        f"tool {name} failed: {type(error).__name__}: {error}") from error

            return invoke
        if kind == "memory":
            from agentos.runtime.memory.syscalls import MEMORY_OPS

            op, names, arguments = body["op"], body["namespaces"], body["arguments"]
            memory = self.memory
            if op == "namespaces":
                return lambda: asyncio.to_thread(memory.namespaces)
            spec = MEMORY_OPS[op]
            return lambda: asyncio.to_thread(spec.run, memory, names, arguments)
        raise UserError(f"unknown syscall kind {kind!r}")

    @property
    def memory(self) -> Memory:
        if self._memory is None:
            from agentos.runtime.memory import Memory

            self._memory = Memory.from_settings(self.settings)
        return self._memory

    async def _execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one syscall under the scheduler; its reply (value or error), never raising."""
        resource = request["resource"]
        est = int(request.get("est_tokens") or 0)
        try:
            fn = self._work(request["kind"], request["body"])
            outcome = await self.scheduler.submit(
                resource, fn, share_key=str(request.get("agent", "default")),
                priority=float(request.get("priority", 0.0)),
                weight=float(request.get("weight", 1.0)), est_tokens=est,
                timeout=float(request.get("timeout") or self.settings.timeout_s),
            )
        except (self._redis_error, LimitsUnavailable):  # the shared limits' Redis went away:
            raise  # not the syscall's fault
        except Exception as error:  # the kernel raises it again, from the reply
            self.counts["failed"] += 1
            return {"ok": False, "error": encode_error(error), "worker": self.id}
        value = outcome.value
        if isinstance(value, Completion) and est:
            used = value.prompt_tokens + value.completion_tokens
            self.scheduler.settle_tokens(resource, est, used)
        try:
            encoded = encode_value(value)
        except TypeError as error:  # e.g. a tool returned an object JSON cannot carry
            self.counts["failed"] += 1
            return {"ok": False, "worker": self.id, "error": encode_error(ToolFailed(
                f"the {request['kind']} syscall on {resource!r} returned a value of type "
                f"{type(value).__name__!r}, which cannot be sent back from a worker ({error}); "
                "return JSON values (dict, list, str, numbers, bool, None)"))}
        self.counts["done"] += 1
        return {"ok": True, "value": encoded, "worker": self.id,
                "queue_wait": outcome.queue_wait, "service_time": outcome.service_time}

    # --- one syscall --------------------------------------------------------------------------

    async def _renew(self, message: Message, key: str) -> None:
        """Keep the lease on ``message`` (and its journal claim) while it is being handled."""
        while True:
            await asyncio.sleep(self.config.lease / 3)
            with contextlib.suppress(BusUnavailable, self._redis_error, OSError):
                await self.bus.renew(message)
                await self.journal.renew(key, self.id, self.config.lease)

    async def _handle(self, message: Message) -> None:
        request = message.payload
        key = str(request.get("key") or message.id)
        renewer = asyncio.get_running_loop().create_task(self._renew(message, key))
        try:
            state, reply = await self.journal.begin(key, self.id, self.config.lease)
            while state == "busy":  # the same key sent again while another worker runs it
                await asyncio.sleep(0.1)
                state, reply = await self.journal.begin(key, self.id, self.config.lease)
            if state == "done":  # finished before (its worker died before replying or acking)
                assert reply is not None
                self.counts["replayed"] += 1
            elif message.delivery_count > self.config.attempts:
                reply = {"ok": False, "worker": self.id, "error": {
                    "type": "SyscallPoisoned", "transient": False, "status": None,
                    "message": (f"the {request.get('kind')} syscall on "
                                f"{request.get('resource')!r} was delivered "
                                f"{message.delivery_count} times and its workers never "
                                f"finished it (they died or lost Redis): moved to "
                                f"{message.topic}.dead; see `agentos status`")}}
                await self.journal.finish(key, reply, self.id)
                await self.bus.reply(message, reply)
                await self.bus.nack(message, reason="poison: workers died running it")
                self.counts["poisoned"] += 1
                return
            else:
                reply = await self._execute(request)
                await self.journal.finish(key, reply, self.id)
            await self.bus.reply(message, reply)
            await self.bus.ack(message)
        except (BusUnavailable, LimitsUnavailable, self._redis_error, OSError):
            pass  # left pending: redelivered after the lease, answered from the journal if done
        finally:
            renewer.cancel()

    # --- the loop -----------------------------------------------------------------------------

    async def _consume(self, kind: str) -> None:
        name = topic(kind)
        pause = 0.05
        while not self._stopping.is_set():
            async with self._room:
                await self._room.wait_for(lambda: self._free > 0 or self._stopping.is_set())
                take = self._free
            if self._stopping.is_set():
                return
            try:
                batch = await self.bus.fetch(name, GROUP, consumer=self.id,
                                             max_messages=take, timeout=0.5)
                pause = 0.05
            except (BusUnavailable, self._redis_error, OSError):
                await asyncio.sleep(pause)  # Redis is down or restarting: try again
                pause = min(pause * 2, 1.0)
                continue
            for message in batch:
                self._free -= 1
                task = asyncio.get_running_loop().create_task(self._handle(message))
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._free += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._room:
            self._room.notify_all()

    async def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            beat = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                    "seen": time.time(), "running": self.config.concurrency - self._free,
                    "concurrency": self.config.concurrency, "lease": self.config.lease,
                    "heartbeat": self.config.heartbeat, "kinds": list(self.config.kinds),
                    **self.counts}
            with contextlib.suppress(self._redis_error, OSError):
                await self._redis.hset(WORKERS_KEY, self.id, json.dumps(beat))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.heartbeat)

    async def run(self) -> None:
        """Take and run syscalls until `stop` is called; then finish those it holds."""
        loops = [asyncio.create_task(self._consume(kind)) for kind in self.config.kinds]
        beat = asyncio.create_task(self._heartbeat())
        try:
            await self._stopping.wait()
        finally:
            await self._notify()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            with contextlib.suppress(self._redis_error, OSError):
                await self._redis.hdel(WORKERS_KEY, self.id)

    def stop(self) -> None:
        """Stop taking syscalls; `run` returns once the ones held are finished."""
        self._stopping.set()

    async def aclose(self) -> None:
        """Close its connections (after `run` returned)."""
        await self.bus.close()
        await self.limits.aclose()
        await self._redis.aclose()
        if self._memory is not None:
            self._memory.close()
