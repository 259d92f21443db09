"""The kernel: every agent action that costs something is a syscall that goes through here.

A syscall (an LLM completion, a tool call, a memory operation, a publish) is checked against the
run's and the agent's budgets, queued on its resource pool by the scheduler, run with a timeout
and retries, and recorded in the run store with its queue wait, service time, tokens, cost,
energy and outcome. The kernel is async inside; :class:`~agentos.Agent` gives scripts a sync
facade.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from agentos.errors import (
    BudgetExceeded,
    Cancelled,
    InvalidToolCall,
    LimitsUnavailable,
    ProviderError,
    SyscallTimeout,
    ToolDenied,
    ToolFailed,
    ToolRetry,
    UnknownTool,
)
from agentos.runtime.llm.gateway import resolve_llm
from agentos.runtime.llm.types import LLM, Completion, Message, estimate_tokens
from agentos.runtime.permissions import Approver, ToolPermissions, cap_output
from agentos.runtime.registry import ToolRegistry
from agentos.runtime.scheduler import (
    Budget,
    PoolConfig,
    RetryPolicy,
    Scheduler,
    Usage,
    check_budget,
    is_transient,
)
from agentos.runtime.store import RunStore

if TYPE_CHECKING:
    from agentos.config import Settings
    from agentos.runtime.bus import Bus
    from agentos.runtime.tool import Tool
    from agentos.runtime.energy import EnergyAccounting, SyscallEnergy
    from agentos.runtime.memory import Grants, Memory
    from agentos.runtime.workers.client import RemoteSyscalls

__all__ = ["Kernel", "Run"]

T = TypeVar("T")

_ABANDONED = (
    "the tool runs in a thread that cannot be stopped, so it was abandoned: it may still be "
    "running, and its result will be discarded"
)


@dataclass(slots=True)
class Run:
    """One run: its id, budgets and what it and each of its agents used so far."""

    id: str
    name: str
    budget: Budget | None = None
    usage: Usage = field(default_factory=Usage)
    agent_budgets: dict[str, Budget] = field(default_factory=dict)
    agent_usage: dict[str, Usage] = field(default_factory=dict)
    status: str = "running"

    def agent(self, name: str) -> Usage:
        """What agent ``name`` used in this run; its clock starts at its first syscall."""
        usage = self.agent_usage.get(name)
        if usage is None:
            usage = self.agent_usage[name] = Usage()
        return usage


class Kernel:
    """Owns the scheduler, message bus, run store, LLM gateway and tool registry.

    Args:
        settings: defaults come from :func:`agentos.config.load_settings`.
        store: a :class:`RunStore` or a path; defaults to ``<data_dir>/runs.sqlite``.
        bus: a message bus backend; defaults to the in-process bus on first use.
        registry: the tools agents may name by string; defaults to the discovered plug-ins.
        scheduler: the scheduler; defaults to one whose pools have ``settings.max_concurrency``
            slots under ``settings.policy``.
        clock: wall-clock seconds (monotonic), for tests.
        memory: vector memory; defaults to ``Memory.from_settings`` on first use.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: RunStore | str | None = None,
        bus: Bus | None = None,
        registry: ToolRegistry | None = None,
        scheduler: Scheduler | None = None,
        clock: Callable[[], float] = time.monotonic,
        memory: Memory | None = None,
    ) -> None:
        if settings is None:
            from agentos.config import load_settings

            settings = load_settings()
        self.settings = settings
        if store is None:
            store = settings.store_path
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self.store.mark_abandoned()
        self.scheduler = scheduler or Scheduler(
            PoolConfig(max_concurrency=settings.max_concurrency, policy=settings.policy),
            clock=clock, limits=_shared_limits(settings),
        )
        self.retry = RetryPolicy(max_retries=settings.max_retries)
        self._clock = clock
        self._bus = bus
        self._registry = registry
        self.tool_permissions: dict[str, ToolPermissions] = dict(settings.tool_permissions)
        self.approver: Approver | None = None  # asked before calls of tools that need approval
        self._mcp: list[Any] | None = None  # MCP server connections, once the registry is used
        self._llms: dict[str, LLM] = {}
        self._runs: dict[str, Run] = {}
        self._memory = memory
        self._owns_memory = False
        self._grants: Grants | None = None
        self._workers: RemoteSyscalls | None = None  # settings.workers_url, on first use
        self._energy: EnergyAccounting | None = None

    # --- components ---------------------------------------------------------------------------

    @property
    def registry(self) -> ToolRegistry:
        """Tools known by name: built-ins and ``agentos.tools`` entry points (loaded once), and
        the tools of the ``[[mcp_servers]]`` in the settings (started on first use)."""
        if self._registry is None:
            self._registry = ToolRegistry(discover=True)
        if self._mcp is None:
            self._mcp = []
            if self.settings.mcp_servers:  # [[mcp_servers]]: started now, stopped in aclose
                from agentos.interop.mcp_client import connect_servers

                self._mcp = connect_servers(self.settings.mcp_servers, self._registry)
        return self._registry

    @property
    def bus(self) -> Bus:
        """The message bus: the one given, else ``settings.bus_url`` (in-process or Redis Streams)."""
        if self._bus is None:
            url = self.settings.bus_url
            if url.startswith(("redis://", "rediss://")):
                from agentos.runtime.bus import RedisBus

                self._bus = RedisBus(url)
            else:
                from agentos.runtime.bus import InProcessBus

                self._bus = InProcessBus()
        return self._bus

    def configure_pool(self, resource: str, **limits: Any) -> None:
        """Set a resource pool's limits, e.g. ``configure_pool("llm:openai/gpt-4o", rpm=60)``.

        Pools are named ``llm:<model>``, ``tool:<name>``, ``bus:<topic>`` and ``memory``. The
        limits replace the pool's (unset ones take :class:`PoolConfig`'s defaults); a tool's own
        ``concurrency`` still caps its pool, and a local model's pool keeps its engine's slots.

        Args:
            resource: the pool's name.
            **limits: :class:`PoolConfig` fields: ``max_concurrency``, ``policy``,
                ``aging_rate``, ``rpm``, ``tpm``.

        Raises:
            ValueError: a limit is out of range or the policy is unknown.
            TypeError: a keyword is not a PoolConfig field.
        """
        self.scheduler.configure(resource, PoolConfig(**limits))

    # --- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        task: str | None = None,
        *,
        budget: Budget | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Open a run in the run store; its usage and wall clock start now.

        Args:
            name: what the run is called in ``agentos runs``.
            task: the task text, kept with the run.
            budget: the run's limits; defaults to the ``budget_*`` settings (none if unset).
            run_id: an id to use instead of a fresh one.

        Returns:
            The open run; pass it to syscalls and to :meth:`end_run`.
        """
        if budget is None:
            s = self.settings
            if (s.budget_tokens is not None or s.budget_cost is not None or s.budget_wall_s
                    or s.budget_energy_j is not None):
                budget = Budget(tokens=s.budget_tokens, cost=s.budget_cost, wall_s=s.budget_wall_s,
                                energy_j=s.budget_energy_j)
        run = Run(self.store.start_run(name, task, run_id), name, budget)
        run.usage.started_at = self._clock()
        self._runs[run.id] = run
        return run

    def resume_run(self, run_id: str, name: str, *, budget: Budget | None = None) -> Run:
        """Reopen a stopped run under its own id (a crew resuming it); usage counts from now."""
        self.store.reopen_run(run_id)
        run = Run(run_id, name, budget)
        run.usage.started_at = self._clock()
        self._runs[run.id] = run
        return run

    def end_run(
        self, run: Run, status: str, result: str | None = None, error: str | None = None
    ) -> None:
        """Close a run: its status, result or error and usage are written to the run store.

        Args:
            run: the run from :meth:`start_run`.
            status: ``succeeded``, ``failed``, ``budget_exceeded``, ``cancelled``, ``max_steps``.
            result: the final answer, if any.
            error: what went wrong, if anything.
        """
        run.status = status
        self.store.end_run(run.id, status, result, error, run.usage.as_dict())
        self._runs.pop(run.id, None)

    def set_agent_budget(self, run: Run, agent: str, budget: Budget) -> None:
        """Limit what ``agent`` may use inside ``run`` (on top of the run's own budget).

        The agent's wall clock starts at its first syscall. A syscall that would exceed it
        raises :class:`BudgetExceeded` with scope ``agent:<name>``.
        """
        run.agent_budgets[agent] = budget

    def cancel(self, run: Run | str) -> int:
        """Cancel every queued or running syscall of a run; returns how many were cancelled.

        Each cancelled syscall raises :class:`Cancelled` to its caller and is recorded as
        ``cancelled`` (``abandoned`` for a sync tool whose thread could not be stopped).
        """
        return self.scheduler.cancel(run if isinstance(run, str) else run.id)

    # --- the syscall path ---------------------------------------------------------------------

    async def syscall(
        self,
        run: Run,
        agent: str,
        kind: str,
        resource: str,
        fn: Callable[[], Awaitable[T]],
        *,
        name: str | None = None,
        est_tokens: int = 0,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        priority: float = 0.0,
        weight: float = 1.0,
        detail: dict[str, Any] | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> T:
        """Run ``fn`` as a governed, recorded syscall.

        The syscall is checked against the run's and the agent's budgets, queued on
        ``resource``'s pool, run under ``timeout`` (and the earliest wall-time budget), retried
        on transient errors with ``retry``, and recorded in the run store with its outcome.

        Args:
            run: the run it belongs to.
            agent: the agent making it (its budget and fair share).
            kind: what it is, for the records: ``llm``, ``tool``, ``publish``, ...
            resource: the scheduler pool, e.g. ``llm:openai/gpt-4o`` or ``tool:calculator``.
            fn: makes the work's awaitable; called once per attempt.
            name: the model or tool name, for the records.
            est_tokens: tokens it is expected to use (token budgets and tokens-per-minute).
            timeout: seconds per attempt; defaults to ``settings.timeout_s``.
            retry: how transient errors are retried; ``None``: not retried.
            priority, weight: for the ``priority`` and ``fair_share`` policies.
            detail: JSON-able facts kept with the record (arguments, message counts).
            abandon: called when the syscall times out or is cancelled; returns whether work it
                started cannot be stopped and goes on (recorded as outcome ``abandoned``).

        Returns:
            What ``fn``'s awaitable returned.

        Raises:
            BudgetExceeded: before queueing, when the run or the agent is out of budget, or when
                the syscall is cut at the wall-time budget.
            LimitsUnavailable: with ``limits_url`` on Redis, when Redis cannot be reached:
                before queueing (the syscall did not run), or after it finished when what it
                used could not be charged to the shared budgets (it is in ``run.usage``).
            SyscallTimeout, Cancelled: as the scheduler raises them; when ``abandon`` reports
                work left running, the message says so.
            Exception: whatever ``fn`` raised after retries.
        """
        now = self._clock()
        agent_usage = run.agent(agent)
        if agent_usage.started_at is None:
            agent_usage.started_at = now
        try:
            check_budget("run", run.budget, run.usage, now, est_tokens)
            check_budget(f"agent:{agent}", run.agent_budgets.get(agent), agent_usage, now, est_tokens)
            reservations = await self._reserve_shared(run, agent, est_tokens)
        except BudgetExceeded as error:
            self._record(run, agent, kind, resource, name, now, 0.0, 0.0, 0, "budget_exceeded",
                         error=str(error), detail=detail)
            raise
        except LimitsUnavailable as error:  # the shared budget could not be checked: refused
            self._record(run, agent, kind, resource, name, now, 0.0, 0.0, 0, "error",
                         error=f"LimitsUnavailable: {error}", detail=detail)
            raise
        timeout = timeout or self.settings.timeout_s
        metered, tally = self.energy.metered(fn)  # each attempt's joules, shared with concurrent ones
        deadline, wall_scope = self._deadline(run, agent)
        run.usage.reserved_tokens += est_tokens
        agent_usage.reserved_tokens += est_tokens
        try:
            outcome = await self.scheduler.submit(
                resource, metered, share_key=agent, run_id=run.id, priority=priority, weight=weight,
                est_tokens=est_tokens, timeout=timeout, retry=retry, deadline=deadline,
            )
        except BaseException as error:
            run.usage.reserved_tokens -= est_tokens
            agent_usage.reserved_tokens -= est_tokens
            # Redis gone too: the reservation stays held there, and this error is the one raised.
            with contextlib.suppress(LimitsUnavailable):
                await self._settle_shared(run, agent, reservations, 0, 0.0)
            stopped = isinstance(error, (SyscallTimeout, Cancelled, asyncio.CancelledError))
            left_running = stopped and abandon is not None and abandon()
            note = f"; {_ABANDONED}" if left_running else ""
            if left_running:
                detail = {**(detail or {}), "abandoned": True}
            if (isinstance(error, SyscallTimeout) and deadline is not None
                    and self._clock() >= deadline):
                budget_error = BudgetExceeded(
                    wall_scope, "wall_s", self._wall_limit(run, agent), self._clock() - now
                )
                self._record(run, agent, kind, resource, name, now, 0.0, self._clock() - now, 1,
                             "budget_exceeded", error=f"{budget_error}{note}", detail=detail)
                raise budget_error from error
            status = (
                "abandoned" if left_running
                else "timeout" if isinstance(error, SyscallTimeout)
                else "cancelled" if isinstance(error, Cancelled)
                else "error"
            )
            self._record(run, agent, kind, resource, name, now, 0.0, self._clock() - now, 1,
                         status, error=f"{type(error).__name__}: {error}{note}", detail=detail)
            if left_running and isinstance(error, (SyscallTimeout, Cancelled)):
                raise type(error)(f"{error}{note}") from error
            raise
        run.usage.reserved_tokens -= est_tokens
        agent_usage.reserved_tokens -= est_tokens
        value = outcome.value
        account = self.energy.account(name, value, tally)  # fills a Completion's energy fields
        p = c = 0
        cost = 0.0
        energy = account.energy_j
        if isinstance(value, Completion):
            p, c, cost = value.prompt_tokens, value.completion_tokens, value.cost
            if est_tokens:
                self.scheduler.settle_tokens(resource, est_tokens, p + c)
        unsettled: LimitsUnavailable | None = None
        try:
            await self._settle_shared(run, agent, reservations, p + c, cost, energy)
        except LimitsUnavailable as error:  # done and recorded here, but not charged there
            unsettled = error
        run.usage.add(kind, p, c, cost, energy, account.flops, account.gco2)
        agent_usage.add(kind, p, c, cost, energy, account.flops, account.gco2)
        self._record(run, agent, kind, resource, name, now, outcome.queue_wait,
                     outcome.service_time, outcome.attempts, "ok", p, c, cost, energy,
                     detail=detail, account=account)
        if unsettled is not None:
            raise unsettled
        return value

    @property
    def energy(self) -> EnergyAccounting:
        """How syscalls' energy, FLOPs and CO2 are metered and estimated (built on first use from
        the ``energy_source``, ``carbon_region`` and ``carbon_intensity`` settings)."""
        if self._energy is None:
            from agentos.runtime.energy import EnergyAccounting

            s = self.settings
            self._energy = EnergyAccounting(s.energy_source, s.carbon_region, s.carbon_intensity)
        return self._energy

    async def _reserve_shared(self, run: Run, agent: str,
                              est_tokens: int) -> tuple[str | None, str | None]:
        """With ``limits_url`` on Redis: reserve in the run's and agent's budgets kept there, so
        processes sharing a run share its tokens, cost and energy (raises BudgetExceeded, or
        LimitsUnavailable when Redis cannot be reached). The two reservations' ids."""
        limits = self.scheduler.limits
        if limits is None:
            return None, None
        for_run = await limits.reserve("run", f"run:{run.id}", run.budget, est_tokens)
        try:
            for_agent = await limits.reserve(f"agent:{agent}", f"run:{run.id}:agent:{agent}",
                                             run.agent_budgets.get(agent), est_tokens)
        except BudgetExceeded:
            await limits.settle(f"run:{run.id}", for_run, 0, 0.0)
            raise
        return for_run, for_agent

    async def _settle_shared(self, run: Run, agent: str,
                             reservations: tuple[str | None, str | None], tokens: int,
                             cost: float, energy_j: float = 0.0) -> None:
        limits = self.scheduler.limits
        if limits is not None:
            for_run, for_agent = reservations
            await limits.settle(f"run:{run.id}", for_run, tokens, cost, energy_j)
            await limits.settle(f"run:{run.id}:agent:{agent}", for_agent, tokens, cost,
                                energy_j)

    def _deadline(self, run: Run, agent: str) -> tuple[float | None, str]:
        """The earliest wall-time deadline of the run's and the agent's budgets."""
        best: tuple[float | None, str] = (None, "run")
        for scope, budget, usage in (
            ("run", run.budget, run.usage),
            (f"agent:{agent}", run.agent_budgets.get(agent), run.agent(agent)),
        ):
            if budget is not None and budget.wall_s is not None and usage.started_at is not None:
                deadline = usage.started_at + budget.wall_s
                if best[0] is None or deadline < best[0]:
                    best = (deadline, scope)
        return best

    def _wall_limit(self, run: Run, agent: str) -> float:
        budgets = [run.budget, run.agent_budgets.get(agent)]
        return min(b.wall_s for b in budgets if b is not None and b.wall_s is not None)

    def _record(
        self, run: Run, agent: str, kind: str, resource: str, name: str | None, submitted: float,
        wait: float, service: float, attempts: int, outcome: str, p: int = 0, c: int = 0,
        cost: float = 0.0, energy: float = 0.0, error: str | None = None,
        detail: dict[str, Any] | None = None, account: SyscallEnergy | None = None,
    ) -> None:
        submitted_wall = time.time() - (self._clock() - submitted)  # the store keeps wall time
        extra = {} if account is None else {
            "flops": account.flops, "gco2": account.gco2,
            "energy_method": account.energy_method, "flops_method": account.flops_method,
        }
        self.store.record_syscall(
            run.id, agent, kind, resource, name, submitted_wall, wait, service, attempts, outcome,
            p, c, cost, energy, error, detail, **extra,
        )

    # --- syscalls -----------------------------------------------------------------------------

    def llm_for(self, model: str | LLM) -> LLM:
        """The :class:`LLM` for a model string (made once per kernel) or object.

        The first time a non-local model string is seen, the ``rpm``/``tpm`` settings are set
        on its pool.

        Raises:
            UserError: ``model`` is neither a litellm model string nor an LLM.
        """
        if not isinstance(model, str):
            return resolve_llm(model)
        llm = self._llms.get(model)
        if llm is None:
            llm = self._llms[model] = resolve_llm(model)
            if not model.startswith("local/") and (self.settings.rpm or self.settings.tpm):
                # Rate limits are per model: they apply to LLM pools, not to tools.
                self.scheduler.configure(f"llm:{model}", PoolConfig(
                    max_concurrency=self.settings.max_concurrency, policy=self.settings.policy,
                    rpm=self.settings.rpm, tpm=self.settings.tpm,
                ))
        return llm

    def _sync_local_pool(self, model: str) -> None:
        """A local model's pool runs as many syscalls at once as its engine has decoding slots.

        The slots are the loaded engine's ``n_parallel``, or the default configuration's while
        it is not loaded yet (the one it will load with). Checked before every completion, so an
        engine loaded with another ``n_parallel`` resizes the pool; its policy is kept.
        """
        from agentos.runtime.llm.engine import engine_slots

        resource = f"llm:{model}"
        slots = engine_slots(model.removeprefix("local/"))
        config = self.scheduler.pool_config(resource)
        if config.max_concurrency != slots:
            self.scheduler.configure(resource, replace(config, max_concurrency=slots))

    async def llm(
        self,
        run: Run,
        agent: str,
        model: str | LLM,
        messages: list[Message],
        tools: list[dict[str, Any]] | None = None,
        *,
        fallbacks: Sequence[str | LLM] = (),
        priority: float = 0.0,
        weight: float = 1.0,
        timeout: float | None = None,
        **params: Any,
    ) -> Completion:
        """An LLM completion as a syscall, retried on transient errors, then tried on fallbacks.

        Args:
            run: the run it belongs to.
            agent: the calling agent (its budget and fair share).
            model: a litellm model string or an :class:`LLM`.
            messages: the conversation, OpenAI chat format.
            tools: function specs the reply may call.
            fallbacks: models tried in order when ``model`` fails transiently after retries.
            priority, weight: for the ``priority`` and ``fair_share`` policies.
            timeout: seconds per attempt; defaults to ``settings.timeout_s``.
            **params: passed to :meth:`LLM.complete` (``max_tokens``, ``temperature``, ...).

        Returns:
            The completion; its tokens, cost and energy are added to the run's and the agent's
            usage.

        Raises:
            BudgetExceeded: the run or agent is out of budget.
            ProviderError: a permanent error, or every model failed; the last error.
            SyscallTimeout: the last model timed out.
            Cancelled: the run was cancelled.
        """
        est = estimate_tokens(messages) + int(params.get("max_tokens") or 0)
        candidates = [model, *fallbacks]
        last: BaseException | None = None
        for candidate in candidates:
            llm = self.llm_for(candidate)
            remote = self.settings.workers_url is not None and isinstance(candidate, str)
            if llm.name.startswith("local/") and not remote:
                self._sync_local_pool(llm.name)
            body = {"model": llm.name, "messages": messages, "tools": tools, "params": params}
            try:
                return await self.syscall(
                    run, agent, "llm", f"llm:{llm.name}",
                    self._remote("llm", f"llm:{llm.name}", body, agent, est, timeout) if remote
                    else lambda llm=llm: llm.complete(messages, tools, **params),
                    name=llm.name, est_tokens=est, timeout=timeout, retry=self.retry,
                    priority=priority, weight=weight,
                    detail={"messages": len(messages), "tools": len(tools or ())},
                )
            except (ProviderError, SyscallTimeout) as error:
                if not is_transient(error):
                    raise
                last = error
        assert last is not None
        raise last

    async def call_tool(
        self,
        run: Run,
        agent: str,
        name: str,
        arguments: dict[str, Any],
        *,
        registry: ToolRegistry | None = None,
        timeout: float | None = None,
        priority: float = 0.0,
        approved_by: str | None = None,
    ) -> Any:
        """Validate a tool's arguments (once) and run it as a syscall on pool ``tool:<name>``.

        A tool's ``concurrency`` caps its pool; the pool keeps its policy and rate limits. A
        sync tool runs in a worker thread, which cannot be stopped: when its syscall times out or
        is cancelled while the thread runs, the syscall is recorded with outcome ``abandoned``,
        the error says so, the thread keeps its slot of the pool until it ends (so
        ``concurrency`` still holds), and its eventual result is discarded. A tool with
        ``run_in="process"`` runs in a child process instead, which is killed then (outcome
        ``timeout`` or ``cancelled``: it really stopped).

        Args:
            run: the run the call belongs to (budgets, records).
            agent: the calling agent's name.
            name: the tool's name in ``registry``.
            arguments: the arguments as the LLM wrote them (a JSON object).
            registry: where ``name`` is looked up; defaults to :attr:`registry`.
            timeout: seconds; defaults to ``settings.timeout_s``.
            priority: for the ``priority`` policy (higher runs first).
            approved_by: who already approved this very call (e.g. ``"crew"``: a crew asked its
                human through its own approval interrupt); a tool whose permissions need
                approval then records that decision instead of asking :attr:`approver` again.

        Returns:
            What the tool returned.

        Raises:
            UnknownTool, InvalidToolCall: the call is wrong (recorded as ``invalid``); the agent
                loop sends the message back to the LLM.
            ToolFailed: the tool raised; the original exception is ``__cause__``.
            ToolDenied: :attr:`tool_permissions` refused the call (an agent not allowed, approval
                rejected or no :attr:`approver`); recorded as ``denied``, nothing ran. A
                permission's ``timeout_s``, ``concurrency`` and ``max_output_chars`` also apply.
            BudgetExceeded: the run or agent is out of budget.
            SyscallTimeout, Cancelled: the call ran out of time or its run was cancelled.
            UserError: a ``run_in="process"`` tool a child process cannot import (defined
                inside a function); raised before anything is queued or recorded.
        """
        registry = registry or self.registry
        now = self._clock()
        try:
            t = registry.get(name)
            values = t.validate(arguments)
        except (UnknownTool, InvalidToolCall) as error:
            self._record(run, agent, "tool", f"tool:{name}", name, now, 0.0, 0.0, 0, "invalid",
                         error=str(error), detail={"arguments": arguments})
            raise
        permissions = self.tool_permissions.get(name)
        limit = t.concurrency
        if permissions is not None:
            await self._permit(run, agent, name, arguments, permissions, now, approved_by)
            if permissions.timeout_s is not None:
                timeout = min(timeout or self.settings.timeout_s, permissions.timeout_s)
            if permissions.concurrency is not None:
                limit = min(limit or permissions.concurrency, permissions.concurrency)
        resource = f"tool:{name}"
        if limit is not None:
            config = self.scheduler.pool_config(resource)
            if config.max_concurrency > limit:
                self.scheduler.configure(resource, replace(config, max_concurrency=limit))
        remote = self.settings.workers_url is not None
        thread = None if t.is_async or t.run_in == "process" or remote else _ToolThread(t, values)
        if t.run_in == "process":
            from agentos.runtime._tool_process import process_target

            process_target(t)  # a tool the child cannot import is misuse: raised before it queues

        async def invoke() -> Any:
            try:
                if t.run_in == "process":
                    from agentos.runtime._tool_process import run_in_process

                    return await run_in_process(t, values)  # killed if this is cancelled
                if thread is None:
                    return await t.ainvoke(values)
                try:
                    return await thread.start()
                except asyncio.CancelledError:  # timed out or cancelled: it may run on
                    thread.hold_slot(self.scheduler, resource)  # before the pool frees the slot
                    raise
            except (ToolRetry, BudgetExceeded, Cancelled):
                raise
            except Exception as error:
                origin = getattr(t, "origin", None)
                source = f" (from {origin})" if origin else ""
                raise ToolFailed(
                    f"tool {name}{source} failed: {type(error).__name__}: {error}"
                ) from error

        if remote:
            invoke = self._remote("tool", resource, {"name": name, "arguments": arguments},
                                  agent, 0, timeout)
        value = await self.syscall(
            run, agent, "tool", resource, invoke, name=name, timeout=timeout, priority=priority,
            detail={"arguments": arguments}, abandon=thread.abandon if thread else None,
        )
        if permissions is not None and permissions.max_output_chars is not None:
            value, _ = cap_output(value, permissions.max_output_chars)
        return value

    async def _permit(self, run: Run, agent: str, name: str, arguments: dict[str, Any],
                      permissions: ToolPermissions, now: float,
                      approved_by: str | None = None) -> None:
        """Check ``permissions`` for this call; a refusal is recorded as ``denied`` and raised.

        Approval decisions are kept in the run store as messages on topic ``tool.approvals``.
        """
        import inspect

        reason = permissions.agent_refusal(name, agent)
        if reason is None and permissions.approval:
            if approved_by is not None:
                self.store.record_message(run.id, "tool.approvals", agent,
                                          {"tool": name, "arguments": arguments,
                                           "approved": True, "by": approved_by})
            elif self.approver is None:
                reason = (
                    f"tool {name!r} needs a human's approval for each call and no approver is "
                    "set: run `agentos run` on a terminal or with --approve, set "
                    "kernel.approver = fn(agent, tool, arguments) -> bool in Python, or remove "
                    f"tool_permissions.{name}.approval"
                )
            else:
                if inspect.iscoroutinefunction(self.approver):
                    approved = bool(await self.approver(agent, name, arguments))
                else:
                    approved = bool(await asyncio.to_thread(self.approver, agent, name, arguments))
                self.store.record_message(run.id, "tool.approvals", agent,
                                          {"tool": name, "arguments": arguments,
                                           "approved": approved})
                if not approved:
                    reason = f"a human rejected {agent!r} calling tool {name!r}"
        if reason is not None:
            self._record(run, agent, "tool", f"tool:{name}", name, now, 0.0, 0.0, 0, "denied",
                         error=reason, detail={"arguments": arguments})
            raise ToolDenied(reason)

    async def publish(
        self, run: Run, agent: str, topic: str, payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Publish on the message bus as a syscall; the message is also kept in the run store.

        Returns:
            What the bus's ``publish`` returned (the message with its id).

        Raises:
            BudgetExceeded: the run or agent is out of budget.
            BusError: the bus refused the message: ``PayloadError`` (not JSON), ``BusFull``
                (backpressure timed out), ``BusClosed``, ``BusUnavailable`` (Redis is down).
        """

        async def send() -> Any:
            return await self.bus.publish(topic, payload, headers=headers)

        message = await self.syscall(run, agent, "publish", f"bus:{topic}", send, name=topic)
        self.store.record_message(run.id, topic, agent, payload)
        return message

    @property
    def memory(self) -> Memory:
        """Vector memory: the one given, else ``<data_dir>/memory`` or ``settings.memory_url``."""
        if self._memory is None:
            from agentos.runtime.memory import Memory

            self._memory = Memory.from_settings(self.settings)
            self._owns_memory = True
        return self._memory

    @property
    def grants(self) -> Grants:
        """Which agent may read or write which memory namespace (beyond its own and global)."""
        if self._grants is None:
            from agentos.runtime.memory import Grants

            self._grants = Grants()
        return self._grants

    async def memory_call(
        self, run: Run, agent: str, op: str, namespaces: Sequence[str], **arguments: Any
    ) -> Any:
        """A memory operation (``recall``, ``remember``, ``get``, ``list``, ``forget``, ...; see
        :mod:`agentos.runtime.memory.syscalls`) as a syscall of kind ``memory``, after checking
        ``agent``'s grants on every namespace it touches.

        Raises:
            MemoryAccessDenied: a namespace ``agent`` was not granted (recorded as ``denied``).
            UserError: an unknown op or malformed namespace (recorded as ``invalid``).
            MemoryUnavailable: the vector store failed.
        """
        import asyncio

        from agentos.errors import MemoryAccessDenied, UserError
        from agentos.runtime.memory.syscalls import prepare

        names = [namespaces] if isinstance(namespaces, str) else list(namespaces)
        detail = {"op": op, "namespaces": names,
                  **{k: v for k, v in arguments.items() if k in ("query", "k", "ids", "filters")}}
        now = self._clock()
        try:
            call = prepare(self.grants, agent, op, names, arguments)
        except (MemoryAccessDenied, UserError) as error:
            outcome = "denied" if isinstance(error, MemoryAccessDenied) else "invalid"
            self._record(run, agent, "memory", "memory", op, now, 0.0, 0.0, 0, outcome,
                         error=str(error), detail=detail)
            raise
        remote = self.settings.workers_url is not None
        send = self._remote("memory", "memory",
                            {"op": op, "namespaces": names, "arguments": arguments}, agent)

        async def work() -> Any:
            if not remote:
                return await asyncio.to_thread(call, self.memory)
            value = await send()
            if op == "namespaces":  # the worker lists them all; grants are checked here
                return [ns for ns in value if self.grants.can_read(agent, ns)]
            return value

        return await self.syscall(run, agent, "memory", "memory", work, name=op, detail=detail)

    @property
    def workers(self) -> RemoteSyscalls:
        """The client that sends syscalls to ``agentos worker`` processes at
        ``settings.workers_url`` (made on first use).

        Raises:
            UserError: ``workers_url`` is not set.
        """
        if self._workers is None:
            from agentos.errors import UserError
            from agentos.runtime.workers.client import RemoteSyscalls

            if self.settings.workers_url is None:
                raise UserError("no workers_url is set: set AGENTOS_WORKERS_URL=redis://... "
                                "and start `agentos worker` there")
            self._workers = RemoteSyscalls(self.settings.workers_url)
        return self._workers

    def _remote(self, kind: str, resource: str, body: dict[str, Any], agent: str,
                est_tokens: int = 0, timeout: float | None = None) -> Callable[[], Awaitable[Any]]:
        """The work of a syscall run by a worker: each attempt (a retry) is sent under its own
        idempotency key; a redelivery of the same attempt is answered from the journal."""
        import itertools
        import uuid

        base, attempt = uuid.uuid4().hex, itertools.count()
        limit = timeout or self.settings.timeout_s
        return lambda: self.workers.call(kind, resource, body, key=f"{base}.{next(attempt)}",
                                         est_tokens=est_tokens, timeout=limit, agent=agent)

    async def aclose(self) -> None:
        """Close the bus (if one was opened), the memory it opened, the MCP servers it started,
        and the run store."""
        for connection in self._mcp or ():
            await asyncio.to_thread(connection.close)
        self._mcp = None
        if self._workers is not None:
            await self._workers.aclose()
        if self._bus is not None and not self._bus.closed:
            await self._bus.close()
        if self._owns_memory and self._memory is not None:
            self._memory.close()
        if self.scheduler.limits is not None:
            await self.scheduler.limits.aclose()
        self.store.close()

    def close(self) -> None:
        """Sync :meth:`aclose`, for scripts; inside an event loop use ``await kernel.aclose()``."""
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aclose())
            return
        from agentos.errors import UserError

        raise UserError("Kernel.close() was called inside an event loop; use `await kernel.aclose()`")


def _shared_limits(settings: Settings) -> Any:
    """A `RedisLimits` when ``settings.limits_url`` is a Redis url, else ``None`` (in-process)."""
    if not settings.limits_url.startswith(("redis://", "rediss://")):
        return None
    from agentos.runtime.scheduler import RedisLimits

    return RedisLimits(settings.limits_url)


class _ToolThread:
    """One call of a sync tool, run by a thread that Python cannot stop once it started.

    The thread is a daemon of its own, not one of the loop's executor: an abandoned call must
    not hold up ``asyncio.run`` (which joins its executor) or the interpreter's exit.
    """

    def __init__(self, tool: Tool, values: dict[str, Any]) -> None:
        self._tool, self._values = tool, values
        self._lock = threading.Lock()
        self._state = "queued"  # queued -> running -> done, or queued -> dropped
        self._on_done: Callable[[], None] | None = None

    def hold_slot(self, scheduler: Scheduler, resource: str) -> None:
        """The syscall stopped waiting: a tool not started yet never will; one that runs keeps
        one of its pool's slots taken until it ends. Called on the event loop."""
        with self._lock:
            if self._state == "queued":
                self._state = "dropped"
            if self._state != "running":
                return
            release = scheduler.occupy(resource)
            loop = asyncio.get_running_loop()
            self._on_done = lambda: loop.call_soon_threadsafe(release)

    async def start(self) -> Any:
        """Run the tool in its thread and wait for it (a cancelled wait leaves the thread be)."""
        import contextvars

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def settle(ok: bool, value: Any) -> None:
            if future.done():  # the syscall stopped waiting
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def body() -> None:
            try:
                outcome = (True, context.run(self.run))
            except BaseException as error:  # handed to the awaiting coroutine
                outcome = (False, error)
            try:
                loop.call_soon_threadsafe(settle, *outcome)
            except RuntimeError:  # the loop is gone: the call was abandoned, its result dropped
                pass

        threading.Thread(target=body, name=f"agentos-tool-{self._tool.name}", daemon=True).start()
        return await future

    def run(self) -> Any:
        """The thread's body: the tool, unless its syscall gave up before the thread started."""
        with self._lock:
            if self._state == "dropped":
                return None
            self._state = "running"
        try:
            return self._tool.run(**self._values)
        finally:
            with self._lock:
                self._state = "done"
                on_done, self._on_done = self._on_done, None
            if on_done is not None:
                try:
                    on_done()
                except RuntimeError:  # the event loop is gone, and its scheduler with it
                    pass

    def abandon(self) -> bool:
        """The syscall gave up: True when the tool is still running (it is left to finish)."""
        with self._lock:
            if self._state == "queued":
                self._state = "dropped"
            return self._state == "running"
