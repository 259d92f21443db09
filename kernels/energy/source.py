"""What an energy source is, and the error when one is not available."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from agentos.kernels.energy.quantity import Quantity

__all__ = ["CombinedSource", "EnergySource", "EnergySourceUnavailable"]


class EnergySourceUnavailable(RuntimeError):
    """The energy source asked for cannot be read here; the message says why and what to do."""


@runtime_checkable
class EnergySource(Protocol):
    """Something that can say how much energy was used between two moments.

    Attributes:
        method: how its figures are obtained, stated in every :class:`Quantity` it returns.
    """

    method: str

    def sample(self) -> Any:
        """A snapshot of the counters (cheap: it is taken at both ends of every window)."""
        ...

    def between(self, start: Any, end: Any) -> Quantity:
        """Joules used from snapshot ``start`` to snapshot ``end``."""
        ...


class CombinedSource:
    """The sum of several sources, e.g. CPU package (RAPL or modelled) plus GPU (NVML)."""

    def __init__(self, sources: Sequence[EnergySource]) -> None:
        if not sources:
            raise ValueError("CombinedSource needs at least one source")
        self.sources = tuple(sources)
        self.method = " + ".join(f"[{s.method}]" for s in self.sources)

    def sample(self) -> tuple[Any, ...]:
        return tuple(s.sample() for s in self.sources)

    def between(self, start: tuple[Any, ...], end: tuple[Any, ...]) -> Quantity:
        parts = [s.between(a, b) for s, a, b in zip(self.sources, start, end)]
        total = sum(p.value for p in parts)
        # Absolute errors add (the sources may be correlated through the same workload).
        spread = sum(p.value * p.uncertainty for p in parts)
        uncertainty = spread / total if total > 0 else max(p.uncertainty for p in parts)
        return Quantity(total, "J", self.method, uncertainty)
