"""``EnergyMeter``: joules, watts, duration, FLOPs and gCO2e of a window of work.

    >>> meter = EnergyMeter()                 # source chosen automatically, named in every figure
    >>> with meter as window:
    ...     work()
    >>> window.reading.energy                  # Quantity(value=..., unit="J", method=..., uncertainty=...)

Windows nest: each ``with meter:`` opens its own window (an inner window's energy is part of the
outer one's), and ``@meter`` meters every call of a function. Every figure carries the method
behind it; a source that was asked for and cannot be read raises
:class:`~agentos.kernels.energy.source.EnergySourceUnavailable` with the reason, and ``"auto"``
names in its method why a counter was not used.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from agentos.kernels.energy.carbon import carbon_intensity, co2_grams
from agentos.kernels.energy.quantity import Quantity
from agentos.kernels.energy.source import CombinedSource, EnergySource, EnergySourceUnavailable

__all__ = ["EnergyMeter", "Reading", "SourceName", "Window", "select_source"]

F = TypeVar("F", bound=Callable[..., Any])
SourceName = Literal["auto", "rapl", "nvml", "model"]

_NOT_COUNTED = "not counted (meter with count_flops=True, or call window.add_flops)"


def select_source(source: SourceName | EnergySource = "auto") -> EnergySource:
    """The energy source for a name.

    ``"rapl"``, ``"nvml"`` and ``"model"`` are exactly that source. ``"auto"`` is RAPL when its
    counters can be read, else the CPU model (its method then says why RAPL was not used), plus
    NVML when an NVIDIA GPU is visible.

    Raises:
        EnergySourceUnavailable: a named source cannot be read here (the message says why).
        ValueError: an unknown name.
    """
    from agentos.kernels.energy.cpu_model import CpuModelSource
    from agentos.kernels.energy.nvml import NvmlSource
    from agentos.kernels.energy.rapl import RaplSource

    if not isinstance(source, str):
        return source
    if source == "rapl":
        return RaplSource()
    if source == "nvml":
        return NvmlSource()
    if source == "model":
        return CpuModelSource()
    if source != "auto":
        raise ValueError(f"energy source must be auto, rapl, nvml or model, got {source!r}")
    try:
        cpu: EnergySource = RaplSource()
    except EnergySourceUnavailable as why:
        cpu = CpuModelSource()
        cpu.method = f"{cpu.method}; RAPL not used: {str(why).split(' (')[0].split(';')[0]}"
    try:
        gpu = NvmlSource()
    except EnergySourceUnavailable:
        return cpu  # no NVIDIA GPU: nothing on it to meter
    return CombinedSource([cpu, gpu])


@dataclass(frozen=True, slots=True)
class Reading:
    """What one window used; each figure is a :class:`Quantity` with its method."""

    label: str | None
    duration: Quantity
    energy: Quantity
    power: Quantity
    flops: Quantity
    co2: Quantity

    @property
    def joules(self) -> float:
        return self.energy.value

    @property
    def watts(self) -> float:
        return self.power.value

    @property
    def seconds(self) -> float:
        return self.duration.value

    @property
    def gco2(self) -> float:
        return self.co2.value

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON: each figure as ``{value, unit, method, uncertainty}``."""
        out: dict[str, Any] = {"label": self.label}
        for name in ("duration", "energy", "power", "flops", "co2"):
            q: Quantity = getattr(self, name)
            out[name] = {"value": q.value, "unit": q.unit, "method": q.method,
                         "uncertainty": None if math.isinf(q.uncertainty) else q.uncertainty}
        return out


@dataclass(slots=True)
class Window:
    """One open (then closed) window; :attr:`reading` is set when it closes."""

    label: str | None
    start: Any
    t0: float
    flops: float = 0.0
    flop_methods: list[str] = field(default_factory=list)
    flop_uncertainty: float = 0.0
    reading: Reading | None = None
    _counter: Any = None
    _parent: Window | None = None

    def add_flops(self, flops: float, method: str, uncertainty: float = 0.0) -> None:
        """Count ``flops`` done in this window (and the windows around it), e.g. an analytic
        count from :mod:`agentos.kernels.flops`, with how it was obtained."""
        window: Window | None = self
        while window is not None:
            window.flops += flops
            if method not in window.flop_methods:
                window.flop_methods.append(method)
            window.flop_uncertainty = max(window.flop_uncertainty, uncertainty)
            window = window._parent


