"""Fixtures of the bus contract suite: a real redis-server, and a bus factory per backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from agentos.runtime.bus import Bus, BusConfig, InProcessBus, RedisBus

# Short timeouts keep the suite fast and deterministic; tests override what they exercise.
FAST = {"ack_timeout": 5.0, "publish_timeout": 0.2, "max_len": 1_000, "max_pending": 500}


BusFactory = Callable[..., Bus]


@pytest_asyncio.fixture(
    params=["inprocess", pytest.param("redis", marks=pytest.mark.redis)],
)
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """A factory ``make_bus(**config)`` of buses of one backend; each test gets fresh topics.

    Calling it twice in one test gives two *handles on the same topics* for Redis (as two
    processes would have) and, for the in-process backend, the same bus again.
    """
    made: list[Bus] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test:{uuid.uuid4().hex[:8]}:"

        def factory(**config: Any) -> Bus:
            settings = BusConfig(**(FAST | config))
            bus = RedisBus(url, config=settings, prefix=prefix, poll_interval=0.05)
            made.append(bus)
            return bus

    else:

        def factory(**config: Any) -> Bus:
            if not made:
                made.append(InProcessBus(BusConfig(**(FAST | config))))
            return made[0]

    yield factory
    for bus in made:
        await bus.close()
