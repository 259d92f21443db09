"""Runs with known numbers for the dashboard tests, and what the run store says about them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from agentos import Agent, Kernel, tool
from agentos.dashboard.queries import metric_columns
from agentos.runtime.llm.types import Completion
from agentos.runtime.store import RunStore
from agentos.testing import ScriptedLLM, call

__all__ = ["add", "expected_totals", "finished_run", "priced", "two_agents_one_slot"]


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def priced(content: str | None = None, *calls: Any, p: int, c: int, cost: float,
           energy: float) -> Completion:
    """A scripted completion that reports tokens, dollars and joules, as a priced model would."""
    return Completion(content, list(calls), p, c, cost, energy, model="scripted",
                      finish_reason="tool_calls" if calls else "stop")


def finished_run(kernel: Kernel, name: str = "adder", task: str = "What is 2 + 3?") -> str:
    """A run of three LLM calls (one that asks for an unknown tool) and one tool call; its id."""
    llm = ScriptedLLM([
        priced(None, call("add", a=2, b=3), p=120, c=9, cost=0.00123, energy=1.25),
        priced(None, call("multiply", a=5, b=1), p=150, c=11, cost=0.00151, energy=1.5),
        priced("2 + 3 = 5.", p=181, c=6, cost=0.00187, energy=0.75),
    ], latency=0.01)
    result = Agent(name, llm=llm, tools=[add]).run(task, kernel=kernel)
    assert result.ok, result.error
    return result.run_id


def two_agents_one_slot(kernel: Kernel, latency: float = 0.1) -> str:
    """One run where a planner and a writer share an LLM pool of one slot: one of them waits for
    the other's completion each turn. Returns the run's id."""
    import asyncio

    kernel.configure_pool("llm:scripted", max_concurrency=1)

    def brain() -> ScriptedLLM:
        return ScriptedLLM([
            priced(None, call("add", a=1, b=2), p=100, c=8, cost=0.001, energy=0.5),
            priced("3", p=120, c=2, cost=0.0012, energy=0.25),
        ], latency=latency)

    async def both() -> str:
        run = kernel.start_run("pair", "plan and write")
        results = await asyncio.gather(
            Agent("planner", llm=brain(), tools=[add]).arun("1+2?", kernel=kernel, run=run),
            Agent("writer", llm=brain(), tools=[add]).arun("1+2?", kernel=kernel, run=run),
        )
        assert all(r.ok for r in results), [r.error for r in results]
        kernel.end_run(run, "succeeded", "3")
        return run.id

    return asyncio.run(both())


def expected_totals(store: RunStore, run_id: str) -> dict[str, Any]:
    """What the dashboard must show for a run, summed from ``store.syscalls``."""
    records = [asdict(r) for r in store.syscalls(run_id)]
    totals: dict[str, Any] = {
        "syscalls": len(records),
        "tokens": sum(r["prompt_tokens"] + r["completion_tokens"] for r in records),
        "queue_wait_s": sum(r["queue_wait_s"] for r in records),
        "service_s": sum(r["service_s"] for r in records),
    }
    for column in metric_columns(store):
        if records and column not in records[0]:  # a column SyscallRecord does not carry
            totals[column] = store.execute(
                f'SELECT TOTAL("{column}") FROM syscalls WHERE run_id=?', (run_id,))[0][0]
        else:
            totals[column] = sum(r[column] or 0 for r in records)
    return totals
