"""The planner: an LLM decomposes a goal into a task graph, validated before it runs.

The planner's LLM (a kernel syscall like any other) answers with JSON: a list of tasks, each
with an id, an owner agent, a description, an expected output, the ids it depends on and an
optional check. The answer is validated with pydantic (unique ids, known agents, known
dependencies, no cycle); a malformed or invalid answer gets a correction turn that quotes the
errors, at most ``max_corrections`` times, then :class:`~agentos.errors.PlanError`.
:meth:`Planner.crew` turns a plan into a :class:`Crew` whose independent tasks run concurrently
(the same LangGraph step, so their syscalls queue in the scheduler together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from agentos.crew.task import Check, Edge, Task
from agentos.errors import PlanError

if TYPE_CHECKING:
    from agentos.crew.crew import Crew, Member
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.llm.types import LLM, Message

__all__ = ["Plan", "PlannedTask", "Planner"]


class PlannedTask(BaseModel):
    """One task of a plan."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
    agent: str
    description: str = Field(min_length=1)
    expected_output: str = ""
    depends_on: list[str] = Field(default_factory=list)
    check: Check | None = None


class Plan(BaseModel):
    """A task graph. Validate with ``context={"agents": [...names]}`` to check owners."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[PlannedTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph(self, info: ValidationInfo) -> Plan:
        ids = [t.id for t in self.tasks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"task ids must be unique; repeated: {', '.join(dupes)}")
        agents = (info.context or {}).get("agents")
        for t in self.tasks:
            if agents is not None and t.agent not in agents:
                raise ValueError(
                    f"task {t.id!r} is owned by unknown agent {t.agent!r}; use one of: "
                    + ", ".join(agents)
                )
            for d in t.depends_on:
                if d not in ids:
                    raise ValueError(f"task {t.id!r} depends on unknown task {d!r}")
                if d == t.id:
                    raise ValueError(f"task {t.id!r} depends on itself")
        deps = {t.id: list(t.depends_on) for t in self.tasks}
        done: set[str] = set()
        while len(done) < len(deps):
            ready = [i for i, ds in deps.items() if i not in done and all(d in done for d in ds)]
            if not ready:
                rest = sorted(set(deps) - done)
                raise ValueError(f"the dependencies form a cycle among: {', '.join(rest)}")
            done.update(ready)
        return self

    def levels(self) -> list[list[str]]:
        """Task ids grouped by the step they can run in (each group runs concurrently)."""
        deps = {t.id: set(t.depends_on) for t in self.tasks}
        done: set[str] = set()
        levels: list[list[str]] = []
        while len(done) < len(deps):
            ready = [i for i, ds in deps.items() if i not in done and ds <= done]
            levels.append(ready)
            done.update(ready)
        return levels


_INSTRUCTIONS = """You are the planner of a crew of agents. Split the goal into a small graph of tasks.
The agents (use their names exactly as owners):
{agents}

Answer with JSON only, no prose, in this shape:
{{"tasks": [{{"id": "short_id", "agent": "<agent name>", "description": "what to do",
  "expected_output": "what the result looks like", "depends_on": ["ids of tasks whose output it needs"],
  "check": {{"contains": ["text the output must contain"]}}}}]}}
Tasks that do not depend on each other run at the same time. Use at most {max_tasks} tasks."""


class Planner:
    """Decomposes a goal into a validated :class:`Plan`.

    Args:
        llm: the planner's model (a model string or LLM object); default: the configured model.
        max_corrections: correction turns after a malformed or invalid answer.
        max_tasks: the largest plan accepted.
        name: the planner's agent name in the run store.
    """

    def __init__(
        self, llm: str | LLM | None = None, *, max_corrections: int = 2, max_tasks: int = 8,
        name: str = "planner",
    ) -> None:
        self.llm = llm
        self.max_corrections = max_corrections
        self.max_tasks = max_tasks
        self.name = name

    async def aplan(
        self, goal: str, agents: Mapping[str, str], *, kernel: Kernel, run: Run | None = None,
    ) -> Plan:
        """Plan ``goal`` for ``agents`` (name -> role).

        Raises:
            PlanError: no valid plan after ``max_corrections`` correction turns.
            BudgetExceeded, ProviderError: from the LLM syscall.
        """
        owns = run is None
        if run is None:
            run = kernel.start_run(self.name, goal)
        model = self.llm if self.llm is not None else kernel.settings.model
        roster = "\n".join(f"- {name}: {role}" for name, role in agents.items())
        messages: list[Message] = [
            {"role": "system", "content": _INSTRUCTIONS.format(agents=roster,
                                                               max_tasks=self.max_tasks)},
            {"role": "user", "content": f"Goal: {goal}"},
        ]
        problems: list[str] = []
        try:
            for attempt in range(self.max_corrections + 1):
                completion = await kernel.llm(run, self.name, model, messages, None)
                text = completion.content or ""
                try:
                    plan = self._parse(text, list(agents))
                except ValueError as error:
                    problems.append(str(error))
                    messages.append({"role": "assistant", "content": text})
                    messages.append({"role": "user", "content": (
                        f"That plan is not valid: {error}\nAnswer again with the corrected JSON "
                        "only.")})
                    continue
                if owns:
                    kernel.end_run(run, "succeeded", plan.model_dump_json())
                return plan
        except BaseException as exc:
            if owns:
                kernel.end_run(run, "failed", None, f"{type(exc).__name__}: {exc}")
            raise
        error = PlanError(
            f"the planner gave no valid plan in {self.max_corrections + 1} answers; last problem: "
            f"{problems[-1]}"
        )
        if owns:
            kernel.end_run(run, "failed", None, str(error))
        raise error

    def _parse(self, text: str, agents: Sequence[str]) -> Plan:
        """The plan in ``text`` (JSON, optionally in a code fence), or ValueError saying why not."""
        body = text.strip()
        fence = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
        if fence:
            body = fence.group(1).strip()
        try:
            data = json.loads(body)
        except json.JSONDecodeError as error:
            raise ValueError(f"it is not JSON ({error.msg} at line {error.lineno} column "
                             f"{error.colno})") from None
        if isinstance(data, list):
            data = {"tasks": data}
        try:
            plan = Plan.model_validate(data, context={"agents": list(agents)})
        except ValidationError as error:
            raise ValueError("; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}"
                for e in error.errors()[:5])) from None
        if len(plan.tasks) > self.max_tasks:
            raise ValueError(f"it has {len(plan.tasks)} tasks; use at most {self.max_tasks}")
        return plan

    @staticmethod
    def crew(plan: Plan, agents: Sequence[Member], **crew_options: Any) -> Crew:
        """A :class:`Crew` that runs ``plan``: one task per planned task, edges from
        ``depends_on``; tasks without dependencies start together."""
        from agentos.crew.crew import Crew

        tasks = [Task(t.id, agent=t.agent, description=t.description,
                      expected_output=t.expected_output, check=t.check) for t in plan.tasks]
        edges = [Edge(d, t.id) for t in plan.tasks for d in t.depends_on]
        start = [t.id for t in plan.tasks if not t.depends_on]
        crew_options.setdefault("name", "planned-crew")
        return Crew(agents, tasks, edges, start=start, **crew_options)
