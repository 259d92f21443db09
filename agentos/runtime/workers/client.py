"""The kernel's side of the workers: send a syscall to Redis and wait for its reply."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from agentos.errors import SyscallTimeout
from agentos.runtime.bus import BusConfig, BusUnavailable, RedisBus, RequestTimeout
from agentos.runtime.workers._protocol import BUS_PREFIX, decode_value, raise_error, topic

__all__ = ["RemoteSyscalls", "syscall_bus_config"]


def syscall_bus_config(lease: float = 30.0, attempts: int = 3) -> BusConfig:
    """The bus config of the syscall topics: ``ack_timeout`` is the lease, a syscall is
    delivered ``attempts`` times and dead-lettered on the next delivery, and topics hold up to
    100,000 waiting syscalls (publishing waits for room beyond that: nothing pending is ever
    trimmed)."""
    return BusConfig(ack_timeout=lease, max_deliveries=attempts + 1, max_len=200_000,
                     max_pending=100_000, publish_timeout=30.0)


class RemoteSyscalls:
    """Sends syscalls to ``agentos worker`` processes through Redis and awaits their replies.

    Args:
        url: The Redis url the workers read (``settings.workers_url``).
        prefix: Key prefix of the syscall topics (the workers' ``--prefix``).

    A lost connection to Redis is retried until the syscall's timeout: the request goes out
    again under the same idempotency key, so a worker that already ran it answers from its
    journal instead of running it twice.
    """

    def __init__(self, url: str, *, prefix: str = BUS_PREFIX) -> None:
        self.url = url
        self.bus = RedisBus(url, config=syscall_bus_config(), prefix=prefix, poll_interval=0.05)

    async def call(self, kind: str, resource: str, body: dict[str, Any], *, key: str | None = None,
                   est_tokens: int = 0, timeout: float = 600.0, agent: str = "default") -> Any:
        """Run one syscall on a worker and return its value.

        Args:
            kind: ``llm``, ``tool`` or ``memory``.
            resource: The scheduler pool it runs on (the workers apply its limits).
            body: What to run (see `agentos.runtime.workers._protocol`).
            key: Idempotency key; one is made when not given.
            est_tokens: Its token estimate (TPM, on the worker).
            timeout: Seconds to wait for the reply, over reconnects.
            agent: Whose syscall it is (the workers' fair share and round robin).

        Returns:
            The value the worker's syscall returned (a `Completion` for ``llm``).

        Raises:
            SyscallTimeout: No reply within ``timeout`` (no worker running, all busy, or the
                syscall was dead-lettered after too many failed attempts).
            ProviderError, ToolFailed, ...: what the syscall raised on the worker.
        """
        payload = {"key": key or uuid.uuid4().hex, "kind": kind, "resource": resource,
                   "agent": agent, "est_tokens": est_tokens, "timeout": timeout, "body": body}
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SyscallTimeout(f"no worker answered the {kind} syscall on {resource!r} "
                                     f"within {timeout:g}s; is `agentos worker` running on "
                                     f"{self.url}? (`agentos status` shows the workers)")
            try:
                reply = await self.bus.request(topic(kind), payload, timeout=left)
                break
            except RequestTimeout:
                continue  # the deadline check above raises
            except BusUnavailable:  # Redis restarting: send again under the same key
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 1.0)
        answer = reply.payload
        if answer.get("ok"):
            return decode_value(answer["value"])
        raise_error(answer["error"], str(answer.get("worker")))

    async def aclose(self) -> None:
        """Close the connection."""
        await self.bus.close()
