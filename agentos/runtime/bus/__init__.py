"""The agentos message bus: one interface, an in-process and a Redis Streams backend.

``RedisBus`` imports the ``redis`` client only when one is built, so importing this package
stays light.
"""

from __future__ import annotations

from agentos.runtime.bus.base import (
    CORRELATION_ID,
    DEAD_LETTER_SUFFIX,
    REPLY_TO,
    Bus,
    BusClosed,
    BusConfig,
    BusError,
    BusFull,
    BusUnavailable,
    Message,
    PayloadError,
    RequestTimeout,
    Subscription,
)
from agentos.runtime.bus.inprocess import InProcessBus
from agentos.runtime.bus.redis import RedisBus

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
    "InProcessBus",
    "Message",
    "PayloadError",
    "RedisBus",
    "RequestTimeout",
    "Subscription",
]
