"""A number with its unit, the method behind it and its uncertainty."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Quantity", "combine_uncertainty"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """One figure of a reading.

    Attributes:
        value: the number, in ``unit``.
        unit: ``"J"``, ``"W"``, ``"s"``, ``"FLOP"`` or ``"gCO2e"``.
        method: how it was obtained: the counter that measured it (``"rapl: package-0 + dram"``,
            ``"nvml: total energy counter"``), or the formula that modelled or estimated it.
        uncertainty: relative, e.g. ``0.05`` for about ±5 %; ``math.inf`` when unknown (a figure
            that was not counted).
    """

    value: float
    unit: str
    method: str
    uncertainty: float

    def __str__(self) -> str:
        spread = "" if math.isinf(self.uncertainty) else f" ±{self.uncertainty:.0%}"
        return f"{self.value:.4g} {self.unit}{spread} ({self.method})"


def combine_uncertainty(*relative: float) -> float:
    """Relative uncertainty of a product or quotient of independent figures (in quadrature)."""
    return math.sqrt(sum(r * r for r in relative))
