"""The tools of agentos-units; each is declared under [project.entry-points."agentos.tools"]."""

from __future__ import annotations

from typing import Literal

from agentos import tool

Unit = Literal["mm", "cm", "m", "km", "in", "ft", "mi"]

_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048,
           "mi": 1609.344}


@tool
def convert_length(value: float, from_unit: Unit, to_unit: Unit) -> float:
    """Convert a length between metric and imperial units.

    Args:
        value: the length.
        from_unit: its unit.
        to_unit: the unit wanted.
    """
    return round(value * _METRES[from_unit] / _METRES[to_unit], 6)
