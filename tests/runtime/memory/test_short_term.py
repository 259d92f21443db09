"""The conversation window stays within its token budget and summarises what falls out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.kernel import Kernel
from agentos.runtime.memory.short_term import ConversationWindow, llm_summarizer
from agentos.testing import ScriptedLLM


def test_window_summarises_the_oldest_turns_and_stays_in_budget() -> None:
    seen: list[tuple[str | None, list[str]]] = []

    def summarize(previous, evicted):  # type: ignore[no-untyped-def]
        seen.append((previous, [m["content"] for m in evicted]))
        return f"summary #{len(seen)}"

    window = ConversationWindow(200, summarize, target=0.5)
    window.add({"role": "system", "content": "You are terse."})
    for i in range(12):
        asyncio.run(window.add_and_compact({"role": "user", "content": f"fact {i}: " + "x" * 120}))
        assert window.tokens() <= 200
    assert window.summary == f"summary #{len(seen)}" and len(seen) >= 2
    assert seen[1][0] == "summary #1"  # each summary builds on the one before
    messages = window.messages()
    assert messages[0]["content"] == "You are terse."
    assert messages[1]["content"].startswith("Summary of the earlier conversation: summary #")
    assert messages[-1]["content"].startswith("fact 11:")
    evicted = [c for _, batch in seen for c in batch]
    assert evicted == [f"fact {i}: " + "x" * 120 for i in range(len(evicted))]
    assert window.evicted == len(evicted)


def test_a_tool_result_leaves_with_the_turn_that_called_it() -> None:
    window = ConversationWindow(100, lambda prev, ev: "s", target=0.5)
    window.add({"role": "assistant", "content": "a" * 400, "tool_calls": []})
    window.add({"role": "tool", "content": "result", "tool_call_id": "1"})
    window.add({"role": "user", "content": "next"})
    asyncio.run(window.compact())
    assert [m["role"] for m in window.turns] == ["user"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UserError):
        ConversationWindow(10, lambda p, e: "")


def test_llm_summarizer_is_a_kernel_syscall(tmp_path: Path) -> None:
    async def scenario() -> None:
        kernel = Kernel(store=tmp_path / "runs.sqlite")
        run = kernel.start_run("chat")
        llm = ScriptedLLM(["The user likes tea."])
        window = ConversationWindow(80, llm_summarizer(kernel, run, "chat", llm), target=0.5)
        for text in ("I like tea. " * 30, "What do I like?"):
            await window.add_and_compact({"role": "user", "content": text})
        assert window.summary == "The user likes tea."
        assert "I like tea." in llm.calls[0][0]["content"]
        assert [c.kind for c in kernel.store.syscalls(run.id)] == ["llm"]
        await kernel.aclose()

    asyncio.run(scenario())
