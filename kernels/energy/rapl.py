"""Linux RAPL energy counters read through the powercap sysfs interface.

Each zone ``/sys/class/powercap/intel-rapl:N`` (a CPU package) holds ``name`` (``package-N``),
``energy_uj`` (a cumulative counter in microjoules) and ``max_energy_range_uj`` (where the counter
wraps back to 0); sub-zones ``intel-rapl:N:M`` are its ``core``, ``uncore`` and ``dram`` domains
(on some machines ``dram`` or ``psys`` is a top-level zone instead). AMD Zen CPUs expose the same
files through the same driver. Package energy already includes core and uncore, so the default
domains are ``package`` and ``dram``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentos.kernels.energy.quantity import Quantity
from agentos.kernels.energy.source import EnergySourceUnavailable

__all__ = ["RAPL_UNCERTAINTY", "RaplSource", "RaplZone"]

#: Intel documents RAPL as a model-based estimate; against wall-plug meters package + dram agree
#: within a few percent on Haswell and later (Khan et al., "RAPL in Action", 2018).
RAPL_UNCERTAINTY = 0.05

_DOMAINS = ("package", "core", "uncore", "dram", "psys")


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One counter: its sysfs folder, domain name and wrap-around range (microjoules)."""

    path: Path
    name: str
    max_range_uj: int

    @property
    def domain(self) -> str:
        return self.name.split("-")[0]

    def read_uj(self) -> int:
        """The counter now.

        Raises:
            EnergySourceUnavailable: the file is not readable (permission denied, with the fix).
        """
        return _read_int(self.path / "energy_uj")


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as error:
        raise EnergySourceUnavailable(
            f"RAPL counter {path} is not readable by this user (permission denied): since the "
            "fix for CVE-2020-8694 (PLATYPUS) only root may read energy_uj. Run as root, or "
            "grant read access until the next reboot with `sudo chmod a+r "
            "/sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*/*/energy_uj`"
            " (or a udev rule for a permanent change), or use source='model'"
        ) from error
    except (OSError, ValueError) as error:
        raise EnergySourceUnavailable(f"RAPL counter {path} could not be read: {error}") from error


class RaplSource:
    """Energy between two samples from RAPL counters, wrap-around handled.

    Args:
        root: the powercap folder (tests pass a fake tree).
        domains: which domains to add up: ``package``, ``core``, ``uncore``, ``dram``, ``psys``.

    Raises:
        EnergySourceUnavailable: no powercap folder, no zone of the wanted domains, or a counter
            that cannot be read (permission denied, with the fix); the message says which.
        ValueError: an unknown domain, or ``package`` together with ``core``/``uncore`` (which it
            already contains: they would be counted twice).
    """

    uncertainty = RAPL_UNCERTAINTY

    def __init__(
        self, root: str | Path = "/sys/class/powercap", domains: Sequence[str] = ("package", "dram")
    ) -> None:
        unknown = sorted(set(domains) - set(_DOMAINS))
        if unknown:
            raise ValueError(f"unknown RAPL domains {unknown}; known: {list(_DOMAINS)}")
        if "package" in domains and {"core", "uncore"} & set(domains):
            raise ValueError("RAPL package energy already includes core and uncore; pick one")
        root = Path(root)
        if not root.is_dir():
            raise EnergySourceUnavailable(
                f"no RAPL: {root} does not exist (not Linux, a virtual machine or container that "
                "hides powercap, or the driver is not loaded: `sudo modprobe intel_rapl_msr`); "
                "use source='model' for a modelled estimate"
            )
        zones = []
        seen: set[Path] = set()
        # sysfs lists every zone at the top (symlinks) and sub-zones inside their package too.
        for folder in sorted(root.glob("*-rapl:*")) + sorted(root.glob("*-rapl:*/*-rapl:*")):
            if folder.resolve() in seen or not (folder / "energy_uj").exists():
                continue
            seen.add(folder.resolve())
            name = (folder / "name").read_text().strip()
            zone = RaplZone(folder, name, _read_int(folder / "max_energy_range_uj"))
            if zone.domain in domains:
                zones.append(zone)
        if not zones:
            raise EnergySourceUnavailable(
                f"no RAPL zone of domains {list(domains)} under {root}; use source='model'"
            )
        for zone in zones:
            zone.read_uj()  # a permission problem shows now, not at the end of a window
        self.zones: tuple[RaplZone, ...] = tuple(zones)
        self.method = "rapl: " + " + ".join(z.name for z in self.zones)

    def sample(self) -> tuple[float, tuple[int, ...]]:
        """``(perf_counter seconds, each zone's counter in microjoules)``."""
        return time.perf_counter(), tuple(z.read_uj() for z in self.zones)

    def between(self, start: tuple[float, tuple[int, ...]], end: tuple[float, tuple[int, ...]]) -> Quantity:
        """Joules from ``start`` to ``end``; a counter that wrapped once is unwrapped.

        A window longer than one wrap period (``max_energy_range_uj`` at full power: minutes to
        hours) cannot be told apart from a shorter one; sample at least that often.
        """
        total = 0
        for zone, a, b in zip(self.zones, start[1], end[1]):
            total += b - a if b >= a else b + zone.max_range_uj - a
        return Quantity(total / 1e6, "J", self.method, self.uncertainty)
