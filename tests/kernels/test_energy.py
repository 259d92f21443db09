"""The energy meter: RAPL on fake sysfs trees, NVML through a fake module, the CPU model for real."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import resource
import time
from pathlib import Path

import pytest

from agentos.kernels.energy import (
    CombinedSource,
    EnergyMeter,
    EnergySourceUnavailable,
    NvmlSource,
    RaplSource,
    SharedMeter,
    carbon_intensity,
    lookup_cpu,
    regions,
)

ROOT = Path(__file__).resolve().parents[2]


def _zone(folder: Path, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    folder.mkdir(parents=True)
    (folder / "name").write_text(f"{name}\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def _powercap(tmp_path: Path) -> Path:
    """A sysfs-like tree: package-0 with core and dram sub-zones, also linked at the top."""
    root = tmp_path / "powercap"
    package = _zone(root / "intel-rapl:0", "package-0", 1_000_000)
    core = _zone(package / "intel-rapl:0:0", "core", 500_000)
    dram = _zone(package / "intel-rapl:0:1", "dram", 100_000)
    (root / "intel-rapl:0:0").symlink_to(core)
    (root / "intel-rapl:0:1").symlink_to(dram)
    (root / "intel-rapl").mkdir()  # the control type folder: no counter
    return root


def _set(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


# --- RAPL ---------------------------------------------------------------------------------


def test_rapl_adds_package_and_dram_once_each(tmp_path: Path) -> None:
    root = _powercap(tmp_path)
    source = RaplSource(root)
    assert [z.name for z in source.zones] == ["package-0", "dram"]  # symlinks not counted twice
    start = source.sample()
    _set(root / "intel-rapl:0", 4_000_000)  # +3 J
    _set(root / "intel-rapl:0" / "intel-rapl:0:1", 600_000)  # +0.5 J
    q = source.between(start, source.sample())
    assert q.value == pytest.approx(3.5)
    assert q.method == "rapl: package-0 + dram" and q.unit == "J"


def test_rapl_counter_wrapping_around_is_unwrapped(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root / "intel-rapl:0", "package-0", 9_900_000, max_uj=10_000_000)
    source = RaplSource(root, domains=["package"])
    start = source.sample()
    _set(zone, 200_000)  # wrapped: 0.1 J to the top, then 0.2 J
    assert source.between(start, source.sample()).value == pytest.approx(0.3)


def test_rapl_meter_window_reports_joules_watts_and_method(tmp_path: Path) -> None:
    root = _powercap(tmp_path)
    meter = EnergyMeter(RaplSource(root), region="FR")
    with meter as window:
        _set(root / "intel-rapl:0", 11_000_000)  # +10 J
        time.sleep(0.05)
    r = window.reading
    assert r is not None and r.joules == pytest.approx(10.0)
    assert r.watts == pytest.approx(10.0 / r.seconds)
    assert r.energy.method.startswith("rapl:") and r.energy.uncertainty == pytest.approx(0.05)
    assert r.gco2 == pytest.approx(10.0 / 3.6e6 * regions()["FR"])
    assert "FR grid" in r.co2.method


def test_no_powercap_folder_is_a_clear_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(EnergySourceUnavailable, match="does not exist.*source='model'"):
        RaplSource(tmp_path / "missing")
    with pytest.raises(EnergySourceUnavailable, match="no RAPL zone"):
        RaplSource(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unreadable_rapl_counter_says_permission_denied_and_the_fix() -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="agentos-rapl-"))  # pytest's tmp is private to root
    try:
        _check_permission_denied(base)
    finally:
        shutil.rmtree(base)


def _check_permission_denied(base: Path) -> None:
    base.chmod(0o755)
    root = _powercap(base)
    counter = root / "intel-rapl:0" / "energy_uj"
    counter.chmod(0o600)  # as on Linux since the PLATYPUS fix: root only
    code = (
        "import sys\nfrom agentos.kernels.energy import RaplSource, EnergySourceUnavailable\n"
        f"try:\n    RaplSource({str(root)!r})\nexcept EnergySourceUnavailable as e:\n"
        "    print(e)\n    sys.exit(3)\n"
    )
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root reads anything: check as an unprivileged user
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 3, out.stderr
    assert "permission denied" in out.stdout and "chmod a+r" in out.stdout
    # Control: the same tree is readable by its owner, so the error came from the permission.
    if os.geteuid() == 0:
        assert RaplSource(root).sample()[1][0] == 1_000_000


def test_rapl_rejects_domains_it_would_count_twice(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already includes core"):
        RaplSource(_powercap(tmp_path), domains=["package", "core"])


# --- NVML ---------------------------------------------------------------------------------


class _FakeNvml:
    """The slice of pynvml the meter calls: one GPU with a settable counter and power."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj: int = 5_000, power_mw: int = 100_000, supported: bool = True):
        self.energy_mj, self.power_mw, self.supported = energy_mj, power_mw, supported

    def nvmlInit(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: return 1
    def nvmlDeviceGetHandleByIndex(self, i: int) -> str: return f"gpu{i}"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return self.power_mw


def test_nvml_long_window_reads_the_energy_counter() -> None:
    nvml = _FakeNvml()
    source = NvmlSource(nvml=nvml)
    start = source.sample()
    nvml.energy_mj += 42_000
    time.sleep(0.12)
    q = source.between(start, source.sample())
    assert q.value == pytest.approx(42.0) and "total energy counter" in q.method


def test_nvml_window_under_100_ms_uses_power_times_time() -> None:
    nvml = _FakeNvml(power_mw=200_000)
    source = NvmlSource(nvml=nvml)
    start = source.sample()
    nvml.energy_mj += 99_999  # the counter is not trusted at this scale
    end = source.sample()
    q = source.between(start, end)
    assert q.value == pytest.approx(200.0 * (end[0] - start[0]))
    assert "power x time" in q.method and q.uncertainty > 0.05


def test_nvml_without_energy_counter_or_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EnergySourceUnavailable, match="Volta"):
        NvmlSource(nvml=_FakeNvml(supported=False))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    with pytest.raises(EnergySourceUnavailable, match="nvidia-ml-py"):
        NvmlSource()


