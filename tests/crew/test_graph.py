"""The crew graph: structure errors, start tasks, joins, concurrency, handoff messages."""

from __future__ import annotations

import asyncio

import pytest

from agentos import Agent, Kernel
from agentos.crew import Crew, CrewGraph, Edge, Task
from agentos.errors import CrewDefinitionError
from agentos.testing import FunctionLLM, ScriptedLLM


def test_unknown_agent_duplicate_names_and_cycles_are_refused() -> None:
    a = Agent("a", llm=ScriptedLLM([]))
    with pytest.raises(CrewDefinitionError, match="task 'x' names unknown agent 'b'; the crew's agents: a"):
        Crew([a], [Task("x", agent="b")])
    with pytest.raises(CrewDefinitionError, match="two agents are named 'a'"):
        Crew([a, Agent("a")], [Task("x", agent="a")])
    with pytest.raises(CrewDefinitionError, match="two tasks are named 'x'"):
        CrewGraph.build([Task("x", agent="a"), Task("x", agent="a")])
    with pytest.raises(CrewDefinitionError, match="cycle: x -> y -> x"):
        CrewGraph.build([Task("x", agent="a"), Task("y", agent="a")], [Edge("x", "y"), Edge("y", "x")])
    with pytest.raises(CrewDefinitionError, match="not valid"):
        Task("bad name", agent="a")
    with pytest.raises(CrewDefinitionError, match="exactly one of agent= .* or fn="):
        Task("x")


def test_a_join_cannot_wait_for_a_self_routing_task() -> None:
    tasks = [Task(n, agent="a") for n in ("x", "y", "z")]
    with pytest.raises(CrewDefinitionError, match="task 'z' waits for x, y, but 'x' also has conditional edges"):
        CrewGraph.build(tasks, [Edge("x", "z"), Edge("y", "z"), Edge("x", "x", when="check_failed")])


def test_start_tasks_skip_loop_targets() -> None:
    tasks = [Task(n, agent="a") for n in ("research", "code", "fix", "docs")]
    graph = CrewGraph.build(tasks, [Edge("research", "code"), Edge("code", "fix", when="check_failed"),
                                    Edge("code", "research", when="check_failed")])
    assert graph.start == ["research", "docs"]


def test_independent_tasks_run_concurrently_and_a_join_waits_for_both(kernel: Kernel) -> None:
    started: list[str] = []
    both = asyncio.Event()

    async def brain(messages, tools):  # type: ignore[no-untyped-def]
        task = messages[-1]["content"].split()[0]
        if task in ("left", "right"):
            started.append(task)
            if len(started) == 2:
                both.set()
            # Sequential execution would time out here: the other task must be in flight.
            await asyncio.wait_for(both.wait(), 10)
            return f"{task} result"
        return "joined: " + messages[-1]["content"].replace("\n", " ")

    a = Agent("a", llm=FunctionLLM(brain))
    tasks = [Task("left", agent="a", description="left side"),
             Task("right", agent="a", description="right side"),
             Task("join", agent="a", description="join both")]
    result = Crew([a], tasks, [Edge("left", "join"), Edge("right", "join")], kernel=kernel).run("g")
    assert result.ok
    assert sorted(started) == ["left", "right"]
    assert "left result" in result.outputs["join"] and "right result" in result.outputs["join"]
    assert [e["task"] for e in result.events][-1] == "join" and len(result.events) == 3


def test_function_tasks_and_output_contains_edges(kernel: Kernel) -> None:
    a = Agent("a", llm=ScriptedLLM(["please ESCALATE"]))
    tasks = [Task("ask", agent="a"), Task("escalate", fn=lambda s: "escalated"),
             Task("close", fn=lambda s: "closed")]
    edges = [Edge("ask", "escalate", when="output_contains:ESCALATE"), Edge("ask", "close")]
    result = Crew([a], tasks, edges, kernel=kernel).run("g")
    assert [e["task"] for e in result.events] == ["ask", "escalate"]
    assert result.report == "escalated"


def test_budget_exhaustion_stops_the_whole_crew(kernel: Kernel) -> None:
    from agentos import Budget

    a = Agent("a", llm=ScriptedLLM(["x" * 400, "never"]))
    crew = Crew([a], [Task("one", agent="a"), Task("two", agent="a")], kernel=kernel,
                budget=Budget(tokens=60))
    result = crew.run("go")
    assert result.status == "budget_exceeded" and "tokens" in result.error
    # The first task used the budget up; the handoff was refused and the second never ran.
    assert [e["task"] for e in result.events] == ["one"] and len(a.llm.calls) == 1
    assert "one:" in result.stops["_crew"] and kernel.store.get_run(result.run_id).status == "budget_exceeded"
