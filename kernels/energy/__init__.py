"""Energy meter: joules, watts, FLOPs and gCO2e of a window of work, each with its method.

Sources (see :func:`select_source`): Linux RAPL powercap counters (:mod:`.rapl`), NVIDIA's NVML
energy counter (:mod:`.nvml`), and a model for machines without counters, process CPU time ×
per-thread power from a shipped CPU table (:mod:`.cpu_model`). Carbon intensity by region from a
shipped table (:mod:`.carbon`). :class:`SharedMeter` splits one source among overlapping windows
(the kernel's concurrent syscalls). Imports neither torch nor psutil until a meter needs them.
"""

from __future__ import annotations

from agentos.kernels.energy.carbon import DEFAULT_REGION, carbon_intensity, co2_grams, regions
from agentos.kernels.energy.cpu_model import CpuModelSource, CpuPower, cpu_name, lookup_cpu
from agentos.kernels.energy.meter import EnergyMeter, Reading, SourceName, Window, select_source
from agentos.kernels.energy.nvml import NvmlSource
from agentos.kernels.energy.quantity import Quantity, combine_uncertainty
from agentos.kernels.energy.rapl import RaplSource, RaplZone
from agentos.kernels.energy.shared import SharedMeter
from agentos.kernels.energy.source import CombinedSource, EnergySource, EnergySourceUnavailable

__all__ = [
    "DEFAULT_REGION",
    "CombinedSource",
    "CpuModelSource",
    "CpuPower",
    "EnergyMeter",
    "EnergySource",
    "EnergySourceUnavailable",
    "NvmlSource",
    "Quantity",
    "RaplSource",
    "RaplZone",
    "Reading",
    "SharedMeter",
    "SourceName",
    "Window",
    "carbon_intensity",
    "co2_grams",
    "combine_uncertainty",
    "cpu_name",
    "lookup_cpu",
    "regions",
    "select_source",
]
