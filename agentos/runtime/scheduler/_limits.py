"""Rate limits and budgets: plain values and pure arithmetic, no clocks of their own.

Every method that depends on time takes ``now`` so tests drive it with numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agentos.errors import BudgetExceeded

__all__ = ["Budget", "TokenBucket", "Usage", "check_budget"]


@dataclass(slots=True)
class TokenBucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` tokens per second.

    ``TokenBucket.per_minute(60)`` allows bursts of 60 and 1 per second sustained. The level may
    go negative when actual usage (e.g. completion tokens) is charged after the fact; the debt is
    repaid by refill before the next request passes.
    """

    capacity: float
    rate: float
    level: float = math.nan
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.rate <= 0:
            raise ValueError(
                f"token bucket needs capacity > 0 and rate > 0, got {self.capacity}, {self.rate}"
            )
        if math.isnan(self.level):
            self.level = self.capacity

    @classmethod
    def per_minute(cls, limit: float, now: float = 0.0) -> TokenBucket:
        """A full bucket for ``limit`` a minute: bursts of ``limit``, then ``limit / 60`` a second.

        Raises:
            ValueError: ``limit`` is not positive.
        """
        return cls(capacity=limit, rate=limit / 60.0, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are available (0 when they are now).

        An amount larger than the capacity waits for a full bucket, so it is never starved.
        """
        self._refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float, now: float) -> None:
        """Remove ``amount`` tokens (the level may go negative: a debt)."""
        self._refill(now)
        self.level -= amount


@dataclass(frozen=True, slots=True)
class Budget:
    """Upper limits for a run or an agent; ``None`` means unlimited.

    A syscall that would go over a limit is refused before it is queued with
    :class:`~agentos.errors.BudgetExceeded` (the run then ends as ``budget_exceeded``); a syscall
    still running when the wall-time limit passes is cut there.

    Attributes:
        tokens: prompt plus completion tokens. A completion is admitted while the tokens used
            so far, the estimates of calls still in flight and its own estimate (about a token
            per 4 prompt characters, plus ``max_tokens``) fit; without ``max_tokens`` a
            completion's length is unknown, so the last one may overshoot.
        cost: US dollars, from litellm's cost map (local models and models missing from the
            map cost 0). Checked before each syscall: the last one may overshoot it.
        wall_s: seconds since the run started (for an agent: since its first syscall).
        energy_j: joules of the syscalls so far, as the kernel records them: metered (RAPL, or
            modelled from process CPU time) for tools, memory and local models, estimated from
            tokens for remote LLMs (see :mod:`agentos.runtime.energy`). Checked before each
            syscall: the last one may overshoot it.

    With ``limits_url`` on Redis, ``tokens``, ``cost`` and ``energy_j`` are charged there, so
    every process running the same run id spends one budget (each may overshoot cost and energy
    by the syscalls it has in flight); ``wall_s`` stays per process
    (:class:`~agentos.runtime.scheduler.RedisLimits`).

    Raises:
        ValueError: a limit is negative.
    """

    tokens: int | None = None
    cost: float | None = None
    wall_s: float | None = None
    energy_j: float | None = None

    def __post_init__(self) -> None:
        for name in ("tokens", "cost", "wall_s", "energy_j"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Budget.{name} must be >= 0 or None, got {value}")


@dataclass(slots=True)
class Usage:
    """What a run or an agent has consumed so far.

    Attributes:
        syscalls: how many syscalls completed successfully (refused or failed ones are not
            counted); ``by_kind`` splits them by kind (``llm``, ``tool``, ...).
        started_at: when its wall clock started (the kernel's clock), ``None`` before.
        reserved_tokens: the token estimates of its syscalls admitted but not finished yet;
            a new syscall's estimate must fit beside them, so concurrent calls cannot all be
            admitted against the same remaining tokens.
        energy_j, flops, gco2: joules, FLOPs and grams of CO2-equivalent of its completed
            syscalls, as the kernel recorded them (:mod:`agentos.runtime.energy`).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    energy_j: float = 0.0
    syscalls: int = 0
    started_at: float | None = None
    by_kind: dict[str, int] = field(default_factory=dict)
    reserved_tokens: int = 0
    flops: float = 0.0
    gco2: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(
        self,
        kind: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        energy_j: float = 0.0,
        flops: float = 0.0,
        gco2: float = 0.0,
    ) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost += cost
        self.energy_j += energy_j
        self.flops += flops
        self.gco2 += gco2
        self.syscalls += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def as_dict(self) -> dict[str, float | int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "cost": self.cost,
            "energy_j": self.energy_j,
            "flops": self.flops,
            "gco2": self.gco2,
            "syscalls": self.syscalls,
        }


def check_budget(
    scope: str, budget: Budget | None, usage: Usage, now: float, est_tokens: int = 0
) -> None:
    """Raise :class:`BudgetExceeded` when a syscall needing ``est_tokens`` would break ``budget``.

    Pure: reads ``usage`` and ``now`` only. Tokens are checked with the estimate added to what
    was used and what in-flight syscalls reserved; cost, energy and wall time are checked as used
    so far.

    Raises:
        BudgetExceeded: with ``scope``, the limit that is reached, the limit and the usage.
    """
    if budget is None:
        return
    if (budget.tokens is not None
            and usage.tokens + usage.reserved_tokens + est_tokens > budget.tokens):
        raise BudgetExceeded(scope, "tokens", budget.tokens,
                             usage.tokens + usage.reserved_tokens, est_tokens)
    if budget.cost is not None and usage.cost >= budget.cost:
        raise BudgetExceeded(scope, "cost", budget.cost, usage.cost)
    if budget.energy_j is not None and usage.energy_j >= budget.energy_j:
        raise BudgetExceeded(scope, "energy_j", budget.energy_j, usage.energy_j)
    if budget.wall_s is not None and usage.started_at is not None:
        elapsed = now - usage.started_at
        if elapsed >= budget.wall_s:
            raise BudgetExceeded(scope, "wall_s", budget.wall_s, elapsed)
