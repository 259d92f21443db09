"""A crew's task graph: validated, routed, and compiled into a LangGraph ``StateGraph``.

Structure rules (checked when the graph is built, each failure a
:class:`~agentos.errors.CrewDefinitionError` naming the fix):

* every edge names known tasks; conditions are known;
* unconditional edges form no cycle (loops need a condition, and are bounded by the target's
  ``max_visits``);
* a task entered by several unconditional edges waits for all of them (a LangGraph join), so
  those edges' sources may not have conditional edges themselves.

A task whose outgoing edges are all unconditional hands off to all of its targets through
LangGraph edges. A task with a conditional edge routes itself: after it ran, the first
conditional edge that holds and whose target may still run is taken; a holding edge whose
target has used up its ``max_visits`` is recorded as "did not converge" and skipped; when no
conditional edge is taken, the unconditional ones are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentos.crew.state import CrewState
from agentos.crew.task import Edge, Task
from agentos.errors import CrewDefinitionError

__all__ = ["CrewGraph", "NodeFn"]

NodeFn = Callable[[CrewState], Awaitable[Any]]


@dataclass(slots=True)
class CrewGraph:
    """Tasks and edges, checked.

    Args:
        tasks: the nodes, in order (order breaks ties: the first task is a start task).
        edges: the handoffs; with none, tasks run one after another in order.
        start: the tasks that run first; default: tasks no unconditional edge enters that are not
            reachable from an earlier such task.

    Raises:
        CrewDefinitionError: see the module docstring.
    """

    tasks: dict[str, Task]
    edges: list[Edge]
    start: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, tasks: Sequence[Task], edges: Sequence[Edge] | None = None,
        start: Sequence[str] | None = None,
    ) -> CrewGraph:
        if not tasks:
            raise CrewDefinitionError("a crew needs at least one task")
        by_name: dict[str, Task] = {}
        for t in tasks:
            if t.name in by_name:
                raise CrewDefinitionError(f"two tasks are named {t.name!r}; task names must be unique")
            by_name[t.name] = t
        if edges is None:
            names = [t.name for t in tasks]
            edges = [Edge(a, b) for a, b in zip(names, names[1:])]
        for e in edges:
            for end in (e.source, e.target):
                if end not in by_name:
                    raise CrewDefinitionError(
                        f"edge {e.source} -> {e.target} names unknown task {end!r}; known tasks: "
                        + ", ".join(by_name)
                    )
            e.validate()
        for t in tasks:
            for r in t.reads:
                if r not in by_name:
                    raise CrewDefinitionError(f"task {t.name!r} reads unknown task {r!r}")
        graph = cls(by_name, list(edges))
        graph._check_acyclic()
        graph._check_joins()
        graph.start = list(start) if start else graph._default_start()
        for s in graph.start:
            if s not in by_name:
                raise CrewDefinitionError(f"start task {s!r} is not a task of the crew")
        return graph

    # --- structure ----------------------------------------------------------------------------

    def out_edges(self, task: str) -> list[Edge]:
        return [e for e in self.edges if e.source == task]

    def in_edges(self, task: str) -> list[Edge]:
        return [e for e in self.edges if e.target == task]

    def routes_itself(self, task: str) -> bool:
        """Whether ``task`` has a conditional edge (so it picks its next tasks itself)."""
        return any(e.conditional for e in self.out_edges(task))

    def predecessors(self, task: str) -> list[str]:
        """Tasks whose outputs are ``task``'s inputs: those it reads, then those with an edge
        into it, in edge order."""
        seen: list[str] = list(self.tasks[task].reads)
        for e in self.in_edges(task):
            if e.source not in seen:
                seen.append(e.source)
        return seen

    def _check_acyclic(self) -> None:
        plain: dict[str, list[str]] = {n: [] for n in self.tasks}
        for e in self.edges:
            if not e.conditional:
                plain[e.source].append(e.target)
        color: dict[str, int] = {}
        path: list[str] = []

        def visit(n: str) -> None:
            color[n] = 1
            path.append(n)
            for m in plain[n]:
                if color.get(m) == 1:
                    cycle = path[path.index(m):] + [m]
                    raise CrewDefinitionError(
                        "the crew's unconditional edges form a cycle: " + " -> ".join(cycle)
                        + ". A loop needs a condition on one of its edges (when: check_failed, "
                        "check_passed or output_contains:TEXT) so it can end"
                    )
                if color.get(m) is None:
                    visit(m)
            path.pop()
            color[n] = 2

        for n in self.tasks:
            if color.get(n) is None:
                visit(n)

    def _check_joins(self) -> None:
        for name in self.tasks:
            plain_in = [e for e in self.in_edges(name) if not e.conditional]
            if len(plain_in) < 2:
                continue
            for e in plain_in:
                if self.routes_itself(e.source):
                    raise CrewDefinitionError(
                        f"task {name!r} waits for {', '.join(x.source for x in plain_in)}, but "
                        f"{e.source!r} also has conditional edges, so it cannot be waited for; "
                        f"put a task between {e.source!r} and {name!r}, or make its edges "
                        "unconditional"
                    )

    def _default_start(self) -> list[str]:
        candidates = [n for n in self.tasks if not any(
            not e.conditional for e in self.in_edges(n))]
        start: list[str] = []
        for n in candidates:
            if not any(self._reachable(s, n) for s in start):
                start.append(n)
        return start or [next(iter(self.tasks))]

    def _reachable(self, source: str, target: str) -> bool:
        seen, todo = {source}, [source]
        while todo:
            n = todo.pop()
            for e in self.out_edges(n):
                if e.target == target:
                    return True
                if e.target not in seen:
                    seen.add(e.target)
                    todo.append(e.target)
        return False

    # --- routing ------------------------------------------------------------------------------

    def route(self, task: str, state: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        """Where a self-routing task hands off after it ran in ``state``.

        Returns:
            The next tasks (empty: this branch ends), and the loops that were due but stopped
            because their target used up its ``max_visits`` (target -> why).
        """
        stops: dict[str, str] = {}
        visits = state.get("visits", {})
        for e in self.out_edges(task):
            if not e.conditional or not e.holds(state):
                continue
            target = self.tasks[e.target]
            if visits.get(e.target, 0) >= target.max_visits:
                reason = state.get("checks", {}).get(task, {}).get("reason") or f"{e.when}"
                stops[e.target] = (
                    f"did not converge: {task} -> {e.target} ({e.when}) was due again, but "
                    f"{e.target} already ran {target.max_visits} times (max_visits); last: {reason}"
                )
                continue
            return [e.target], stops
        return [e.target for e in self.out_edges(task) if not e.conditional], stops

    # --- LangGraph ----------------------------------------------------------------------------

    def compile(self, node_for: Callable[[Task], NodeFn], checkpointer: Any) -> Any:
        """The compiled LangGraph graph: one node per task, made by ``node_for``."""
        from langgraph.graph import END, START, StateGraph

        builder = StateGraph(CrewState)
        for name, task in self.tasks.items():
            if self.routes_itself(name):
                targets = tuple({e.target for e in self.out_edges(name)}) + (END,)
                builder.add_node(name, node_for(task), destinations=targets)
            else:
                builder.add_node(name, node_for(task))
        for s in self.start:
            builder.add_edge(START, s)
        for name in self.tasks:
            if self.routes_itself(name):
                continue
            outs = self.out_edges(name)
            if not outs:
                builder.add_edge(name, END)
        for name in self.tasks:
            plain_in = [e.source for e in self.in_edges(name) if not e.conditional
                        and not self.routes_itself(e.source)]
            if len(plain_in) >= 2:
                builder.add_edge(plain_in, name)
            elif len(plain_in) == 1:
                builder.add_edge(plain_in[0], name)
        return builder.compile(checkpointer=checkpointer)