def test_combined_source_adds_cpu_and_gpu(tmp_path: Path) -> None:
    root = _powercap(tmp_path)
    nvml = _FakeNvml()
    source = CombinedSource([RaplSource(root), NvmlSource(nvml=nvml)])
    start = source.sample()
    _set(root / "intel-rapl:0", 3_000_000)  # +2 J
    nvml.energy_mj += 8_000  # +8 J
    time.sleep(0.12)
    q = source.between(start, source.sample())
    assert q.value == pytest.approx(10.0) and "rapl" in q.method and "nvml" in q.method


# --- the CPU model, for real ----------------------------------------------------------------


def test_modelled_joules_scale_with_the_cpu_time_burnt() -> None:
    meter = EnergyMeter("model")
    with meter as short:
        _burn(0.15)
    before, wall_before = os.times(), time.perf_counter()
    with meter as long:
        _burn(0.45)
    after, wall = os.times(), time.perf_counter() - wall_before
    assert short.reading and long.reading
    ratio = long.reading.joules / short.reading.joules
    assert 2.2 < ratio < 3.8, ratio  # 3x the CPU time, 3x the joules (memory adds a little)
    per_thread = meter.source.power.watts_per_thread  # type: ignore[attr-defined]
    # At least the burnt CPU time's joules; at most the whole process's CPU time (other threads
    # count too) plus memory at the peak RSS for the window's wall time (longer on a loaded host).
    cpu = (after.user + after.system) - (before.user + before.system)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    upper = cpu * per_thread + peak_gb * meter.source.memory_w_per_gb * wall  # type: ignore[attr-defined]
    assert 0.45 * per_thread * 0.95 <= long.reading.joules <= upper * 1.05 + 0.01
    assert long.reading.energy.method.startswith("modelled: process CPU time x")


def test_idle_window_models_almost_no_cpu_energy() -> None:
    meter = EnergyMeter("model")
    with meter as idle:
        time.sleep(0.2)
    with meter as busy:
        _burn(0.2)
    assert idle.reading and busy.reading
    assert idle.reading.joules < 0.2 * busy.reading.joules


