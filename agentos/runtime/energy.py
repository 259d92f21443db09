"""Energy, FLOPs and CO2 of every syscall: what the kernel measures, models or estimates.

- **In-process work** (tools, memory operations, local llama.cpp models, any :class:`LLM` object
  that runs here): the kernel meters each attempt's service time with one shared energy source
  (:class:`~agentos.kernels.energy.SharedMeter`): RAPL where its counters can be read, else the
  model of process CPU time × per-thread CPU power (``energy_source`` setting; the method string
  says which, and why RAPL was not used). Syscalls that run at the same time split what the
  source measured evenly, so their joules add up to the process's, not to a multiple of it.
- **Local models' FLOPs**: estimated as ``2 x parameters x (prompt + completion tokens)``
  (:func:`agentos.kernels.flops.llm_flops`) for the catalogue models, whose parameter counts are
  in :data:`LOCAL_PARAMS`.
- **Remote LLMs** (litellm providers): nothing of the provider's hardware can be measured, so
  :func:`estimate_remote` estimates FLOPs as ``2 x`` :data:`REMOTE_ACTIVE_PARAMS` ``x tokens`` and
  joules as FLOPs × :data:`REMOTE_J_PER_FLOP`; both are marked ``estimated``.
- **CO2**: joules × the carbon intensity of ``carbon_region`` (or ``carbon_intensity``); for
  remote calls the provider's grid is unknown and the world average is used.

An :class:`~agentos.runtime.llm.types.LLM` that fills ``Completion.energy_j`` (or
``energy_method``) itself is trusted: its figures are recorded as it reported them.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from agentos.kernels.energy import Quantity, SharedMeter

__all__ = [
    "LOCAL_PARAMS",
    "REMOTE_ACTIVE_PARAMS",
    "REMOTE_J_PER_FLOP",
    "EnergyAccounting",
    "SyscallEnergy",
    "Tally",
    "estimate_remote",
]

T = TypeVar("T")

#: Parameter counts of the catalogue's local models (Qwen2.5-Coder model cards: 0.49 B, 1.54 B).
LOCAL_PARAMS: dict[str, float] = {"qwen2.5-coder-0.5b": 0.49e9, "qwen2.5-coder-1.5b": 1.54e9}
#: Assumed active parameters of a remote model (Epoch AI's 2025 assumption for GPT-4o).
REMOTE_ACTIVE_PARAMS = 100e9
#: Joules per FLOP of a remote provider: an H100 (989 TFLOP/s dense BF16) at 10 % utilisation
#: drawing 1.5 kW with its share of server and data-centre overhead (Epoch AI, "How much energy
#: does ChatGPT use?", 2025): 1500 / (0.1 * 989e12).
REMOTE_J_PER_FLOP = 1500 / (0.1 * 989e12)
#: Relative uncertainty of the remote estimate: parameters, utilisation and overheads are all
#: guesses; the real figure may be several times smaller or larger.
REMOTE_UNCERTAINTY = 2.0

_NOT_COUNTED = "not counted"


@dataclass(frozen=True, slots=True)
class SyscallEnergy:
    """What one syscall is recorded with, beside its tokens and cost."""

    energy_j: float
    flops: float
    gco2: float
    energy_method: str
    flops_method: str


def estimate_remote(prompt_tokens: int, completion_tokens: int) -> SyscallEnergy:
    """The estimated FLOPs, joules and gCO2e of a remote LLM call (see the module docstring)."""
    from agentos.kernels.energy import Quantity, carbon_intensity, co2_grams
    from agentos.kernels.flops import llm_flops

    flops = llm_flops(REMOTE_ACTIVE_PARAMS, prompt_tokens + completion_tokens,
                      what="remote model, parameter count assumed")
    energy = Quantity(flops.value * REMOTE_J_PER_FLOP, "J",
                      f"estimated: FLOPs x {REMOTE_J_PER_FLOP:.3g} J/FLOP (H100 at 10 % utilisation, "
                      "1.5 kW with overheads, after Epoch AI 2025)", REMOTE_UNCERTAINTY)
    world = carbon_intensity("WORLD")
    co2 = co2_grams(energy, world)
    return SyscallEnergy(energy.value, flops.value, co2.value,
                         f"{energy.method}; CO2 at the world average (provider's grid unknown)",
                         flops.method)


class Tally:
    """The energy of one syscall's attempts, summed as they end (retries included)."""

    def __init__(self) -> None:
        self.joules = 0.0
        self.method = ""
        self.uncertainty = 0.0

    def add(self, q: Quantity) -> None:
        self.joules += q.value
        self.method = q.method
        self.uncertainty = q.uncertainty


