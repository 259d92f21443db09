"""Several agents share one model under the kernel: fair share, a rate limit and budgets.

Four agents with different weights compete for a model pool with 2 slots. The kernel's
weighted-fair-share policy serves them in proportion to weight; one agent has a token budget and
stops cleanly when it is spent. Every syscall lands in the run store.

    python examples/governed_agents.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentos import Agent, Budget, Kernel
from agentos.runtime.scheduler import PoolConfig


async def crew(llm: Any = None, kernel: Kernel | None = None) -> dict[str, str]:
    kernel = kernel or Kernel()
    model = llm if llm is not None else kernel.settings.model
    name = model if isinstance(model, str) else model.name
    kernel.scheduler.configure(f"llm:{name}", PoolConfig(max_concurrency=2, policy="fair_share"))
    run = kernel.start_run("governed-crew")
    agents = [
        Agent("analyst", llm=model, weight=3.0, tools=["calculator"], max_steps=4),
        Agent("writer", llm=model, weight=1.0, max_steps=2),
        Agent("intern", llm=model, weight=1.0, budget=Budget(tokens=1), max_steps=2),
    ]
    tasks = [
        "What is 1234 * 5678? Use the calculator.",
        "Write one sentence about operating systems.",
        "Write a poem.",
    ]
    results = await asyncio.gather(
        *(a.arun(t, kernel=kernel, run=run) for a, t in zip(agents, tasks))
    )
    kernel.end_run(run, "succeeded")
    for agent, result in zip(agents, results):
        print(f"{agent.name:8s} {result.status:16s} {result.answer!r}")
    print(f"run {run.id}: `agentos runs show {run.id}` lists every syscall with its queue wait")
    return {a.name: r.status for a, r in zip(agents, results)}


def main(llm: Any = None, kernel: Kernel | None = None) -> dict[str, str]:
    return asyncio.run(crew(llm, kernel))


if __name__ == "__main__":
    main()
