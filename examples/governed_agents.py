"""Four agents share one model under the kernel: weighted fair share, a rate limit and a budget.

Each agent works on the same three questions at once, so every agent keeps calls waiting for the
model. The model's pool has 2 slots, a requests-per-minute limit and the weighted-fair-share
policy: while the agents compete, each is served LLM tokens in proportion to its weight (the
analyst, weight 2, about twice as many as each weight-1 agent). The intern has a token budget and
stops cleanly when it is spent. Every syscall lands in the run store, and the script reads the
shares and the busiest minute of requests back from it.

    python examples/governed_agents.py [--rpm 12]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agentos import Agent, Budget, Kernel
from agentos.runtime.scheduler import PoolConfig
from agentos.runtime.store import SyscallRecord

#: name and fair-share weight; the intern also gets a token budget (``intern_tokens``)
AGENTS: list[tuple[str, float]] = [("analyst", 2.0), ("reviewer", 1.0), ("writer", 1.0),
                                   ("intern", 1.0)]
BUDGETED = "intern"
QUESTIONS = [
    "What is 1234 * 5678? Use the calculator.",
    "What is 2**20 - 3**12? Use the calculator.",
    "What is 98765 / 5? Use the calculator.",
]
SLOTS = 2


@dataclass(frozen=True)
class Report:
    """What the crew did, read back from the run store.

    Attributes:
        run_id: the run; ``agentos runs show RUN_ID`` lists its syscalls.
        statuses: per agent, the status of each of its tasks (in ``QUESTIONS`` order).
        weights: per agent, its fair-share weight.
        contended_share: per agent without a budget, its share of the LLM tokens served while all
            of them had calls queued (see :func:`contended_share`).
        rpm: the pool's requests-per-minute limit.
        busiest_minute: the most LLM requests dispatched within any 60 seconds.
        dispatches: every LLM dispatch as (seconds since the first one, agent), in order.
    """

    run_id: str
    statuses: dict[str, list[str]]
    weights: dict[str, float]
    contended_share: dict[str, float]
    rpm: float
    busiest_minute: int
    dispatches: list[tuple[float, str]]


def llm_calls(records: list[SyscallRecord]) -> list[tuple[float, float, str, int]]:
    """(dispatched, submitted, agent, prompt tokens) of each LLM syscall that ran, by dispatch.

    A syscall was dispatched when it left the queue: submitted plus its queue wait.
    """
    rows = [
        (r.submitted_at + r.queue_wait_s, r.submitted_at, r.agent, r.prompt_tokens)
        for r in records
        if r.kind == "llm" and r.outcome == "ok"
    ]
    return sorted(rows)


def contended_share(rows: list[tuple[float, float, str, int]], agents: list[str]) -> dict[str, float]:
    """Each agent's share of the prompt tokens dispatched while all of ``agents`` had calls queued.

    The contended time ends when the first of them queues its last LLM call; the fair-share
    policy charges each call its estimated tokens, so tokens are what it shares out.
    """
    end = min(max(sub for _, sub, who, _ in rows if who == a) for a in agents)
    served = Counter({a: 0 for a in agents})
    for dispatched, _, who, tokens in rows:
        if dispatched < end and who in served:
            served[who] += tokens
    total = sum(served.values()) or 1
    return {a: served[a] / total for a in agents}


def busiest_minute(times: list[float]) -> int:
    """The most of ``times`` (seconds, sorted) that fall within any 60-second window."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > 60.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def crew(
    llm: Any = None, kernel: Kernel | None = None, *, rpm: float = 12.0, intern_tokens: int = 1000
) -> Report:
    """Run the four agents on ``QUESTIONS`` at once in one run; report from the run store.

    Args:
        llm: a model string or LLM object; defaults to the configured model.
        kernel: defaults to a kernel with the configured settings.
        rpm: the model pool's requests-per-minute limit.
        intern_tokens: the intern's token budget for the run (all its tasks together).
    """
    kernel = kernel or Kernel()
    model = llm if llm is not None else kernel.settings.model
    name = model if isinstance(model, str) else model.name
    # (A local model's pool always has its engine's decoding slots, 2 unless loaded otherwise.)
    kernel.scheduler.configure(
        f"llm:{name}", PoolConfig(max_concurrency=SLOTS, policy="fair_share", rpm=rpm)
    )
    run = kernel.start_run("governed-crew")
    agents = [
        Agent(n, llm=model, weight=w, tools=["calculator"], max_steps=4,
              budget=Budget(tokens=intern_tokens) if n == BUDGETED else None)
        for n, w in AGENTS
    ]
    results = await asyncio.gather(
        *(a.arun(q, kernel=kernel, run=run) for a in agents for q in QUESTIONS)
    )
    kernel.end_run(run, "succeeded")
    per_agent = len(QUESTIONS)
    statuses = {
        a.name: [r.status for r in results[i * per_agent:(i + 1) * per_agent]]
        for i, a in enumerate(agents)
    }
    rows = llm_calls(kernel.store.syscalls(run.id))
    unbudgeted = [n for n, _ in AGENTS if n != BUDGETED]
    t0 = rows[0][0] if rows else 0.0
    return Report(
        run_id=run.id,
        statuses=statuses,
        weights=dict(AGENTS),
        contended_share=contended_share(rows, unbudgeted),
        rpm=rpm,
        busiest_minute=busiest_minute([t for t, _, _, _ in rows]),
        dispatches=[(t - t0, who) for t, _, who, _ in rows],
    )


def show(report: Report) -> None:
    """Print one line per agent, then the rate limit against the busiest minute."""
    weights = {a: report.weights[a] for a in report.contended_share}
    total = sum(weights.values())
    for agent, statuses in report.statuses.items():
        counts = ", ".join(f"{n} {s}" for s, n in Counter(statuses).items())
        share = report.contended_share.get(agent)
        fair = (
            f"  {100 * share:4.1f} % of LLM tokens while contended "
            f"(fair share {100 * weights[agent] / total:4.1f} %)"
            if share is not None else "  (token budget; not in the fair-share comparison)"
        )
        print(f"{agent:9s} weight {report.weights[agent]:g}  {counts:30s}{fair}")
    span = report.dispatches[-1][0] if report.dispatches else 0.0
    print(f"rate limit {report.rpm:g} requests/min (a burst of {report.rpm:g}, then "
          f"{report.rpm / 60:g}/s): {len(report.dispatches)} LLM requests in {span:.1f} s, "
          f"at most {report.busiest_minute} in any 60 s")
    print(f"run {report.run_id}: `agentos runs show {report.run_id}` lists every syscall "
          "with its queue wait")


def main(
    llm: Any = None, kernel: Kernel | None = None, *, rpm: float = 12.0, intern_tokens: int = 1000
) -> Report:
    """Run :func:`crew` and print what it did; arguments as for :func:`crew`."""
    report = asyncio.run(crew(llm, kernel, rpm=rpm, intern_tokens=intern_tokens))
    show(report)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=12.0, help="LLM requests per minute")
    main(rpm=parser.parse_args().rpm)
