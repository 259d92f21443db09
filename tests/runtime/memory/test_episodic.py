"""Past runs are searchable per agent: "what did the coder try last time?"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentos.agents import Agent
from agentos.runtime.kernel import Kernel
from agentos.runtime.memory import CachedEmbedder, Memory
from agentos.runtime.memory.episodic import recall_episodes, remember_run
from agentos.runtime.tool import tool
from agentos.testing import ScriptedLLM, call


@tool
def run_tests(path: str) -> str:
    """Run the tests under a path."""
    return f"2 failed in {path}"


def test_an_agent_finds_what_it_tried_in_an_earlier_run(tmp_path: Path, embedder: CachedEmbedder) -> None:
    memory = Memory(tmp_path / "memory", embedder=embedder)
    kernel = Kernel(store=tmp_path / "runs.sqlite", memory=memory)
    coder = Agent("coder", llm=ScriptedLLM([call("run_tests", path="tests/test_parser.py"),
                                            "The parser tests still fail."]),
                  tools=[run_tests], kernel=kernel)
    first = coder.run("Fix the date parser")
    other = Agent("writer", llm=ScriptedLLM(["Wrote the changelog."]), kernel=kernel)
    second = other.run("Write the changelog")
    remember_run(memory, kernel.store, first.run_id)
    assert remember_run(memory, kernel.store, second.run_id) == {"writer": f"e-{second.run_id}-writer"}

    [episode] = recall_episodes(memory, "coder", "what did I try on the date parser last time?")
    assert first.run_id in episode.text and "run_tests" in episode.text
    assert "tests/test_parser.py" in episode.text and "The parser tests still fail." in episode.text
    assert episode.metadata["status"] == "succeeded"
    assert all(second.run_id not in h.text for h in recall_episodes(memory, "coder", "changelog"))
    remember_run(memory, kernel.store, first.run_id)  # again: replaced, not duplicated
    assert memory.count("agent:coder") == 1
    asyncio.run(kernel.aclose())
    memory.close()
