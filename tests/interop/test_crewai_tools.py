"""agentos tools ⇄ CrewAI tools, on real CrewAI objects (telemetry off in tests/conftest.py)."""

from __future__ import annotations

import asyncio

import pytest
from crewai.tools import BaseTool
from crewai.tools import tool as crew_tool
from pydantic import BaseModel, Field

from agentos import Agent, Kernel, tool
from agentos.errors import InvalidToolCall, ToolRetry
from agentos.interop.crewai_tools import CrewAITool, from_crewai, to_crewai
from agentos.testing import FunctionLLM, ScriptedLLM, call


@tool
def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


@tool
async def slow_double(x: int) -> int:
    """Double a number, asynchronously.

    Args:
        x: the number.
    """
    await asyncio.sleep(0)
    return 2 * x


class CityArgs(BaseModel):
    city: str = Field(description="the city")


class Population(BaseTool):
    name: str = "City population"
    description: str = "Population of a city."
    args_schema: type[BaseModel] = CityArgs

    def _run(self, city: str) -> str:
        if city == "Atlantis":
            raise LookupError("Atlantis is not on the map")
        return f"{city}: 700000"


class AsyncPopulation(Population):
    name: str = "async_population"

    async def _arun(self, city: str) -> str:
        await asyncio.sleep(0)
        return f"{city}: 42"


def test_agentos_tool_becomes_a_crewai_tool_with_schema_and_description() -> None:
    ct = to_crewai(add)
    assert isinstance(ct, BaseTool)
    assert (ct.name, ct.description) == ("add", "Add two integers.")
    props = ct.args_schema.model_json_schema()["properties"]
    assert props["a"]["description"] == "the first addend."
    assert ct.run(a=2, b=3) == 5
    assert asyncio.run(ct.arun(a=2)) == 3
    with pytest.raises(ValueError, match="arguments validation failed"):
        ct.run(a="not a number")


def test_async_agentos_tool_runs_async_and_sync_in_crewai() -> None:
    ct = to_crewai(slow_double)
    assert asyncio.run(ct.arun(x=4)) == 8
    assert ct.run(x=5) == 10


def test_crewai_tool_becomes_an_agentos_tool_with_schema_and_description() -> None:
    t = from_crewai(Population())
    assert isinstance(t, CrewAITool) and t.origin == "CrewAI"
    assert t.name == "city_population"
    assert t.description == "Population of a city."
    assert t.parameters["properties"]["city"]["description"] == "the city"
    assert not t.is_async
    assert t(city="Lyon") == "Lyon: 700000"
    with pytest.raises(InvalidToolCall, match="city"):
        t()
    with pytest.raises(LookupError, match="Atlantis"):
        t(city="Atlantis")


def test_async_crewai_tools_stay_async() -> None:
    t = from_crewai(AsyncPopulation())
    assert t.is_async
    assert asyncio.run(t.acall({"city": "Nice"})) == "Nice: 42"

    @crew_tool("shout")
    async def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    t = from_crewai(shout)
    assert t.is_async and asyncio.run(t.acall({"text": "a"})) == "A"


def test_spent_usage_limit_is_a_correction_naming_crewai() -> None:
    @crew_tool("once", max_usage_count=1)
    def once(text: str) -> str:
        """Only once."""
        return text

    t = from_crewai(once)
    assert t(text="a") == "a"
    with pytest.raises(ToolRetry, match="CrewAI tool once reported a failure: .*usage limit"):
        t(text="b")


def test_round_trip_keeps_schema_and_behaviour() -> None:
    back = from_crewai(to_crewai(add))
    assert back.parameters["properties"]["a"]["type"] == "integer"
    assert back(a=4, b=5) == 9


def test_agent_accepts_crewai_tools_and_reports_their_errors(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("city_population", city="Atlantis"),
                       call("city_population", city="Lyon"), "Lyon has 700000 people."])
    result = Agent("crew", llm=llm, tools=[Population()], kernel=kernel).run("how many?")
    assert result.ok
    first, second = [c for s in result.steps for c in s.tool_calls]
    assert not first.ok
    assert "city_population (from CrewAI) failed: LookupError" in first.output
    assert (second.output, second.ok) == ("Lyon: 700000", True)


def test_a_crewai_agent_calls_an_agentos_tool(kernel: Kernel) -> None:
    from crewai import Agent as CrewAgent
    from crewai import Crew, Task

    from agentos.interop.crewai import AgentosCrewAILLM

    calls: list[tuple[int, int]] = []

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers.

        Args:
            a: first factor.
            b: second factor.
        """
        calls.append((a, b))
        return a * b

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        if tools:  # native tool calling
            if any(m.get("role") == "tool" for m in messages):
                return "The product is 42."
            return call("multiply", a=6, b=7)
        if any("42" in str(m.get("content")) for m in messages[1:]):
            return "Thought: I have it.\nFinal Answer: The product is 42."
        return ('Thought: multiply.\nAction: multiply\nAction Input: {"a": 6, "b": 7}')

    llm = AgentosCrewAILLM(model="scripted", llm=FunctionLLM(brain), kernel=kernel, agent="crew")
    mathematician = CrewAgent(role="mathematician", goal="multiply", backstory="exact",
                              llm=llm, tools=[to_crewai(multiply)], verbose=False)
    task = Task(description="What is 6 times 7?", expected_output="the product",
                agent=mathematician)
    result = Crew(agents=[mathematician], tasks=[task], verbose=False).kickoff()
    assert calls == [(6, 7)]
    assert "42" in result.raw


def test_a_langchain_tool_reaches_crewai_through_agentos() -> None:
    from langchain_core.tools import tool as lc_tool

    from agentos.interop.langchain_tools import from_langchain

    @lc_tool
    def repeat(text: str, times: int = 2) -> str:
        """Repeat a text."""
        return text * times

    ct = to_crewai(from_langchain(repeat))  # a JSON-schema tool: CrewAI gets a model built from it
    assert ct.args_schema.model_json_schema()["properties"]["times"]["default"] == 2
    assert ct.run(text="ab") == "abab"
    with pytest.raises(ValueError, match="arguments validation failed"):
        ct.run(times=3)