class EnergyAccounting:
    """Meters syscalls and turns what they returned into :class:`SyscallEnergy`.

    Args:
        source: ``"auto"``, ``"rapl"``, ``"nvml"`` or ``"model"`` (the ``energy_source`` setting).
        region, g_per_kwh: the carbon intensity (``carbon_region``, ``carbon_intensity``).

    Raises:
        ValueError: an unknown carbon region (raised when built, before any syscall).
        UserError: on the first syscall, when the named source cannot be read here (no RAPL,
            permission denied, no NVIDIA GPU); the message says why and what to set instead.
    """

    def __init__(self, source: str = "auto", region: str | None = None,
                 g_per_kwh: float | None = None) -> None:
        from agentos.kernels.energy import carbon_intensity

        self._source_name = source
        self.intensity = carbon_intensity(region, g_per_kwh)
        self._shared: SharedMeter | None = None
        self._lock = threading.Lock()

    @property
    def shared(self) -> SharedMeter:
        """The shared meter, built on first use (selecting the source reads its counters)."""
        with self._lock:
            if self._shared is None:
                from agentos.errors import UserError
                from agentos.kernels.energy import EnergySourceUnavailable, SharedMeter, select_source

                try:
                    source = select_source(self._source_name)  # type: ignore[arg-type]
                except EnergySourceUnavailable as error:
                    raise UserError(
                        f"energy_source={self._source_name!r} cannot be used here: {error}. Set "
                        "energy_source (AGENTOS_ENERGY_SOURCE) to auto or model"
                    ) from error
                self._shared = SharedMeter(source)
            return self._shared

    def metered(self, fn: Callable[[], Awaitable[T]]) -> tuple[Callable[[], Awaitable[T]], Tally]:
        """``fn`` with each attempt metered, and the tally its attempts add to."""
        tally = Tally()
        shared = self.shared

        async def attempt() -> T:
            key = shared.open()
            try:
                return await fn()
            finally:
                tally.add(shared.close(key))

        return attempt, tally

    def account(self, name: str | None, value: Any, tally: Tally) -> SyscallEnergy:
        """The record of a syscall that returned ``value`` after using ``tally``'s energy.

        A :class:`Completion` gets the figures filled in (``energy_j``, ``flops``, ``gco2``,
        ``energy_method``) unless its LLM reported energy itself.
        """
        from agentos.kernels.energy import Quantity, co2_grams
        from agentos.runtime.llm.types import Completion

        measured = Quantity(tally.joules, "J", tally.method or self.shared.method,
                            tally.uncertainty)
        if not isinstance(value, Completion):
            co2 = co2_grams(measured, self.intensity)
            return SyscallEnergy(measured.value, 0.0, co2.value, measured.method, _NOT_COUNTED)
        if value.energy_method or value.energy_j > 0:  # the LLM reported its own energy
            energy_j = value.energy_j
            method = value.energy_method or "reported by the LLM"
            gco2 = value.gco2 or co2_grams(Quantity(energy_j, "J", method, 0.0), self.intensity).value
        else:
            energy_j, method = measured.value, measured.method
            gco2 = co2_grams(measured, self.intensity).value
        flops, flops_method = value.flops, value.flops_method or (_NOT_COUNTED if not value.flops else "reported by the LLM")
        params = LOCAL_PARAMS.get((name or "").removeprefix("local/"))
        if not value.flops and params is not None:
            from agentos.kernels.flops import llm_flops

            q = llm_flops(params, value.prompt_tokens + value.completion_tokens, what=name or "")
            flops, flops_method = q.value, q.method
        value.energy_j, value.gco2, value.energy_method = energy_j, gco2, method
        value.flops, value.flops_method = flops, flops_method
        return SyscallEnergy(energy_j, flops, gco2, method, flops_method)
