"""Grams of CO2-equivalent from joules, by the carbon intensity of a region's electricity.

The table ``data/carbon.json`` ships with the package: lifecycle gCO2e per kWh of electricity
generated, by country (ISO 3166 alpha-2 code), plus ``WORLD`` and ``EU``, from Ember's Yearly
Electricity Data for 2023 (its 2024 release; the file states its source). Choose the region with
``region=`` or the ``AGENTOS_CARBON_REGION`` environment variable, or give your own intensity with
``g_per_kwh=`` / ``AGENTOS_CARBON_INTENSITY`` (e.g. your provider's figure).
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from typing import Any

from agentos.kernels.energy.quantity import Quantity, combine_uncertainty

__all__ = ["DEFAULT_REGION", "carbon_intensity", "co2_grams", "regions"]

DEFAULT_REGION = "WORLD"
_CONFIGURED_UNCERTAINTY = 0.1


@cache
def _table() -> dict[str, Any]:
    text = resources.files("agentos.kernels.energy").joinpath("data/carbon.json").read_text()
    return json.loads(text)


def regions() -> dict[str, float]:
    """Every region in the table and its gCO2e/kWh."""
    return dict(_table()["regions"])


def carbon_intensity(region: str | None = None, g_per_kwh: float | None = None) -> Quantity:
    """The carbon intensity to use, in gCO2e/kWh, with its source.

    Args:
        region: a code from :func:`regions` (``"US"``, ``"FR"``, ``"WORLD"``...); default
            ``AGENTOS_CARBON_REGION`` or ``WORLD``.
        g_per_kwh: your own figure, which wins over the table (default
            ``AGENTOS_CARBON_INTENSITY`` if set).

    Raises:
        ValueError: an unknown region (the message lists the known ones) or a negative figure.
    """
    if g_per_kwh is None and os.environ.get("AGENTOS_CARBON_INTENSITY"):
        g_per_kwh = float(os.environ["AGENTOS_CARBON_INTENSITY"])
    if g_per_kwh is not None:
        if g_per_kwh < 0:
            raise ValueError(f"carbon intensity must be >= 0 gCO2e/kWh, got {g_per_kwh}")
        return Quantity(float(g_per_kwh), "gCO2e/kWh", f"configured: {g_per_kwh:g} gCO2e/kWh",
                        _CONFIGURED_UNCERTAINTY)
    table = _table()
    code = (region or os.environ.get("AGENTOS_CARBON_REGION") or DEFAULT_REGION).upper()
    if code not in table["regions"]:
        raise ValueError(
            f"no carbon intensity for region {code!r}; known: {', '.join(sorted(table['regions']))}"
            " (or set AGENTOS_CARBON_INTENSITY to your grid's gCO2e/kWh)"
        )
    value = float(table["regions"][code])
    return Quantity(value, "gCO2e/kWh", f"{code} grid {value:g} gCO2e/kWh (Ember {table['year']})",
                    float(table["uncertainty"]))


def co2_grams(energy: Quantity, intensity: Quantity) -> Quantity:
    """gCO2e of ``energy`` (joules) at ``intensity``; uncertainties combine in quadrature."""
    grams = energy.value / 3.6e6 * intensity.value
    return Quantity(grams, "gCO2e", f"energy x {intensity.method}",
                    combine_uncertainty(energy.uncertainty, intensity.uncertainty))
