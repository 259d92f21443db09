"""The planner: JSON plans validated with pydantic, bounded correction turns, concurrent runs."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentos import Agent, Kernel
from agentos.crew import Plan, Planner
from agentos.errors import PlanError
from agentos.testing import FunctionLLM, ScriptedLLM

AGENTS = {"researcher": "finds facts", "coder": "writes code"}

PLAN = {"tasks": [
    {"id": "facts_a", "agent": "researcher", "description": "find A", "expected_output": "A"},
    {"id": "facts_b", "agent": "researcher", "description": "find B"},
    {"id": "code", "agent": "coder", "description": "combine", "depends_on": ["facts_a", "facts_b"],
     "check": {"contains": ["def "]}},
]}


def _plan(kernel: Kernel, llm: ScriptedLLM, **kw) -> Plan:  # type: ignore[no-untyped-def]
    return asyncio.run(Planner(llm, **kw).aplan("build it", AGENTS, kernel=kernel))


def test_a_valid_plan_on_the_first_answer(kernel: Kernel) -> None:
    llm = ScriptedLLM(["```json\n" + json.dumps(PLAN) + "\n```"])
    plan = _plan(kernel, llm)
    assert [t.id for t in plan.tasks] == ["facts_a", "facts_b", "code"]
    assert plan.levels() == [["facts_a", "facts_b"], ["code"]]
    assert "- researcher: finds facts" in llm.calls[0][0]["content"]
    # The planner's call is a recorded syscall of its own run.
    run = kernel.store.list_runs(1)[0]
    assert run.name == "planner" and [s.kind for s in kernel.store.syscalls(run.id)] == ["llm"]


@pytest.mark.parametrize(("bad", "problem"), [
    ("Sure! Here is the plan: tasks...", "it is not JSON"),
    (json.dumps({"tasks": [{"id": "x", "agent": "manager", "description": "d"}]}),
     "owned by unknown agent 'manager'; use one of: researcher, coder"),
    (json.dumps({"tasks": [{"id": "x", "agent": "coder", "description": "d", "depends_on": ["y"]},
                           {"id": "y", "agent": "coder", "description": "d", "depends_on": ["x"]}]}),
     "the dependencies form a cycle among: x, y"),
    (json.dumps({"tasks": [{"id": "x", "agent": "coder"}]}), "tasks.0.description: Field required"),
])
def test_an_invalid_answer_gets_a_correction_turn_quoting_the_problem(kernel: Kernel, bad: str, problem: str) -> None:
    llm = ScriptedLLM([bad, json.dumps(PLAN)])
    plan = _plan(kernel, llm)
    assert len(plan.tasks) == 3
    correction = llm.calls[1][-1]["content"]
    assert correction.startswith("That plan is not valid:") and problem in correction


def test_corrections_are_bounded(kernel: Kernel) -> None:
    llm = ScriptedLLM(["nope", "still nope", "never asked"])
    with pytest.raises(PlanError, match="no valid plan in 2 answers; last problem: it is not JSON"):
        _plan(kernel, llm, max_corrections=1)
    assert len(llm.calls) == 2
    assert kernel.store.list_runs(1)[0].status == "failed"


def test_too_many_tasks_is_corrected(kernel: Kernel) -> None:
    big = {"tasks": [{"id": f"t{i}", "agent": "coder", "description": "d"} for i in range(5)]}
    llm = ScriptedLLM([json.dumps(big), json.dumps(PLAN)])
    assert len(_plan(kernel, llm, max_tasks=3).tasks) == 3
    assert "use at most 3" in llm.calls[1][-1]["content"]


def test_a_plan_runs_as_a_crew_independent_tasks_concurrently(kernel: Kernel) -> None:
    in_flight: set[str] = set()
    both = asyncio.Event()

    async def research(messages, tools):  # type: ignore[no-untyped-def]
        what = messages[-1]["content"].split()[1]  # "find A" / "find B"
        in_flight.add(what)
        if len(in_flight) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # only returns if the other task runs meanwhile
        return f"fact {what}"

    coder = Agent("coder", llm=FunctionLLM(lambda m, t: "def f(): pass  # " + m[-1]["content"].replace("\n", " ")))
    researcher = Agent("researcher", llm=FunctionLLM(research))
    plan = Plan.model_validate(PLAN, context={"agents": list(AGENTS)})
    result = Planner.crew(plan, [researcher, coder], kernel=kernel).run("build it")
    assert result.ok, result.error
    assert in_flight == {"A", "B"}
    assert "fact A" in result.outputs["code"] and "fact B" in result.outputs["code"]
    assert result.checks["code"]["passed"] and result.report.startswith("def f()")