def test_nested_windows_and_decorator() -> None:
    meter = EnergyMeter("model")

    @meter
    def work() -> int:
        _burn(0.05)
        return 7

    with meter.window("outer") as outer:
        with meter.window("inner") as inner:
            _burn(0.1)
            inner.add_flops(1e6, "analytic: test")
        assert work() == 7
    assert outer.reading and inner.reading
    assert [r.label for r in meter.readings] == ["inner", "test_nested_windows_and_decorator.<locals>.work", "outer"]
    assert outer.reading.joules > inner.reading.joules > 0
    assert outer.reading.seconds >= inner.reading.seconds
    assert outer.reading.flops.value == inner.reading.flops.value == 1e6  # counted once, up the stack
    assert meter.last is outer.reading


def test_decorated_async_function_is_metered_over_its_await() -> None:
    import asyncio

    meter = EnergyMeter("model")

    @meter
    async def work() -> str:
        await asyncio.sleep(0.01)
        _burn(0.1)
        return "ok"

    assert asyncio.run(work()) == "ok"
    assert meter.last.seconds >= 0.1 and meter.last.joules > 0


def test_meter_counts_torch_flops_when_asked() -> None:
    torch = pytest.importorskip("torch")
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    with EnergyMeter("model", count_flops=True) as window:
        a @ b
    assert window.reading and window.reading.flops.value == 2 * 64 * 32 * 16
    assert window.reading.flops.method == "torch.utils.flop_counter"


def test_uncounted_flops_say_so() -> None:
    with EnergyMeter("model") as window:
        pass
    assert window.reading and window.reading.flops.value == 0
    assert window.reading.flops.method.startswith("not counted") and math.isinf(window.reading.flops.uncertainty)
    json.dumps(window.reading.as_dict())  # JSON-able for reports


def test_auto_source_names_why_rapl_was_not_used() -> None:
    meter = EnergyMeter("auto")
    if Path("/sys/class/powercap").is_dir():
        pytest.skip("this machine has powercap")
    assert "modelled" in meter.method and "RAPL not used" in meter.method


def test_cpu_table_lookup_states_its_basis() -> None:
    exact = lookup_cpu("AMD EPYC 7763 64-Core Processor")
    assert exact.watts_per_thread == pytest.approx(280 / 128) and exact.uncertainty == 0.5
    family = lookup_cpu("AMD EPYC")
    assert "assumed" in family.basis and family.uncertainty == 1.0
    unknown = lookup_cpu("Imaginary CPU 9000")
    assert "not in the CPU table" in unknown.basis and unknown.watts_per_thread == 10.0


# --- carbon and sharing -------------------------------------------------------------------


def test_carbon_intensity_by_region_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTOS_CARBON_INTENSITY", raising=False)
    monkeypatch.setenv("AGENTOS_CARBON_REGION", "se")
    assert carbon_intensity().value == regions()["SE"] and "Ember 2023" in carbon_intensity().method
    assert carbon_intensity(g_per_kwh=123).method == "configured: 123 gCO2e/kWh"
    monkeypatch.setenv("AGENTOS_CARBON_INTENSITY", "50")
    assert carbon_intensity().value == 50.0
    monkeypatch.delenv("AGENTOS_CARBON_INTENSITY")
    with pytest.raises(ValueError, match="known: .*WORLD"):
        carbon_intensity("ATLANTIS")


def test_shared_meter_splits_overlapping_windows_without_double_counting(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root / "intel-rapl:0", "package-0", 0)
    shared = SharedMeter(RaplSource(root, domains=["package"]))
    a = shared.open()
    _set(zone, 2_000_000)  # 2 J with only a open
    b = shared.open()
    _set(zone, 6_000_000)  # 4 J with a and b open: 2 J each
    qa = shared.close(a)
    _set(zone, 7_000_000)  # 1 J with only b open
    qb = shared.close(b)
    _set(zone, 9_000_000)  # nobody open: nobody charged
    c = shared.open()
    qc = shared.close(c)
    assert (qa.value, qb.value, qc.value) == pytest.approx((4.0, 3.0, 0.0))
    assert qa.value + qb.value == pytest.approx(7.0)  # exactly what the counter saw
    assert "split evenly" in qa.method
