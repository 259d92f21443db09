"""The agent loop's parallel tool calls and its trimming of over-long conversations."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentos import Agent, Kernel, load_settings, tool
from agentos.errors import ContextLengthExceeded
from agentos.runtime.llm.types import Message, estimate_tokens
from agentos.testing import FunctionLLM, ScriptedLLM, call


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    yield k
    k.close()


def test_tool_calls_of_one_reply_run_concurrently_and_answer_in_order(kernel: Kernel) -> None:
    # Each tool waits at a barrier for the other: run one after the other, the first would wait
    # alone until its 5 s timeout and fail. "slow" also finishes last, after "fast".
    barrier = asyncio.Barrier(2)
    finished: list[str] = []

    @tool
    async def slow(x: int) -> str:
        """Waits for fast, then a little longer."""
        await asyncio.wait_for(barrier.wait(), 5)
        await asyncio.sleep(0.05)
        finished.append("slow")
        return f"slow {x}"

    @tool
    async def fast(x: int) -> str:
        """Waits for slow."""
        await asyncio.wait_for(barrier.wait(), 5)
        finished.append("fast")
        return f"fast {x}"

    llm = ScriptedLLM([[call("slow", x=1), call("fast", x=2)], "done"])
    result = Agent("par", llm=llm, tools=[slow, fast]).run("go", kernel=kernel)

    assert result.ok, result.error
    assert finished == ["fast", "slow"]
    assert [(c.name, c.output, c.ok) for c in result.steps[0].tool_calls] == [
        ("slow", "slow 1", True), ("fast", "fast 2", True)]
    sent = llm.calls[1]  # the conversation of the second turn: results in the order asked
    assistant = next(m for m in sent if m.get("tool_calls"))
    tool_messages = [m for m in sent if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in assistant["tool_calls"]]
    assert [m["content"] for m in tool_messages] == ["slow 1", "fast 2"]
    syscalls = [s for s in kernel.store.syscalls(result.run_id) if s.kind == "tool"]
    assert sorted(s.name for s in syscalls) == ["fast", "slow"]


def test_one_failing_call_among_parallel_calls_reports_its_error_in_place(kernel: Kernel) -> None:
    @tool
    def ok(x: int) -> int:
        """Returns x."""
        return x

    llm = ScriptedLLM([[call("ok", x=1), call("missing"), call("ok", x=3)], "done"])
    result = Agent("par", llm=llm, tools=[ok]).run("go", kernel=kernel)
    outcomes = result.steps[0].tool_calls
    assert [(c.name, c.ok) for c in outcomes] == [("ok", True), ("missing", False), ("ok", True)]
    assert outcomes[0].output == "1" and outcomes[2].output == "3"
    assert "missing" in outcomes[1].output


LIMIT = 400  # estimated tokens the fake model accepts


@tool
def read_file(path: str) -> str:
    """Returns a long file."""
    return f"# {path}\n" + "x = 1\n" * 600  # 3,600+ characters, ~900 tokens


def _context_limited(summaries: list[list[Message]], sizes: list[int]) -> FunctionLLM:
    """A model that refuses conversations above LIMIT estimated tokens, as llama.cpp does."""

    def brain(messages: list[Message], tools: Any) -> Any:
        if messages[0]["content"].startswith("Update the summary"):
            summaries.append(messages)
            return "The user asked for a summary of a.py; read_file(a.py) was called."
        size = estimate_tokens(messages)
        sizes.append(size)
        if size > LIMIT:
            raise ContextLengthExceeded(f"request ({size} tokens) exceeds the context ({LIMIT})")
        if any(m["role"] == "tool" or "Tool result" in str(m.get("content")) for m in messages):
            return "a.py sets x to 1, many times."
        return call("read_file", path="a.py")

    return FunctionLLM(brain)


def test_a_conversation_over_the_context_is_trimmed_not_refused(kernel: Kernel) -> None:
    summaries: list[list[Message]] = []
    sizes: list[int] = []
    agent = Agent("reader", llm=_context_limited(summaries, sizes), tools=[read_file])
    result = agent.run("Summarise a.py for me.", kernel=kernel)

    assert result.ok, result.error
    assert result.answer == "a.py sets x to 1, many times."
    assert sizes[1] > LIMIT  # the second turn was refused once ...
    assert sizes[-1] <= LIMIT  # ... and sent again trimmed
    assert summaries, "the oldest turns went through the summariser"
    llm_syscalls = [s for s in kernel.store.syscalls(result.run_id) if s.kind == "llm"]
    assert any(s.outcome != "ok" for s in llm_syscalls)  # the refusal is on record


def test_context_tokens_trims_before_sending(kernel: Kernel) -> None:
    summaries: list[list[Message]] = []
    sizes: list[int] = []
    agent = Agent("reader", llm=_context_limited(summaries, sizes), tools=[read_file],
                  context_tokens=LIMIT)
    result = agent.run("Summarise a.py for me.", kernel=kernel)
    assert result.ok, result.error
    assert max(sizes) <= LIMIT  # never refused: trimmed before the turn was sent


def test_a_conversation_that_cannot_be_trimmed_enough_fails_the_run(kernel: Kernel) -> None:
    def brain(messages: list[Message], tools: Any) -> Any:
        if messages[0]["content"].startswith("Update the summary"):
            return "summary"
        raise ContextLengthExceeded("the context is 0 tokens")

    result = Agent("reader", llm=FunctionLLM(brain)).run("hello", kernel=kernel)
    assert result.status == "failed"
    assert "context" in (result.error or "")
