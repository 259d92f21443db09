"""The modelled energy source, for machines without an energy counter (virtual machines).

    joules = process CPU seconds × watts per busy hardware thread
           + resident memory (GB) × memory watts per GB × seconds

Process CPU seconds are user + system time of this process and of its children that have been
waited for (``os.times()`` for this process on Linux, ``psutil`` for another), so work in threads (llama.cpp, torch) and in finished subprocesses
counts. Watts per thread is the CPU's TDP divided by its hardware threads, from the table
``data/cpus.json`` shipped with the package (vendors' specifications; a CPU not in it uses a
stated assumption, never a silent one). Memory power is 0.375 W per GB. Everything here is a
model, and each figure's method says so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from agentos.kernels.energy.quantity import Quantity

__all__ = ["CpuPower", "CpuModelSource", "cpu_name", "lookup_cpu"]

#: Relative uncertainty of TDP-per-thread: real draw depends on frequency, SIMD use and idle power.
MODEL_UNCERTAINTY = 0.5
#: For a CPU matched only by family, or not matched at all.
ASSUMED_UNCERTAINTY = 1.0


@dataclass(frozen=True, slots=True)
class CpuPower:
    """Watts one busy hardware thread of a CPU draws, and where the figure comes from."""

    cpu: str
    watts_per_thread: float
    basis: str
    uncertainty: float


@cache
def _table() -> dict[str, Any]:
    text = resources.files("agentos.kernels.energy").joinpath("data/cpus.json").read_text()
    return json.loads(text)


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def lookup_cpu(name: str) -> CpuPower:
    """Watts per thread for CPU ``name``: the longest table entry it contains, else the default."""
    table = _table()
    hits = [e for e in table["cpus"] if e["match"].lower() in name.lower()]
    if hits:
        entry = max(hits, key=lambda e: len(e["match"]))
        note = entry.get("note")
        basis = f"{entry['match']}: TDP {entry['tdp_w']} W / {entry['threads']} threads"
        if note:
            basis += f", {note}"
        uncertainty = ASSUMED_UNCERTAINTY if note and "assumed" in note else MODEL_UNCERTAINTY
        return CpuPower(name, entry["tdp_w"] / entry["threads"], basis, uncertainty)
    default = table["default"]
    return CpuPower(name, default["tdp_w"] / default["threads"], f"{name!r} not in the CPU table: "
                    f"{default['note']}", ASSUMED_UNCERTAINTY)


class CpuModelSource:
    """Modelled energy of this process: CPU time × per-thread power, plus memory.

    Args:
        power: the CPU's per-thread power; looked up from ``/proc/cpuinfo`` when ``None``.
        memory_w_per_gb: memory power; the table's 0.375 W/GB when ``None``.
        pid: the process to meter; this one when ``None``.
    """

    def __init__(self, power: CpuPower | None = None, *, memory_w_per_gb: float | None = None,
                 pid: int | None = None) -> None:
        self.power = power or lookup_cpu(cpu_name())
        self.memory_w_per_gb = (
            _table()["memory_w_per_gb"] if memory_w_per_gb is None else memory_w_per_gb
        )
        # This process on Linux: os.times() and /proc/self/statm, 3-4x cheaper than psutil.
        self._fast = (pid is None or pid == os.getpid()) and Path("/proc/self/statm").is_file()
        self._page = os.sysconf("SC_PAGE_SIZE") if self._fast else 0
        if not self._fast:
            import psutil

            self._process = psutil.Process(pid)
        self.uncertainty = self.power.uncertainty
        self.method = (
            f"modelled: process CPU time x {self.power.watts_per_thread:.2f} W/thread "
            f"({self.power.basis}) + resident memory x {self.memory_w_per_gb} W/GB"
        )

    def sample(self) -> tuple[float, float, int]:
        """``(perf_counter seconds, process CPU seconds incl. waited children, RSS bytes)``."""
        if self._fast:
            t = os.times()
            rss = int(os.pread(self._statm(), 128, 0).split()[1]) * self._page
            return time.perf_counter(), t.user + t.system + t.children_user + t.children_system, rss
        with self._process.oneshot():
            t = self._process.cpu_times()
            rss = self._process.memory_info().rss
        return time.perf_counter(), t.user + t.system + t.children_user + t.children_system, rss

    def _statm(self) -> int:
        """An open descriptor of this process's ``/proc/<pid>/statm`` (reopened after a fork)."""
        pid = os.getpid()
        if getattr(self, "_statm_pid", None) != pid:
            self._statm_fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
            self._statm_pid = pid
        return self._statm_fd

    def cpu_seconds(self, start: tuple[float, float, int], end: tuple[float, float, int]) -> float:
        return end[1] - start[1]

    def between(self, start: tuple[float, float, int], end: tuple[float, float, int]) -> Quantity:
        """Modelled joules from ``start`` to ``end``."""
        seconds = end[0] - start[0]
        cpu_j = (end[1] - start[1]) * self.power.watts_per_thread
        memory_j = (start[2] + end[2]) / 2 / 1e9 * self.memory_w_per_gb * seconds
        return Quantity(cpu_j + memory_j, "J", self.method, self.uncertainty)
