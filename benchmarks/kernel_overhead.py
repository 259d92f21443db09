"""How much the agentos kernel costs per syscall, and how well it packs work into a pool.

Measures, in one run:
1. per-syscall kernel overhead: an LLM syscall through the kernel (budget checks, scheduler,
   run-store commit) minus a direct call of the same zero-latency scripted LLM (target < 100 µs
   median);
2. scheduling efficiency: 8 agents × 20 LLM calls against a fake provider with 50 ms latency
   and concurrency 4; ideal makespan 8·20·0.05/4 = 2.0 s (target within 5 %);
3. for comparison, the per-step orchestration overhead of LangGraph (one graph node) and CrewAI
   (one task) calling the same zero-latency LLM.

Prints a table and writes benchmarks/results/kernel_overhead.json.

    python benchmarks/kernel_overhead.py [--calls 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_DISABLE_TRACKING", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console
from rich.table import Table

from agentos import Kernel, load_settings
from agentos.runtime.scheduler import PoolConfig
from agentos.testing import ScriptedLLM

RESULTS = Path(__file__).parent / "results" / "kernel_overhead.json"
MESSAGES = [{"role": "user", "content": "Say hi."}]


class ZeroLLM(ScriptedLLM):
    """Answers instantly, forever."""

    def __init__(self) -> None:
        super().__init__(["hi"], name="zero")

    async def complete(self, messages, tools=None, **params):  # type: ignore[no-untyped-def]
        from agentos.runtime.llm.types import Completion

        return Completion("hi", [], 3, 1, model=self.name)


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def syscall_overhead(calls: int, data_dir: str) -> dict[str, float]:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": data_dir}))
    llm = ZeroLLM()

    async def main() -> tuple[list[float], list[float]]:
        run = kernel.start_run("bench")
        direct, through = [], []
        for _ in range(200):  # warm up both paths
            await llm.complete(MESSAGES)
            await kernel.llm(run, "a", llm, MESSAGES)
        for _ in range(calls):
            t0 = time.perf_counter()
            await llm.complete(MESSAGES)
            t1 = time.perf_counter()
            await kernel.llm(run, "a", llm, MESSAGES)
            t2 = time.perf_counter()
            direct.append(t1 - t0)
            through.append(t2 - t1)
        kernel.end_run(run, "succeeded")
        return direct, through

    direct, through = asyncio.run(main())
    kernel.close()
    return {
        "direct_median_us": _median_us(direct),
        "kernel_median_us": _median_us(through),
        "overhead_median_us": _median_us(through) - _median_us(direct),
        "kernel_p90_us": statistics.quantiles(through, n=10)[-1] * 1e6,
        "calls": calls,
    }


def scheduling_efficiency(data_dir: str, agents: int = 8, calls: int = 20, latency: float = 0.05,
                          concurrency: int = 4) -> dict[str, float]:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": data_dir, "AGENTOS_POLICY": "fair_share"}))
    llm = ScriptedLLM(["ok"] * (agents * calls), latency=latency, name="fake-50ms")
    kernel.scheduler.configure("llm:fake-50ms", PoolConfig(max_concurrency=concurrency,
                                                           policy="fair_share"))

    async def agent_loop(run, name: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(calls):
            await kernel.llm(run, name, llm, MESSAGES)

    async def main() -> float:
        run = kernel.start_run("makespan")
        t0 = time.perf_counter()
        await asyncio.gather(*(agent_loop(run, f"agent{i}") for i in range(agents)))
        elapsed = time.perf_counter() - t0
        kernel.end_run(run, "succeeded")
        return elapsed

    makespan = asyncio.run(main())
    kernel.close()
    ideal = agents * calls * latency / concurrency
    return {"agents": agents, "calls_per_agent": calls, "latency_s": latency,
            "concurrency": concurrency, "ideal_s": ideal, "makespan_s": makespan,
            "over_ideal_pct": 100 * (makespan / ideal - 1)}


def langgraph_step(calls: int) -> dict[str, float]:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    llm = ZeroLLM()

    class State(TypedDict):
        reply: str

    async def node(state: State) -> State:
        out = await llm.complete(MESSAGES)
        return {"reply": out.content or ""}

    graph = StateGraph(State)
    graph.add_node("llm", node)
    graph.add_edge(START, "llm")
    graph.add_edge("llm", END)
    app = graph.compile()

    async def main() -> tuple[list[float], list[float]]:
        direct, through = [], []
        for _ in range(50):
            await app.ainvoke({"reply": ""})
        for _ in range(calls):
            t0 = time.perf_counter()
            await llm.complete(MESSAGES)
            t1 = time.perf_counter()
            await app.ainvoke({"reply": ""})
            t2 = time.perf_counter()
            direct.append(t1 - t0)
            through.append(t2 - t1)
        return direct, through

    direct, through = asyncio.run(main())
    return {"overhead_median_us": _median_us(through) - _median_us(direct), "calls": calls}


def crewai_task(calls: int) -> dict[str, float]:
    from crewai import Agent as CrewAgent
    from crewai import BaseLLM, Crew, Task

    class Zero(BaseLLM):
        def call(self, messages, tools=None, callbacks=None, available_functions=None,  # type: ignore[no-untyped-def]
                 from_task=None, from_agent=None, response_model=None):
            return "Final Answer: hi"

        def supports_function_calling(self) -> bool:
            return False

    import logging

    logging.disable(logging.WARNING)  # crewai warns on every call that "zero" has no tokenizer
    llm = Zero(model="zero")
    agent = CrewAgent(role="greeter", goal="say hi", backstory="-", llm=llm, verbose=False)
    task = Task(description="Say hi.", expected_output="hi", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], verbose=False)
    for _ in range(3):
        crew.kickoff()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        crew.kickoff()
        samples.append(time.perf_counter() - t0)
    return {"overhead_median_us": _median_us(samples), "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--skip-frameworks", action="store_true", help="skip LangGraph and CrewAI")
    args = parser.parse_args()
    calls = 300 if args.quick else args.calls
    console = Console()
    results: dict[str, object] = {"machine": platform.platform(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("per-syscall overhead…"):
            results["syscall"] = syscall_overhead(calls, tmp + "/a")
        with console.status("scheduling efficiency (8 agents × 20 calls, 50 ms, concurrency 4)…"):
            results["scheduling"] = scheduling_efficiency(tmp + "/b")
    if not args.skip_frameworks:
        with console.status("LangGraph one-node step…"):
            results["langgraph"] = langgraph_step(min(calls, 500))
        with console.status("CrewAI one-task kickoff…"):
            try:
                results["crewai"] = crewai_task(min(calls // 10, 50))
            except ImportError as error:
                results["crewai"] = {"error": f"crewai not installed ({error})"}

    s, m = results["syscall"], results["scheduling"]  # type: ignore[assignment]
    table = Table(title="agentos kernel overhead", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("direct zero-latency LLM call (median)", f"{s['direct_median_us']:.1f} µs", "")
    table.add_row("same call as a kernel syscall (median)", f"{s['kernel_median_us']:.1f} µs", "")
    table.add_row("[bold]kernel overhead per syscall (median)", f"[bold]{s['overhead_median_us']:.1f} µs",
                  "< 100 µs")
    table.add_row("kernel syscall p90", f"{s['kernel_p90_us']:.1f} µs", "")
    table.add_row("8 agents × 20 calls, 50 ms, conc 4: ideal", f"{m['ideal_s']:.3f} s", "")
    table.add_row("[bold]… makespan", f"[bold]{m['makespan_s']:.3f} s ({m['over_ideal_pct']:+.1f} %)",
                  "within 5 %")
    for name in ("langgraph", "crewai"):
        if name in results:
            r = results[name]  # type: ignore[assignment]
            label = "LangGraph one-node step overhead (median)" if name == "langgraph" else \
                "CrewAI one-task kickoff (median, LLM is instant)"
            value = f"{r['overhead_median_us']:.1f} µs" if "overhead_median_us" in r else r["error"]
            table.add_row(label, value, "")
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
