"""`Crew`: agents as the nodes of a LangGraph graph, run by the kernel, checkpointed, resumable.

Each task visit runs its owner agent on a prompt built from the goal, the task and its inputs.
Inputs are handoff messages: when a task finishes it publishes its output (a kernel ``publish``
syscall) on the bus topic ``crew.<run_id>.<next task>`` of every task it hands off to, and a task
reads its inbox topic when it starts. A task resumed in a new process whose bus no longer holds
the message (the in-process bus lives and dies with its process) reads the same output from
the checkpointed state instead.

Members share the memory namespace ``crew:<run id>`` (the crew grants it to each of them when
it starts or resumes).

Every LLM call, tool call and publish is a kernel syscall, recorded in the run store and in
the crew journal (:mod:`agentos.crew.journal`), so :meth:`Crew.resume` after a crash replays
completed syscalls instead of repeating them. LangGraph checkpoints the state after every step
(``durability="sync"``) into the run store (:mod:`agentos.crew.checkpoint`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agentos.crew import checkpoint as ckpt
from agentos.crew.graph import CrewGraph, NodeFn
from agentos.crew.journal import Journal, JournaledKernel
from agentos.crew.state import CrewState
from agentos.crew.task import Edge, Task
from agentos.errors import (
    ApprovalRejected,
    BudgetExceeded,
    CheckpointVersionError,
    CrewDefinitionError,
    RunNotResumable,
    UserError,
)

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.scheduler import Budget

__all__ = ["Crew", "CrewEvent", "CrewResult", "Member"]

_HALT = "_crew"  # key in state["stops"]: the whole crew stopped
_INBOX_GROUP = "crew"
_FINISHED = {"succeeded", "not_converged", "rejected"}


class Member(Protocol):
    """What a crew agent must offer (:class:`agentos.Agent` does)."""

    name: str

    async def arun(self, task: str, *, kernel: Any = None, run: Any = None) -> Any: ...


@dataclass(slots=True)
class CrewEvent:
    """A progress event: ``kind`` is ``task_start``, ``step`` or ``task_end``."""

    kind: str
    task: str
    agent: str
    visit: int
    step: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    budget_left: dict[str, float] = field(default_factory=dict)
    passed: bool | None = None
    detail: str = ""


@dataclass(slots=True)
class CrewResult:
    """How a crew run ended.

    Attributes:
        status: ``succeeded`` (every task's last check passed, no loop stopped early),
            ``not_converged`` (it ended with what it had; ``stops`` says why), ``waiting``
            (a human must approve; ``waiting`` holds the question), ``rejected``,
            ``budget_exceeded`` or ``failed``.
        report: the output of the crew's last tasks (those without outgoing edges).
        outputs, checks, data, stops, events: the final :class:`CrewState` channels.
    """

    run_id: str
    status: str
    report: str
    outputs: dict[str, str]
    checks: dict[str, dict[str, Any]]
    data: dict[str, Any]
    stops: dict[str, str]
    events: list[dict[str, Any]]
    waiting: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(slots=True)
class _RunContext:
    kernel: Kernel
    run: Run
    journal: Journal
    started: float


class Crew:
    """Agents that work on tasks connected by edges, as one checkpointed LangGraph graph.

    Args:
        agents: the members; each task names one of them as its owner.
        tasks: the graph's nodes (see :class:`Task`).
        edges: handoffs between tasks (see :class:`Edge`); default: the tasks in order.
        name: the crew's name (the run's name in the run store).
        start: tasks that run first; default: computed (see :class:`CrewGraph`).
        kernel: the kernel to run on; default: a new one from the settings.
        approve_tools: tools that need a human's approval before each call (LangGraph interrupt).
        rerun_tools: tools run again rather than replayed from the journal on resume (only
            side-effect-free checks; see :class:`~agentos.crew.journal.JournaledKernel`).
        retention: how many checkpoints the run store keeps.
        max_task_runs: at most this many task visits in one run (LangGraph's recursion limit).
        budget: the run's budget (tokens, cost, wall time, energy).
        on_event: called with each :class:`CrewEvent` (progress display).
        definition: how to rebuild this crew for ``agentos runs resume`` (JSON); None: a crew
            defined in Python, resumable only with :meth:`resume` from Python.

    Raises:
        CrewDefinitionError: a task names an unknown agent, two agents share a name, or the
            graph is invalid (see :class:`CrewGraph`).
    """

    def __init__(
        self,
        agents: Sequence[Member],
        tasks: Sequence[Task],
        edges: Sequence[Edge] | None = None,
        *,
        name: str = "crew",
        start: Sequence[str] | None = None,
        kernel: Kernel | None = None,
        approve_tools: Collection[str] = (),
        rerun_tools: Collection[str] = (),
        retention: ckpt.Retention | None = None,
        max_task_runs: int = 40,
        budget: Budget | None = None,
        on_event: Callable[[CrewEvent], None] | None = None,
        definition: dict[str, Any] | None = None,
    ) -> None:
        self.agents: dict[str, Member] = {}
        for a in agents:
            if a.name in self.agents:
                raise CrewDefinitionError(f"two agents are named {a.name!r}; agent names must be unique")
            self.agents[a.name] = a
        for t in tasks:
            if t.agent is not None and t.agent not in self.agents:
                raise CrewDefinitionError(
                    f"task {t.name!r} names unknown agent {t.agent!r}; the crew's agents: "
                    + (", ".join(self.agents) or "none")
                )
        self.graph = CrewGraph.build(tasks, edges, start)
        self.name = name
        self.kernel = kernel
        self.approve_tools = set(approve_tools)
        self.rerun_tools = set(rerun_tools)
        self.retention = retention or ckpt.Retention()
        self.max_task_runs = max_task_runs
        self.budget = budget
        self.on_event = on_event
        self.definition = definition or {"kind": "python", "name": name}
        self._ctx: _RunContext | None = None

    # --- public API ---------------------------------------------------------------------------

    def run(self, goal: str, *, run_id: str | None = None) -> CrewResult:
        """Run the crew on ``goal`` (sync facade over :meth:`arun`).

        Raises:
            UserError: called inside a running event loop (use ``await crew.arun(goal)``).
        """
        return _sync(self.arun(goal, run_id=run_id), "crew.run", "await crew.arun(goal)")

    async def arun(self, goal: str, *, run_id: str | None = None) -> CrewResult:
        """Run the crew on ``goal`` in a new run; returns how it ended (never raises for a run
        that failed: the result says why)."""
        kernel = self._kernel()
        run = kernel.start_run(self.name, goal, budget=self.budget, run_id=run_id)
        ckpt.save_record(kernel.store, run.id, self.definition)
        return await self._drive(kernel, run, {"goal": goal}, resuming=False)

    def resume(self, run_id: str, *, approve: bool | None = None) -> CrewResult:
        """Resume a crew run (sync facade over :meth:`aresume`)."""
        return _sync(self.aresume(run_id, approve=approve), "crew.resume",
                     "await crew.aresume(run_id)")

    async def aresume(self, run_id: str, *, approve: bool | None = None) -> CrewResult:
        """Finish a run that was killed, failed, or waits for approval, from its checkpoint.

        Completed task visits are not run again; inside the visit that was interrupted,
        completed syscalls are replayed from the journal.

        Args:
            run_id: the run (a unique prefix is enough).
            approve: the answer to the approval the run waits for (True approve, False reject);
                None for a run that does not wait.

        Raises:
            RunNotResumable: no such run, not a crew run, already finished, or waiting for an
                answer that was not given (or given to a run that does not wait).
            CheckpointVersionError: the checkpoints were written in another format.
        """
        kernel = self._kernel()
        record = ckpt.load_record(kernel.store, run_id)
        stored = kernel.store.get_run(record.run_id)
        assert stored is not None
        if stored.status in _FINISHED:
            raise RunNotResumable(
                f"run {stored.id} already finished ({stored.status}); nothing to resume. "
                "`agentos runs show " + stored.id + "` shows what it did"
            )
        if stored.status == "running":
            raise RunNotResumable(
                f"run {stored.id} is still running in another process (pid alive); wait for it "
                "or stop it first"
            )
        waiting = stored.status == "waiting"
        if waiting and approve is None:
            raise RunNotResumable(
                f"run {stored.id} is waiting for approval: {stored.error or 'a step needs approval'}. "
                "Answer with `agentos runs resume " + stored.id + " --approve` or `--reject`"
            )
        if approve is not None and not waiting:
            raise RunNotResumable(
                f"run {stored.id} is not waiting for approval ({stored.status}); resume it "
                "without --approve/--reject"
            )
        run = kernel.resume_run(stored.id, stored.name, budget=self.budget)
        command: Any = None
        if approve is not None:
            from langgraph.types import Command

            command = Command(resume={"approved": approve, "by": "human"})
        return await self._drive(kernel, run, command, resuming=True)

    # --- running ------------------------------------------------------------------------------

    def _kernel(self) -> Kernel:
        if self.kernel is None:
            from agentos.runtime.kernel import Kernel

            self.kernel = Kernel()
        return self.kernel

    async def _drive(self, kernel: Kernel, run: Run, graph_input: Any, *, resuming: bool) -> CrewResult:
        from langgraph.errors import GraphRecursionError

        self._ctx = _RunContext(kernel, run, Journal(kernel.store, run.id), time.monotonic())
        # The crew's shared memory namespace, crew:<run id>: every member reads and writes it.
        kernel.grants.allow_crew(run.id, self.agents)
        config: dict[str, Any] = {"configurable": {"thread_id": run.id},
                                  "recursion_limit": self.max_task_runs}
        status, error = "failed", None
        values: Mapping[str, Any] = {}
        waiting: dict[str, Any] | None = None
        async with ckpt.checkpointer(kernel.store) as saver:
            graph = self.graph.compile(self._node, saver)
            if resuming:
                try:
                    snapshot = await graph.aget_state(config)
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    kernel.end_run(run, "failed", None, f"checkpoint unreadable: {exc}")
                    raise CheckpointVersionError(
                        f"the checkpoints of run {run.id} cannot be read by this agentos ({exc}); "
                        "start the task again with `agentos crew run`"
                    ) from exc
                if not snapshot.next and not snapshot.interrupts:
                    kernel.end_run(run, "failed", None, "no checkpoint to resume from")
                    raise RunNotResumable(
                        f"run {run.id} has no checkpoint to resume from (it stopped before its "
                        "first step, or its checkpoints were pruned); start it again"
                    )
            try:
                values = await graph.ainvoke(graph_input, config, durability="sync")
                snapshot = await graph.aget_state(config)
                values = snapshot.values
                if snapshot.interrupts:
                    status = "waiting"
                    waiting = dict(snapshot.interrupts[0].value)
                    error = waiting.get("question")
                else:
                    status, error = self._verdict(values)
            except ApprovalRejected as exc:
                values = (await graph.aget_state(config)).values
                status, error = "rejected", str(exc)
            except GraphRecursionError:
                values = (await graph.aget_state(config)).values
                status = "not_converged"
                error = (f"stopped after {self.max_task_runs} task runs (max_task_runs) "
                         "without finishing")
            except BaseException as exc:
                kernel.end_run(run, "failed", None, f"{type(exc).__name__}: {exc}")
                ckpt.prune(kernel.store, self.retention, run.id, finished=False)
                raise
        report = self._report(values)
        kernel.end_run(run, status, report, error)
        ckpt.prune(kernel.store, self.retention, run.id, finished=status in _FINISHED)
        return CrewResult(
            run.id, status, report, dict(values.get("outputs", {})),
            dict(values.get("checks", {})), dict(values.get("data", {})),
            dict(values.get("stops", {})), list(values.get("events", [])), waiting, error,
        )

    def _verdict(self, values: Mapping[str, Any]) -> tuple[str, str | None]:
        stops = values.get("stops", {})
        if _HALT in stops:
            reason = stops[_HALT]
            return ("budget_exceeded" if "budget" in reason else "failed"), reason
        if stops:
            return "not_converged", "; ".join(f"{k}: {v}" for k, v in stops.items())
        failed = {k: v for k, v in values.get("checks", {}).items() if not v.get("passed")}
        if failed:
            return "not_converged", "; ".join(
                f"{k}: check failed: {v.get('reason')}" for k, v in failed.items())
        return "succeeded", None

    def _report(self, values: Mapping[str, Any]) -> str:
        outputs = values.get("outputs", {})
        sinks = [n for n in self.graph.tasks if not self.graph.out_edges(n) and n in outputs]
        if not sinks:
            sinks = [e["task"] for e in values.get("events", [])[-1:]]
        return "\n\n".join(outputs.get(n, "") for n in sinks).strip()

    def _emit(self, event: CrewEvent) -> None:
        if self.on_event is not None:
            ctx = self._ctx
            if ctx is not None:
                event.tokens = ctx.run.usage.as_dict().get("tokens", 0)  # type: ignore[assignment]
                event.elapsed_s = time.monotonic() - ctx.started
                event.budget_left = _budget_left(ctx.run)
            self.on_event(event)

    def _node(self, task: Task) -> NodeFn:
        async def node(state: CrewState) -> Any:
            return await self._visit(task, state)

        node.__name__ = f"task_{task.name}"
        return node

    async def _visit(self, task: Task, state: CrewState) -> Any:
        ctx = self._ctx
        assert ctx is not None, "a node ran outside Crew._drive"
        visit = state.get("visits", {}).get(task.name, 0) + 1
        owner = task.agent or "crew"
        stops = state.get("stops", {})
        if _HALT in stops or visit > task.max_visits:
            update: dict[str, Any] = {}
            if _HALT not in stops:
                update["stops"] = {task.name: f"skipped: already ran {task.max_visits} times"}
            return self._handoff_command(task, {**state, **update}, update)
        scope = JournaledKernel(ctx.kernel, ctx.journal, f"{task.name}/{visit}",
                                approve_tools=self.approve_tools, rerun_tools=self.rerun_tools)
        inputs = await self._inbox(ctx, task, state)
        self._emit(CrewEvent("task_start", task.name, owner, visit))
        data: dict[str, Any] = {}
        halt: str | None = None
        if task.fn is not None:
            output = task.fn(state)
            if inspect.isawaitable(output):
                output = await output
            output = str(output)
            agent_status = "succeeded"
        else:
            member = self.agents[task.agent]  # type: ignore[index]
            prompt = self._prompt(task, state, inputs, visit)
            restore = self._watch_steps(member, task, visit)
            try:
                result = await member.arun(prompt, kernel=scope, run=ctx.run)
            finally:
                restore()
            output = str(getattr(result, "answer", None) or "")
            agent_status = str(getattr(result, "status", "succeeded"))
            data = dict(getattr(result, "data", None) or {})
            if agent_status in {"budget_exceeded", "cancelled"}:
                halt = getattr(result, "error", None) or agent_status
        merged = {**state, "outputs": {**state.get("outputs", {}), task.name: output},
                  "data": {**state.get("data", {}), task.name: data}}
        checked = task.evaluate(output, merged)
        if agent_status != "succeeded" and checked.passed and task.fn is None:
            error = getattr(result, "error", None)
            checked = type(checked)(False, f"{task.agent} ended with status {agent_status}"
                                    + (f": {error}" if error else ""))
        update = {
            "outputs": {task.name: output},
            "checks": {task.name: {"passed": checked.passed, "reason": checked.reason}},
            "visits": {task.name: visit},
            "data": {task.name: {**data, "status": agent_status}},
            "events": [{"task": task.name, "agent": owner, "visit": visit,
                        "passed": checked.passed, "status": agent_status,
                        "reason": checked.reason}],
        }
        if halt is not None:
            update["stops"] = {_HALT: f"{task.name}: {halt}"}
        self._emit(CrewEvent("task_end", task.name, owner, visit, passed=checked.passed,
                             detail=checked.reason))
        after = {
            **state,
            **{k: ({**state.get(k, {}), **v} if isinstance(v, dict) else v)
               for k, v in update.items() if k != "events"},
        }
        return await self._publish_and_route(ctx, scope, task, owner, visit, after, update)

    async def _publish_and_route(
        self, ctx: _RunContext, scope: JournaledKernel, task: Task, owner: str, visit: int,
        after: Mapping[str, Any], update: dict[str, Any],
    ) -> Any:
        halted = _HALT in after.get("stops", {})
        if self.graph.routes_itself(task.name):
            targets, stops = ([], {}) if halted else self.graph.route(task.name, after)
            if stops:
                update["stops"] = {**update.get("stops", {}), **stops}
        else:
            targets = [e.target for e in self.graph.out_edges(task.name)]
        if not halted:
            output = after["outputs"][task.name]
            passed = after["checks"][task.name]["passed"]
            try:
                for target in targets:
                    await scope.publish(ctx.run, owner, _topic(ctx.run.id, target), {
                        "from": task.name, "to": target, "visit": visit, "output": output,
                        "passed": passed,
                    })
            except BudgetExceeded as exc:  # the run is out of budget: the crew stops here
                update["stops"] = {**update.get("stops", {}), _HALT: f"{task.name}: {exc}"}
                targets = []
        return self._handoff_command(task, after, update, targets=targets)

    def _handoff_command(self, task: Task, after: Mapping[str, Any], update: dict[str, Any], *,
                         targets: list[str] | None = None) -> Any:
        """The node's return value: the update, plus where to go for a self-routing task."""
        if not self.graph.routes_itself(task.name):
            return update
        from langgraph.graph import END
        from langgraph.types import Command

        if targets is None:
            halted = _HALT in after.get("stops", {})
            targets = [] if halted else self.graph.route(task.name, after)[0]
        return Command(update=update, goto=targets or [END])

    async def _inbox(self, ctx: _RunContext, task: Task, state: CrewState) -> dict[str, str]:
        """The outputs handed to ``task``: its bus inbox, else the checkpointed state."""
        inputs: dict[str, str] = {}
        bus = ctx.kernel.bus
        topic = _topic(ctx.run.id, task.name)
        while True:
            messages = await bus.fetch(topic, _INBOX_GROUP, max_messages=100, timeout=0)
            if not messages:
                break
            for m in messages:
                inputs[m.payload["from"]] = m.payload["output"]
                await bus.ack(m)
        outputs = state.get("outputs", {})
        for source in self.graph.predecessors(task.name):
            if source not in inputs and source in outputs:
                inputs[source] = outputs[source]
        return inputs

    def _prompt(self, task: Task, state: CrewState, inputs: Mapping[str, str], visit: int) -> str:
        goal = state.get("goal", "")
        if not task.description:
            lines = [f"The crew's goal: {goal}"]
        else:
            lines = [_fill(task.description, goal)]
            if goal and "{goal}" not in task.description:
                lines.append(f"\nThe crew's goal: {goal}")
        if task.expected_output:
            lines.append(f"\nExpected output: {task.expected_output}")
        for source, text in inputs.items():
            heading = "Your previous output" if source == task.name else f"Input from {source}"
            lines.append(f"\n## {heading}\n{text}")
        previous = state.get("checks", {}).get(task.name)
        if visit > 1 and previous and not previous.get("passed"):
            lines.append(f"\nYour previous output failed its check: {previous.get('reason')}. "
                         "Fix that this time.")
        return "\n".join(lines)

    def _watch_steps(self, member: Member, task: Task, visit: int) -> Callable[[], None]:
        """Emit a ``step`` event per agent step (for agents with ``on_step``)."""
        if self.on_event is None or not hasattr(member, "on_step"):
            return lambda: None
        previous = member.on_step

        def on_step(step: Any) -> None:
            if previous is not None:
                previous(step)
            names = ", ".join(c.name for c in getattr(step, "tool_calls", ()))
            self._emit(CrewEvent("step", task.name, member.name, visit,
                                 step=getattr(step, "index", 0) + 1, detail=names))

        member.on_step = on_step  # type: ignore[attr-defined]

        def restore() -> None:
            member.on_step = previous  # type: ignore[attr-defined]

        return restore


def _topic(run_id: str, task: str) -> str:
    return f"crew.{run_id}.{task}"


def _fill(template: str, goal: str) -> str:
    return template.replace("{goal}", goal)


def _budget_left(run: Run) -> dict[str, float]:
    budget = run.budget
    if budget is None:
        return {}
    used = run.usage.as_dict()
    left: dict[str, float] = {}
    if budget.tokens is not None:
        left["tokens"] = budget.tokens - float(used.get("tokens", 0))
    if budget.cost is not None:
        left["cost"] = budget.cost - float(used.get("cost", 0.0))
    if budget.wall_s is not None and run.usage.started_at is not None:
        left["wall_s"] = budget.wall_s - (time.monotonic() - run.usage.started_at)
    return left


def _sync(coro: Any, what: str, instead: str) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UserError(f"{what}() was called inside an event loop; use `{instead}`")