class EnergyMeter:
    """Meters windows of work: a context manager, a decorator, and nestable.

    Args:
        source: ``"auto"``, ``"rapl"``, ``"nvml"``, ``"model"`` or an :class:`EnergySource`.
        region, g_per_kwh: the carbon intensity (see :func:`carbon_intensity`).
        count_flops: count the window's PyTorch FLOPs with ``torch.utils.flop_counter``.
        label: a name kept in the readings.

    Attributes:
        readings: every closed window's reading, in the order they closed.

    Raises:
        EnergySourceUnavailable: the named source cannot be read here.
        ValueError: an unknown source name or carbon region.
    """

    def __init__(
        self,
        source: SourceName | EnergySource = "auto",
        *,
        region: str | None = None,
        g_per_kwh: float | None = None,
        count_flops: bool = False,
        label: str | None = None,
    ) -> None:
        self.source = select_source(source)
        self.intensity = carbon_intensity(region, g_per_kwh)
        self.count_flops = count_flops
        self.label = label
        self.readings: list[Reading] = []
        self._local = threading.local()

    @property
    def method(self) -> str:
        return self.source.method

    def _stack(self) -> list[Window]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def window(self, label: str | None = None) -> _WindowContext:
        """A context manager for one window named ``label``."""
        return _WindowContext(self, label if label is not None else self.label)

    def __enter__(self) -> Window:
        context = self.window()
        self._stack_contexts().append(context)
        return context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._stack_contexts().pop().__exit__(*exc)

    def _stack_contexts(self) -> list[_WindowContext]:
        contexts = getattr(self._local, "contexts", None)
        if contexts is None:
            contexts = self._local.contexts = []
        return contexts

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (sync or async) so each call is a window labelled with its name.

        An async function's window spans its whole await, so other tasks the event loop runs
        meanwhile are counted in it too.
        """
        import inspect

        label = self.label or fn.__qualname__
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def ametered(*args: Any, **kwargs: Any) -> Any:
                with self.window(label):
                    return await fn(*args, **kwargs)

            return ametered  # type: ignore[return-value]

        @functools.wraps(fn)
        def metered(*args: Any, **kwargs: Any) -> Any:
            with self.window(label):
                return fn(*args, **kwargs)

        return metered  # type: ignore[return-value]

    @property
    def last(self) -> Reading:
        """The reading of the window that closed last.

        Raises:
            LookupError: no window has closed yet.
        """
        if not self.readings:
            raise LookupError("no window has closed yet: use `with meter:` or `@meter` first")
        return self.readings[-1]

    def _open(self, label: str | None) -> Window:
        stack = self._stack()
        window = Window(label, None, 0.0, _parent=stack[-1] if stack else None)
        if self.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            from agentos.kernels.flops import teach_flop_counter

            teach_flop_counter()
            window._counter = FlopCounterMode(display=False)
            window._counter.__enter__()
        stack.append(window)
        window.t0 = time.perf_counter()
        window.start = self.source.sample()
        return window

    def _close(self, window: Window, exc: Any = (None, None, None)) -> Reading:
        end = self.source.sample()
        t1 = time.perf_counter()
        stack = self._stack()
        assert stack and stack[-1] is window, "energy windows must close in the reverse order"
        stack.pop()
        if window._counter is not None:
            window._counter.__exit__(*exc)
            counted = window._counter.get_total_flops()
            window.flops += counted
            window.flop_methods.insert(0, "torch.utils.flop_counter")
            if window._parent is not None and window._parent._counter is None:
                window._parent.add_flops(counted, "torch.utils.flop_counter")
        energy = self.source.between(window.start, end)
        seconds = t1 - window.t0
        duration = Quantity(seconds, "s", "time.perf_counter", 0.0)
        power = Quantity(energy.value / seconds if seconds > 0 else 0.0, "W",
                         "energy / duration", energy.uncertainty)
        if window.flop_methods:
            flops = Quantity(window.flops, "FLOP", " + ".join(window.flop_methods),
                             window.flop_uncertainty)
        else:
            flops = Quantity(0.0, "FLOP", _NOT_COUNTED, math.inf)
        reading = Reading(window.label, duration, energy, power, flops,
                          co2_grams(energy, self.intensity))
        window.reading = reading
        self.readings.append(reading)
        return reading


class _WindowContext:
    def __init__(self, meter: EnergyMeter, label: str | None) -> None:
        self._meter = meter
        self._label = label
        self._window: Window | None = None

    def __enter__(self) -> Window:
        self._window = self._meter._open(self._label)
        return self._window

    def __exit__(self, *exc: Any) -> None:
        assert self._window is not None
        self._meter._close(self._window, exc)
