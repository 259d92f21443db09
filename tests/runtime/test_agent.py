"""The agent loop: tool calls, corrections of bad calls, limits, results."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos import Agent, Kernel, Tool, load_settings, tool
from agentos.errors import ToolRetry, UserError
from agentos.runtime.llm.types import ToolCall
from agentos.testing import FunctionLLM, ScriptedLLM, call
from pydantic import BaseModel


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    yield k
    k.close()


@tool
def lookup(city: str) -> str:
    """Population of a city."""
    return {"paris": "2.1 million", "lyon": "0.5 million"}[city.lower()]


def test_think_act_observe_until_final_answer(kernel: Kernel) -> None:
    def brain(messages, tools):  # type: ignore[no-untyped-def]
        last = messages[-1]
        if last["role"] == "tool":
            return f"Paris has {last['content']} people."
        return call("lookup", city="Paris")

    result = Agent("geo", llm=FunctionLLM(brain), tools=[lookup]).run("Population of Paris?", kernel=kernel)
    assert result.ok and result.answer == "Paris has 2.1 million people."
    assert [c.output for s in result.steps for c in s.tool_calls] == ["2.1 million"]


def test_invalid_arguments_go_back_to_the_llm_which_corrects_them(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("lookup", town="Paris"), call("lookup", city="Paris"), "2.1 million"])
    result = Agent("geo", llm=llm, tools=[lookup]).run("Paris?", kernel=kernel)
    assert result.ok
    correction = llm.calls[1][-1]
    assert correction["role"] == "tool" and "invalid arguments for tool lookup" in correction["content"]
    assert "city" in correction["content"]  # says what was expected


def test_unknown_tool_and_unreadable_call_are_corrections_not_crashes(kernel: Kernel) -> None:
    garbled = ToolCall("c1", "lookup", {}, error="arguments of lookup are not valid JSON")
    llm = ScriptedLLM([call("weather", city="Paris"), garbled, call("lookup", city="Lyon"), "ok"])
    result = Agent("geo", llm=llm, tools=[lookup]).run("Lyon?", kernel=kernel)
    assert result.ok
    assert "unknown tool 'weather'" in llm.calls[1][-1]["content"]
    assert "registered tools: lookup" in llm.calls[1][-1]["content"]
    assert "not valid JSON" in llm.calls[2][-1]["content"]


def test_bad_tool_calls_are_bounded(kernel: Kernel) -> None:
    llm = FunctionLLM(lambda m, t: call("lookup", nope=1))
    result = Agent("geo", llm=llm, tools=[lookup], max_tool_retries=2).run("x", kernel=kernel)
    assert result.status == "failed"
    assert "3 turns in a row" in (result.error or "")
    assert len(result.steps) == 3


def test_a_tool_that_raises_is_reported_and_the_run_goes_on(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("lookup", city="Atlantis"), "I could not find it."])
    result = Agent("geo", llm=llm, tools=[lookup]).run("Atlantis?", kernel=kernel)
    assert result.ok
    observation = result.steps[0].tool_calls[0]
    assert not observation.ok and "tool lookup failed: KeyError" in observation.output
    rows = kernel.store.syscalls(result.run_id)
    assert [r.outcome for r in rows if r.kind == "tool"] == ["error"]


def test_tool_retry_message_reaches_the_llm(kernel: Kernel) -> None:
    @tool
    def picky(n: int) -> int:
        """Only even numbers."""
        if n % 2:
            raise ToolRetry("n must be even; try n+1")
        return n

    llm = ScriptedLLM([call("picky", n=3), call("picky", n=4), "4"])
    result = Agent("p", llm=llm, tools=[picky]).run("go", kernel=kernel)
    assert result.ok and "n must be even" in llm.calls[1][-1]["content"]


def test_max_steps_stops_a_looping_agent(kernel: Kernel) -> None:
    llm = FunctionLLM(lambda m, t: call("lookup", city="Paris"))
    result = Agent("loop", llm=llm, tools=[lookup], max_steps=4).run("x", kernel=kernel)
    assert result.status == "max_steps" and len(result.steps) == 4
    assert kernel.store.get_run(result.run_id).status == "max_steps"  # type: ignore[union-attr]


def test_class_based_tool_and_registered_tool_names(kernel: Kernel) -> None:
    class Greeter(Tool):
        name = "greet"
        description = "Greets someone."

        class Args(BaseModel):
            who: str

        def run(self, who: str) -> str:
            return f"hello {who}"

    kernel.registry.register(Greeter())
    llm = ScriptedLLM([call("greet", who="Ada"), call("calculator", expression="6*7"), "done"])
    result = Agent("g", llm=llm, tools=["greet", "calculator"]).run("x", kernel=kernel)
    outputs = [c.output for s in result.steps for c in s.tool_calls]
    assert outputs == ["hello Ada", "42"]


def test_unknown_tool_name_in_agent_config_is_a_user_error(kernel: Kernel) -> None:
    with pytest.raises(UserError, match="unknown tool 'nope'"):
        Agent("x", llm=ScriptedLLM(["hi"]), tools=["nope"]).run("x", kernel=kernel)


def test_run_inside_event_loop_says_use_arun(kernel: Kernel) -> None:
    import asyncio

    async def main() -> None:
        Agent("x", llm=ScriptedLLM(["hi"])).run("x", kernel=kernel)

    with pytest.raises(UserError, match="await agent.arun"):
        asyncio.run(main())


def test_scripted_llm_says_when_it_runs_out(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("lookup", city="Paris")])
    with pytest.raises(RuntimeError, match="ran out of replies"):
        Agent("x", llm=llm, tools=[lookup]).run("x", kernel=kernel)
    [run] = kernel.store.list_runs()
    assert run.status == "failed" and "ran out of replies" in (run.error or "")  # not left running
    assert [r.outcome for r in kernel.store.syscalls(run.id)] == ["ok", "ok", "error"]


def test_on_step_reports_each_step_as_it_finishes(kernel: Kernel) -> None:
    seen: list[tuple[int, list[str]]] = []
    llm = ScriptedLLM([call("lookup", city="Lyon"), "Lyon: 0.5 million"])
    agent = Agent("geo", llm=llm, tools=[lookup],
                  on_step=lambda s: seen.append((s.index, [c.output for c in s.tool_calls])))
    agent.run("Lyon?", kernel=kernel)
    assert seen == [(0, ["0.5 million"]), (1, [])]
