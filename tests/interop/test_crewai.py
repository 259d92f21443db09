"""A real CrewAI Crew on the kernel through AgentosCrewAILLM (telemetry off)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from agentos import Kernel  # noqa: E402
from agentos.testing import FunctionLLM  # noqa: E402

crewai = pytest.importorskip("crewai")


def test_a_crewai_crew_runs_its_llm_calls_as_kernel_syscalls(kernel: Kernel) -> None:
    from crewai import Agent, Crew, Task

    from agentos.interop.crewai import AgentosCrewAILLM

    seen: list[str] = []

    def brain(messages, tools):  # type: ignore[no-untyped-def]
        seen.append(messages[-1]["content"])
        return "Thought: I can answer directly.\nFinal Answer: Paris is the capital of France."

    llm = AgentosCrewAILLM(model="scripted", llm=FunctionLLM(brain), kernel=kernel, agent="crewai")
    geographer = Agent(role="geographer", goal="answer geography questions",
                       backstory="a concise expert", llm=llm, verbose=False)
    task = Task(description="What is the capital of France?", expected_output="the city",
                agent=geographer)
    result = Crew(agents=[geographer], tasks=[task], verbose=False).kickoff()
    assert result.raw == "Paris is the capital of France."
    assert any("What is the capital of France?" in s for s in seen)
    records = kernel.store.syscalls(llm.run_id)
    assert len(records) == len(seen) >= 1
    assert {(r.agent, r.kind, r.outcome) for r in records} == {("crewai", "llm", "ok")}
