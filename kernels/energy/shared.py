"""One energy source shared by windows that overlap in time (concurrent syscalls).

Two syscalls running at once in one process would each see the whole process's CPU time (or
the whole package's RAPL energy) in their windows, so adding up their readings would count the
same joules twice. :class:`SharedMeter` splits instead: at every window's opening and closing it
samples the source once and divides the energy since the previous sample evenly among the
windows open in between. The windows' shares add up to exactly what the source measured while
any window was open; energy used while none is open is not charged to any.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from agentos.kernels.energy.quantity import Quantity
from agentos.kernels.energy.source import EnergySource

__all__ = ["SharedMeter"]


class SharedMeter:
    """Splits one source's energy among overlapping windows (thread-safe).

    Args:
        source: the energy source, e.g. from :func:`~agentos.kernels.energy.meter.select_source`.
    """

    def __init__(self, source: EnergySource) -> None:
        self.source = source
        self.method = f"{source.method}; split evenly among windows open at once"
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._open: dict[int, float] = {}
        self._last: Any = None
        self._uncertainty = getattr(source, "uncertainty", 0.0)

    def _advance(self) -> None:
        """Charge the energy since the last sample to the windows open since then."""
        now = self.source.sample()
        if self._open and self._last is not None:
            q = self.source.between(self._last, now)
            self._uncertainty = q.uncertainty
            share = q.value / len(self._open)
            for key in self._open:
                self._open[key] += share
        self._last = now

    def open(self) -> int:
        """Open a window; returns its key for :meth:`close`."""
        with self._lock:
            self._advance()
            key = next(self._ids)
            self._open[key] = 0.0
            return key

    def close(self, key: int) -> Quantity:
        """Close window ``key``; returns its share of the energy.

        Raises:
            KeyError: ``key`` is not an open window.
        """
        with self._lock:
            self._advance()
            joules = self._open.pop(key)
        return Quantity(joules, "J", self.method, self._uncertainty)

    @property
    def open_windows(self) -> int:
        return len(self._open)
