"""Crews from YAML: agents, tasks and edges in a file, validated before anything runs.

Example::

    name: fact-and-code
    agents:
      researcher: {role: a careful researcher, tools: [calculator]}
      coder: {role: a Python programmer, llm: local/qwen2.5-coder-1.5b}
    tasks:
      - {name: research, agent: researcher, description: "Find the facts for: {goal}"}
      - name: code
        agent: coder
        description: Write the function.
        check: {contains: ["def "]}
        max_visits: 3
    edges:
      - {from: research, to: code}
      - {from: code, to: code, when: check_failed}

Without ``edges``, tasks' ``depends_on`` lists give the edges; without either, tasks run in
order. Errors (:class:`~agentos.errors.CrewDefinitionError`) name the file and the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentos.crew.task import Check, Edge, Task
from agentos.errors import CrewDefinitionError

if TYPE_CHECKING:
    from agentos.crew.crew import Crew
    from agentos.runtime.kernel import Kernel
    from agentos.runtime.llm.types import LLM

__all__ = ["AgentSpec", "CrewSpec", "EdgeSpec", "TaskSpec", "load_crew"]


class AgentSpec(BaseModel):
    """One agent of a YAML crew (see :class:`agentos.Agent` for the fields)."""

    model_config = ConfigDict(extra="forbid")

    role: str = "a helpful assistant"
    goal: str = ""
    tools: list[str] = Field(default_factory=list)
    llm: str | None = None
    max_steps: int | None = Field(None, ge=1)
    instructions: str | None = None


class TaskSpec(BaseModel):
    """One task of a YAML crew (see :class:`agentos.crew.Task`)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    agent: str
    description: str = ""
    expected_output: str = ""
    check: Check | None = None
    max_visits: int = Field(3, ge=1)
    depends_on: list[str] = Field(default_factory=list)


class EdgeSpec(BaseModel):
    """One edge: ``{from: a, to: b, when: check_failed}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    when: str | None = None


class CrewSpec(BaseModel):
    """A whole YAML crew."""

    model_config = ConfigDict(extra="forbid")

    name: str = "crew"
    agents: dict[str, AgentSpec]
    tasks: list[TaskSpec] = Field(min_length=1)
    edges: list[EdgeSpec] | None = None
    approve_tools: list[str] = Field(default_factory=list)


def load_crew(
    source: str | Path, *, kernel: Kernel | None = None, model: str | LLM | None = None,
    **crew_options: Any,
) -> Crew:
    """Build a :class:`Crew` from a YAML file (a path) or YAML text.

    Args:
        source: a path to a ``.yaml``/``.yml`` file, or the YAML text itself.
        kernel: the kernel the crew runs on (its registry resolves tool names).
        model: the LLM of agents that name none: a model string or an LLM object (default: the
            configured model).
        **crew_options: passed to :class:`Crew` (``approve_tools``, ``on_event``, ``budget``...).

    Raises:
        CrewDefinitionError: the YAML is invalid, or names an unknown agent, tool or task, or
            has an unconditional cycle.
    """
    import yaml

    from agentos.agents.base import Agent
    from agentos.crew.crew import Crew

    origin = "the YAML text"
    text = str(source)
    if isinstance(source, Path) or (("\n" not in text) and text.endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.is_file():
            raise CrewDefinitionError(f"crew file {path} does not exist")
        origin, text = str(path), path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CrewDefinitionError(f"{origin} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise CrewDefinitionError(f"{origin}: a crew is a mapping with agents, tasks and edges")
    try:
        spec = CrewSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CrewDefinitionError(f"{origin}: {where}: {first['msg']}") from None

    if kernel is None:
        from agentos.runtime.kernel import Kernel

        kernel = Kernel()
    known_tools = set(kernel.registry.names())
    agents = []
    for name, a in spec.agents.items():
        for t in a.tools:
            if t not in known_tools:
                raise CrewDefinitionError(
                    f"{origin}: agent {name!r} names unknown tool {t!r}; registered tools: "
                    + (", ".join(sorted(known_tools)) or "none")
                    + " (`agentos tools list`)"
                )
        agents.append(Agent(name, role=a.role, goal=a.goal, llm=a.llm or model, tools=a.tools,
                            max_steps=a.max_steps, instructions=a.instructions, kernel=kernel))
    task_names = {t.name for t in spec.tasks}
    for t in spec.tasks:
        if t.agent not in spec.agents:
            raise CrewDefinitionError(
                f"{origin}: task {t.name!r} names unknown agent {t.agent!r}; agents: "
                + ", ".join(spec.agents)
            )
        for d in t.depends_on:
            if d not in task_names:
                raise CrewDefinitionError(f"{origin}: task {t.name!r} depends on unknown task {d!r}")
    tasks = [Task(t.name, agent=t.agent, description=t.description,
                  expected_output=t.expected_output, check=t.check, max_visits=t.max_visits)
             for t in spec.tasks]
    edges: list[Edge] | None
    if spec.edges is not None:
        edges = [Edge(e.source, e.target, e.when) for e in spec.edges]
    elif any(t.depends_on for t in spec.tasks):
        edges = [Edge(d, t.name) for t in spec.tasks for d in t.depends_on]
    else:
        edges = None
    crew_options.setdefault("approve_tools", spec.approve_tools)
    try:
        return Crew(agents, tasks, edges, name=spec.name, kernel=kernel,
                    definition={"kind": "yaml", "text": text,
                                "model": model if isinstance(model, str) else None}, **crew_options)
    except CrewDefinitionError as error:
        raise CrewDefinitionError(f"{origin}: {error}") from None
