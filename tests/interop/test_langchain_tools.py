"""agentos tools ⇄ LangChain tools, on real LangChain objects."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.tools import tool as lc_tool
from pydantic import BaseModel, Field

from agentos import Agent, Kernel, tool
from agentos.errors import InvalidToolCall, ToolFailed, ToolRetry, UserError
from agentos.interop.langchain_tools import LangChainTool, from_langchain, to_langchain
from agentos.testing import ScriptedLLM, call


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


@tool
def picky(word: str) -> str:
    """Accept only 'yes'.

    Args:
        word: the word.
    """
    if word != "yes":
        raise ToolRetry("say 'yes'")
    return "ok"


@tool
def broken(x: int) -> int:
    """Always fails.

    Args:
        x: ignored.
    """
    raise KeyError("no such key")


def test_agentos_tool_becomes_a_structured_tool_with_schema_and_description() -> None:
    lc = to_langchain(add)
    assert isinstance(lc, StructuredTool) and isinstance(lc, BaseTool)
    assert lc.name == "add"
    assert lc.description == "Add two integers."
    props = lc.tool_call_schema.model_json_schema()["properties"]
    assert props["a"]["type"] == "integer" and props["a"]["description"] == "the first addend."
    assert props["b"]["default"] == 1
    assert lc.invoke({"a": 2, "b": 3}) == 5
    assert asyncio.run(lc.ainvoke({"a": 2})) == 3


def test_async_agentos_tool_is_async_and_sync_in_langchain() -> None:
    lc = to_langchain(slow_double)
    assert lc.coroutine is not None
    assert asyncio.run(lc.ainvoke({"x": 4})) == 8
    assert lc.invoke({"x": 5}) == 10


def test_agentos_corrections_become_tool_exceptions_and_other_errors_propagate() -> None:
    with pytest.raises(ToolException, match="say 'yes'"):
        to_langchain(picky).invoke({"word": "no"})
    handled = to_langchain(picky)
    handled.handle_tool_error = True
    assert handled.invoke({"word": "no"}) == "say 'yes'"
    with pytest.raises(KeyError, match="no such key"):
        to_langchain(broken).invoke({"x": 1})


def test_langchain_tool_becomes_an_agentos_tool_with_schema_and_description() -> None:
    class Query(BaseModel):
        city: str = Field(description="the city")
        days: int = Field(3, ge=1, le=7, description="forecast days")

    def forecast(city: str, days: int = 3) -> str:
        return f"{city}: sunny for {days} days"

    lc = StructuredTool.from_function(forecast, name="forecast",
                                      description="Weather forecast.", args_schema=Query)
    t = from_langchain(lc)
    assert isinstance(t, LangChainTool) and t.origin == "LangChain"
    assert (t.name, t.description) == ("forecast", "Weather forecast.")
    assert t.parameters["properties"]["city"]["description"] == "the city"
    assert t.parameters["required"] == ["city"]
    assert not t.is_async
    assert t(city="Oslo") == "Oslo: sunny for 3 days"
    with pytest.raises(InvalidToolCall, match="days"):
        t(city="Oslo", days=30)
    with pytest.raises(InvalidToolCall, match="city"):
        t(days=2)


def test_async_langchain_tool_stays_async() -> None:
    @lc_tool
    async def echo(text: str) -> str:
        """Echo the text."""
        return text

    t = from_langchain(echo)
    assert t.is_async
    assert asyncio.run(t.acall({"text": "hi"})) == "hi"


def test_langchain_tool_exception_is_a_correction_naming_langchain() -> None:
    @lc_tool
    def fussy(n: int) -> int:
        """Only even numbers."""
        if n % 2:
            raise ToolException("n must be even")
        return n

    with pytest.raises(ToolRetry, match="LangChain tool fussy reported: n must be even"):
        from_langchain(fussy)(n=3)


def test_round_trip_keeps_schema_and_behaviour() -> None:
    back = from_langchain(to_langchain(add))
    assert back.parameters["properties"]["a"]["type"] == "integer"
    assert back(a=4, b=5) == 9


def test_invalid_langchain_name_asks_for_one() -> None:
    lc = StructuredTool.from_function(lambda q: q, name="web search", description="d",
                                      args_schema={"type": "object", "properties": {"q": {}}})
    with pytest.raises(UserError, match="name=..."):
        from_langchain(lc)
    assert from_langchain(lc, name="web_search").name == "web_search"


def test_agent_accepts_langchain_tools_and_reports_their_errors(kernel: Kernel) -> None:
    @lc_tool
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    @lc_tool
    def explode(text: str) -> str:
        """Always raises."""
        raise RuntimeError("the LangChain tool broke")

    llm = ScriptedLLM([call("shout", text="hi"), call("explode", text="x"),
                       call("shout", text=3), "HI"])
    result = Agent("lc", llm=llm, tools=[shout, explode], kernel=kernel).run("shout hi")
    assert result.ok and result.answer == "HI"
    outcomes = [c for s in result.steps for c in s.tool_calls]
    assert (outcomes[0].output, outcomes[0].ok) == ("HI", True)
    assert not outcomes[1].ok
    assert "explode (from LangChain) failed: RuntimeError: the LangChain tool broke" in outcomes[1].output
    assert not outcomes[2].ok and "invalid arguments for tool shout" in outcomes[2].output
    records = kernel.store.syscalls(result.run_id)
    assert [(r.kind, r.name, r.outcome) for r in records if r.kind == "tool"] == [
        ("tool", "shout", "ok"), ("tool", "explode", "error"), ("tool", "shout", "invalid")]


def test_agentos_tool_failure_through_kernel_is_tool_failed(kernel: Kernel) -> None:
    @lc_tool
    def explode(text: str) -> str:
        """Always raises."""
        raise RuntimeError("boom")

    run = kernel.start_run("t")
    from agentos.runtime.registry import ToolRegistry

    with pytest.raises(ToolFailed, match=r"from LangChain") as info:
        asyncio.run(kernel.call_tool(run, "a", "explode", {"text": "x"},
                                     registry=ToolRegistry([explode])))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_langgraph_react_agent_calls_an_agentos_tool(kernel: Kernel) -> None:
    from langgraph.prebuilt import create_react_agent

    from agentos.interop.langchain import AgentosChatModel

    seen: list[tuple[int, int]] = []

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers.

        Args:
            a: first factor.
            b: second factor.
        """
        seen.append((a, b))
        return a * b

    llm = ScriptedLLM([call("multiply", a=6, b=7), call("multiply", a="x", b=1), "42"])
    app = create_react_agent(AgentosChatModel(model=llm, kernel=kernel), [to_langchain(multiply)])
    messages = app.invoke({"messages": [("user", "6 times 7?")]})["messages"]
    tool_messages = [m for m in messages if m.type == "tool"]
    assert seen == [(6, 7)]
    assert tool_messages[0].content == "42"
    assert tool_messages[1].status == "error" and "valid" in tool_messages[1].content
    assert messages[-1].content == "42"


def test_a_plugin_entry_point_can_export_langchain_tools() -> None:
    from importlib import metadata
    from unittest import mock

    from agentos.runtime.registry import ToolRegistry

    @lc_tool
    def reverse(text: str) -> str:
        """Reverse a text."""
        return text[::-1]

    class EntryPoint:
        name, value = "reverse", "my_pkg.tools:reverse"

        def load(self):  # type: ignore[no-untyped-def]
            return [reverse]

    registry = ToolRegistry()
    with mock.patch.object(metadata, "entry_points", lambda group: [EntryPoint()]):
        assert registry.discover() == 1
    assert registry.source("reverse") == "LangChain via entry point my_pkg.tools:reverse"
    assert registry.get("reverse")(text="abc") == "cba"


def test_two_tools_with_one_name_from_different_sources_are_refused_naming_both(
    kernel: Kernel,
) -> None:
    @lc_tool("add")
    def lc_add(a: int, b: int) -> int:
        """Add, the LangChain way."""
        return a + b

    agent = Agent("dup", llm=ScriptedLLM(["never"]), tools=[add, lc_add], kernel=kernel)
    with pytest.raises(UserError, match=r"'add' is already registered \(from user\); the one "
                                        r"from LangChain cannot share its name"):
        agent.run("add")
