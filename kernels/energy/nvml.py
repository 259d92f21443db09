"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

``nvmlDeviceGetTotalEnergyConsumption`` is a cumulative counter in millijoules (Volta and
later), but the driver refreshes it only about every 100 ms, so a shorter window could read 0 or
a whole period. Windows shorter than :data:`SHORT_WINDOW_S` therefore use power × time instead:
the mean of ``nvmlDeviceGetPowerUsage`` (milliwatts) at both ends times the duration, and say so
in their method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agentos.kernels.energy.quantity import Quantity
from agentos.kernels.energy.source import EnergySourceUnavailable

__all__ = ["NVML_UNCERTAINTY", "NvmlSource", "SHORT_WINDOW_S"]

#: Windows shorter than this use power x time; the energy counter updates about every 100 ms.
SHORT_WINDOW_S = 0.1
#: NVIDIA specifies board power readings to about ±5 % (±5 W on some boards).
NVML_UNCERTAINTY = 0.05
#: Power x time over a window shorter than the sensor's averaging period is rougher.
NVML_SHORT_UNCERTAINTY = 0.25


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as error:
        raise EnergySourceUnavailable(
            'NVML needs nvidia-ml-py: pip install "agentos-kit[ml]" (or pip install nvidia-ml-py)'
        ) from error
    return pynvml


class NvmlSource:
    """Energy of NVIDIA GPUs between two samples.

    Args:
        devices: GPU indices to add up; ``None``: every GPU NVML sees.
        nvml: the ``pynvml`` module (tests pass a fake); imported when ``None``.

    Raises:
        EnergySourceUnavailable: nvidia-ml-py is missing, NVML cannot start (no NVIDIA driver),
            there is no GPU, or a GPU has no energy counter (older than Volta).
    """

    def __init__(self, devices: Sequence[int] | None = None, *, nvml: Any = None) -> None:
        self._nvml = nvml if nvml is not None else _import_pynvml()
        try:
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
        except self._nvml.NVMLError as error:
            raise EnergySourceUnavailable(
                f"NVML could not start ({error}): no NVIDIA driver here? use source='model'"
            ) from error
        indices = list(range(count)) if devices is None else list(devices)
        if not indices:
            raise EnergySourceUnavailable("NVML sees no GPU; use source='model'")
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise EnergySourceUnavailable(f"GPU indices {bad} do not exist; NVML sees {count}")
        self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        try:
            for handle in self._handles:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                self._nvml.nvmlDeviceGetPowerUsage(handle)
        except self._nvml.NVMLError as error:
            raise EnergySourceUnavailable(
                f"a GPU has no NVML energy counter ({error}; it needs Volta or later); "
                "use source='model'"
            ) from error
        gpus = ", ".join(str(i) for i in indices)
        self.method = f"nvml: total energy counter (GPU {gpus})"
        self._short_method = f"nvml: power x time, window < {SHORT_WINDOW_S * 1e3:.0f} ms (GPU {gpus})"

    def sample(self) -> tuple[float, tuple[int, ...], tuple[int, ...]]:
        """``(perf_counter seconds, energy counters in mJ, power in mW)``."""
        nvml = self._nvml
        return (
            time.perf_counter(),
            tuple(nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles),
            tuple(nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles),
        )

    def between(self, start: tuple[float, tuple[int, ...], tuple[int, ...]],
                end: tuple[float, tuple[int, ...], tuple[int, ...]]) -> Quantity:
        """Joules from ``start`` to ``end``: the counter, or power × time under 100 ms."""
        seconds = end[0] - start[0]
        if seconds < SHORT_WINDOW_S:
            watts = sum((a + b) / 2 for a, b in zip(start[2], end[2])) / 1e3
            return Quantity(watts * seconds, "J", self._short_method, NVML_SHORT_UNCERTAINTY)
        millijoules = sum(b - a for a, b in zip(start[1], end[1]))
        return Quantity(millijoules / 1e3, "J", self.method, NVML_UNCERTAINTY)
