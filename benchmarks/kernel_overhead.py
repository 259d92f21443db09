"""How much the agentos kernel costs per syscall, and how well it packs work into a pool.

Measures, in one run:
1. per-syscall kernel overhead: an LLM syscall through the kernel (budget checks, scheduler,
   run-store commit) minus a direct call of the same zero-latency scripted LLM (target < 100 µs
   median);
2. scheduling efficiency: 8 agents × 20 LLM calls against a fake provider with 50 ms latency
   and concurrency 4; ideal makespan 8·20·0.05/4 = 2.0 s (target within 5 %);
3. for comparison, the per-step orchestration overhead of LangGraph (one graph node) and CrewAI
   (one task) calling the same zero-latency LLM;
4. like for like, one agent step (one LLM turn that asks for a tool, plus that tool call) through
   ``agentos.Agent`` (``max_steps=1``, a new run each time), a one-node LangGraph graph and a
   one-task CrewAI crew (the tool's result is the answer), each minus the same LLM call and tool
   call made directly (each interleaved with its direct calls), all in one run;
5. scale: per-syscall cost with 1, 100, 1,000 and 10,000 concurrent agents (each LLM call yields
   to the event loop once, so the agents really interleave), on a pool with a slot per agent (no
   queue) and on a 4-slot fair-share pool (the other agents queue);
6. workers: the scheduling-efficiency run of 2. with its LLM calls sent to 1, 2 and 4
   ``agentos worker`` processes over a redis-server started here (concurrency 4 held globally
   through Redis, so the ideal stays 2.0 s), and ``--workers-agents`` agents (default 10,000)
   making one zero-latency LLM call each, spread over 4 workers.

Prints tables and writes benchmarks/results/kernel_overhead.json.

    python benchmarks/kernel_overhead.py [--calls 2000] [--quick] [--skip-frameworks]
        [--workers 1 2 4] [--workers-agents 10000] [--only-workers]
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

from agentos import Agent, Kernel, load_settings, tool
from agentos.runtime.llm.types import Completion, ToolCall
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


TEXT = "the quick brown fox jumps over the lazy dog"
STEP_TASK = f"Count the words in '{TEXT}'."


def count_words(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text to count.
    """
    return len(text.split())


class ToolCallLLM(ScriptedLLM):
    """Asks for ``count_words`` instantly, forever (one LLM turn of an agent step)."""

    def __init__(self) -> None:
        super().__init__([], name="tool-caller")

    async def complete(self, messages, tools=None, **params):  # type: ignore[no-untyped-def]
        call = ToolCall("call_0", "count_words", {"text": TEXT})
        return Completion(None, [call], 20, 8, model=self.name, finish_reason="tool_calls")


class YieldLLM(ScriptedLLM):
    """Answers after yielding to the event loop once, so concurrent agents interleave."""

    def __init__(self) -> None:
        super().__init__([], name="yield")

    async def complete(self, messages, tools=None, **params):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return Completion("hi", [], 3, 1, model=self.name)


FAKE_50MS = ScriptedLLM([], name="bench/fake-50ms")
"""What the benchmark's workers serve as model ``bench/fake-50ms``: "ok" after 50 ms."""


async def _fake_complete(messages, tools=None, **params):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0.05)
    return Completion("ok", [], 3, 1, model="bench/fake-50ms")


FAKE_50MS.complete = _fake_complete  # type: ignore[method-assign]
ZERO = ZeroLLM()
ZERO.name = "bench/zero"


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


def _interleaved(direct, framework, warmup: int, calls: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median of ``framework()`` minus median of ``direct()``, run alternately (sync callables)."""
    for _ in range(warmup):
        direct()
        framework()
    d, f = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        direct()
        t1 = time.perf_counter()
        framework()
        t2 = time.perf_counter()
        d.append(t1 - t0)
        f.append(t2 - t1)
    return {"direct_median_us": _median_us(d), "framework_median_us": _median_us(f),
            "overhead_median_us": _median_us(f) - _median_us(d), "calls": calls}


def agent_step_agentos(calls: int, data_dir: str) -> dict[str, float]:
    """One ``Agent.arun`` with ``max_steps=1``: one LLM turn, one tool call, a new run."""
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": data_dir}))
    llm = ToolCallLLM()
    counter = tool(count_words)
    agent = Agent("counter", llm=llm, tools=[counter], max_steps=1)
    specs = [counter.spec()]
    messages = [{"role": "user", "content": STEP_TASK}]
    loop = asyncio.new_event_loop()

    async def direct() -> None:
        out = await llm.complete(messages, specs)
        count_words(**out.tool_calls[0].arguments)

    async def framework() -> None:
        result = await agent.arun(STEP_TASK, kernel=kernel)
        assert result.status == "max_steps" and result.steps[0].tool_calls[0].output == "9"

    try:
        return _interleaved(lambda: loop.run_until_complete(direct()),
                            lambda: loop.run_until_complete(framework()),
                            warmup=50, calls=calls)
    finally:
        loop.close()
        kernel.close()


def agent_step_langgraph(calls: int) -> dict[str, float]:
    """One ``ainvoke`` of a one-node graph whose node makes the LLM call and the tool call."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    llm = ToolCallLLM()
    messages = [{"role": "user", "content": STEP_TASK}]

    class State(TypedDict):
        count: int

    async def node(state: State) -> State:
        out = await llm.complete(messages)
        return {"count": count_words(**out.tool_calls[0].arguments)}

    graph = StateGraph(State)
    graph.add_node("step", node)
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    app = graph.compile()
    loop = asyncio.new_event_loop()

    async def direct() -> None:
        out = await llm.complete(messages)
        count_words(**out.tool_calls[0].arguments)

    async def framework() -> None:
        assert (await app.ainvoke({"count": 0}))["count"] == 9

    try:
        return _interleaved(lambda: loop.run_until_complete(direct()),
                            lambda: loop.run_until_complete(framework()),
                            warmup=50, calls=calls)
    finally:
        loop.close()


def agent_step_crewai(calls: int) -> dict[str, float]:
    """One ``kickoff`` of a one-task crew: the LLM asks for the tool, whose result is the answer."""
    import logging

    from crewai import Agent as CrewAgent
    from crewai import BaseLLM, Crew, Task
    from crewai.tools import tool as crew_tool

    reply = ('Thought: I should count the words.\nAction: count_words\n'
             f'Action Input: {{"text": "{TEXT}"}}')

    work = {"llm": 0, "tool": 0}  # what the crew really ran, checked after the loop

    class ToolCaller(BaseLLM):
        def call(self, messages, tools=None, callbacks=None, available_functions=None,  # type: ignore[no-untyped-def]
                 from_task=None, from_agent=None, response_model=None):
            work["llm"] += 1
            return reply

        def supports_function_calling(self) -> bool:
            return False

    logging.disable(logging.WARNING)  # crewai warns on every call that the LLM has no tokenizer
    llm = ToolCaller(model="tool-caller")
    def counted(text: str) -> int:
        """Count the words in a text."""
        work["tool"] += 1
        return count_words(text)

    counter = crew_tool("count_words", result_as_answer=True)(counted)
    agent = CrewAgent(role="counter", goal="count words", backstory="-", llm=llm, tools=[counter],
                      verbose=False)
    task = Task(description=STEP_TASK, expected_output="a number", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], verbose=False)
    messages = [{"role": "user", "content": STEP_TASK}]

    def direct() -> None:
        text = llm.call(messages)
        arguments = json.loads(text.split("Action Input:", 1)[1])
        count_words(**arguments)

    def framework() -> None:
        # The answer is the tool's result (crewai appends its tool reminder to repeated uses).
        out = crew.kickoff().raw
        assert out.split()[0] == "9", out

    result = _interleaved(direct, framework, warmup=3, calls=calls)
    kickoffs = 3 + calls
    # One LLM call and one tool call per kickoff (the direct calls made the other LLM calls).
    assert work == {"llm": 2 * kickoffs, "tool": kickoffs}, work
    return result


def scale(data_dir: str, agents: int, calls_per_agent: int, slots: int) -> dict[str, float]:
    """``agents`` concurrent agents, each making ``calls_per_agent`` LLM syscalls, on one pool."""
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": data_dir}))
    llm = YieldLLM()
    kernel.scheduler.configure("llm:yield", PoolConfig(max_concurrency=slots, policy="fair_share"))

    async def agent_loop(run, name: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(calls_per_agent):
            await kernel.llm(run, name, llm, MESSAGES)

    async def direct_calls(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await llm.complete(MESSAGES)
        return (time.perf_counter() - t0) / n

    async def main() -> tuple[float, float]:
        direct = await direct_calls(2000)
        run = kernel.start_run("scale")
        t0 = time.perf_counter()
        await asyncio.gather(*(agent_loop(run, f"agent{i}") for i in range(agents)))
        wall = time.perf_counter() - t0
        kernel.end_run(run, "succeeded")
        return wall, direct

    wall, direct = asyncio.run(main())
    rows = kernel.store.syscalls(kernel.store.list_runs(1)[0].id)
    kernel.close()
    total = agents * calls_per_agent
    assert len(rows) == total and all(r.outcome == "ok" for r in rows)
    return {"agents": agents, "calls_per_agent": calls_per_agent, "slots": slots,
            "syscalls": total, "wall_s": wall, "direct_us": direct * 1e6,
            "per_syscall_us": wall / total * 1e6, "overhead_us": (wall / total - direct) * 1e6}


def _start_workers(url: str, n: int, tmp: str, concurrency: int, held: int) -> list:  # type: ignore[type-arg]
    import subprocess
    import sys

    import redis

    env = {**os.environ, "AGENTOS_DATA_DIR": tmp, "AGENTOS_MAX_CONCURRENCY": str(concurrency),
           "AGENTOS_POLICY": "fair_share"}
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "agentos", "worker", "--url", url, "--kind", "llm",
         "--concurrency", str(held), "--llm", "bench/fake-50ms=benchmarks.kernel_overhead:FAKE_50MS",
         "--llm", "bench/zero=benchmarks.kernel_overhead:ZERO"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
    r = redis.Redis.from_url(url)
    while r.hlen("agentos:workers") < n:
        assert all(p.poll() is None for p in procs), "a worker exited at start"
        time.sleep(0.05)
    r.close()
    return procs


def _stop_workers(procs: list) -> None:  # type: ignore[type-arg]
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def worker_rows(counts: list[int], agents_10k: int) -> dict[str, object]:
    """Scheduling efficiency over 1, 2, 4 worker processes, and many agents over 4 workers."""
    import sys

    import redis

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.services import RedisServer

    out: dict[str, object] = {"efficiency": [], "many_agents": None}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            for db, n in enumerate(counts, start=1):
                url = server.url.rpartition("/")[0] + f"/{db}"
                procs = _start_workers(url, n, tmp, concurrency=4, held=8)
                try:
                    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": f"{tmp}/k{n}",
                                                       "AGENTOS_WORKERS_URL": url,
                                                       "AGENTOS_POLICY": "fair_share"}))
                    kernel.configure_pool("llm:bench/fake-50ms", max_concurrency=16,
                                          policy="fair_share")  # the workers hold the limit

                    async def agent_loop(run, name: str) -> None:  # type: ignore[no-untyped-def]
                        for _ in range(20):
                            await kernel.llm(run, name, "bench/fake-50ms", MESSAGES)

                    async def go() -> float:
                        run = kernel.start_run("makespan")
                        await kernel.llm(run, "warm", "bench/fake-50ms", MESSAGES)
                        t0 = time.perf_counter()
                        await asyncio.gather(*(agent_loop(run, f"agent{i}") for i in range(8)))
                        elapsed = time.perf_counter() - t0
                        kernel.end_run(run, "succeeded")
                        await kernel.aclose()
                        return elapsed

                    makespan = asyncio.run(go())
                finally:
                    _stop_workers(procs)
                out["efficiency"].append({  # type: ignore[union-attr]
                    "workers": n, "agents": 8, "calls_per_agent": 20, "latency_s": 0.05,
                    "concurrency": 4, "ideal_s": 2.0, "makespan_s": makespan,
                    "over_ideal_pct": 100 * (makespan / 2.0 - 1)})
            if agents_10k:
                url = server.url.rpartition("/")[0] + "/9"
                procs = _start_workers(url, 4, tmp, concurrency=1024, held=256)
                try:
                    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": f"{tmp}/many",
                                                       "AGENTOS_WORKERS_URL": url}))
                    kernel.configure_pool("llm:bench/zero", max_concurrency=512)

                    async def many() -> float:
                        run = kernel.start_run("many")
                        await kernel.llm(run, "warm", "bench/zero", MESSAGES)
                        t0 = time.perf_counter()
                        await asyncio.gather(*(kernel.llm(run, f"agent{i}", "bench/zero", MESSAGES)
                                               for i in range(agents_10k)))
                        elapsed = time.perf_counter() - t0
                        kernel.end_run(run, "succeeded")
                        await kernel.aclose()
                        return elapsed

                    wall = asyncio.run(many())
                    time.sleep(1.5)  # the workers' heartbeats (every second) catch up
                    done = sum(int(__import__("json").loads(b)["done"]) for b in
                               redis.Redis.from_url(url).hvals("agentos:workers"))
                finally:
                    _stop_workers(procs)
                out["many_agents"] = {"agents": agents_10k, "workers": 4, "wall_s": wall,
                                      "per_syscall_us": wall / agents_10k * 1e6,
                                      "syscalls_per_s": agents_10k / wall,
                                      "done_by_workers": done}  # 1 more: the warm-up call
        finally:
            server.stop()
    return out


def print_worker_rows(console: Console, rows: dict[str, object]) -> None:
    table = Table(title="syscalls run by agentos worker processes over Redis")
    for col in ("run", "workers", "ideal s", "makespan / wall s", "vs ideal / per syscall"):
        table.add_column(col, justify="right")
    for r in rows["efficiency"]:  # type: ignore[union-attr]
        table.add_row("8 agents × 20 calls, 50 ms, global concurrency 4", str(r["workers"]),
                      f"{r['ideal_s']:.3f}", f"{r['makespan_s']:.3f}",
                      f"[bold]{r['over_ideal_pct']:+.1f} %")
    many = rows.get("many_agents")
    if many:
        table.add_row(f"{many['agents']:,} agents × 1 zero-latency call", str(many["workers"]),  # type: ignore[index]
                      "", f"{many['wall_s']:.2f}", f"{many['per_syscall_us']:.0f} µs")  # type: ignore[index]
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--skip-frameworks", action="store_true", help="skip LangGraph and CrewAI")
    parser.add_argument("--scale", type=int, nargs="*", default=[1, 100, 1000, 10000],
                        help="concurrent agents for the scale table (none: skip it)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4],
                        help="worker process counts for the workers rows (none: skip them)")
    parser.add_argument("--workers-agents", type=int, default=10_000,
                        help="agents of the many-agents row over 4 workers (0: skip it)")
    parser.add_argument("--only-workers", action="store_true",
                        help="run only the workers rows; merge them into the existing JSON")
    args = parser.parse_args()
    if args.only_workers:
        rows = worker_rows(args.workers, args.workers_agents)
        print_worker_rows(Console(width=120), rows)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous["workers"] = rows | {"loadavg_at_end": os.getloadavg()}
        RESULTS.write_text(json.dumps(previous, indent=2))
        print(f"wrote {RESULTS}")
        return
    calls = 300 if args.quick else args.calls
    console = Console(width=120)
    results: dict[str, object] = {"machine": platform.platform(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("per-syscall overhead…"):
            results["syscall"] = syscall_overhead(calls, tmp + "/a")
        with console.status("scheduling efficiency (8 agents × 20 calls, 50 ms, concurrency 4)…"):
            results["scheduling"] = scheduling_efficiency(tmp + "/b")
        with console.status("one agent step through agentos.Agent…"):
            steps: dict[str, object] = {"agentos": agent_step_agentos(min(calls, 1000), tmp + "/c")}
        scale_rows = []
        if args.scale:
            scale(tmp + "/warm", 10, 200, 10)  # warm-up: the first run pays for imports and caches
        for n in args.scale:
            for slots in (n,) if n <= 4 else (n, 4):
                per_agent = max(1, 2000 // n)
                with console.status(f"scale: {n} agents × {per_agent} calls, {slots} slots…"):
                    scale_rows.append(scale(f"{tmp}/s{n}_{slots}", n, per_agent, slots))
        results["scale"] = scale_rows
    if not args.skip_frameworks:
        with console.status("LangGraph one-node step…"):
            results["langgraph"] = langgraph_step(min(calls, 500))
        with console.status("CrewAI one-task kickoff…"):
            try:
                results["crewai"] = crewai_task(min(calls // 10, 50))
            except ImportError as error:
                results["crewai"] = {"error": f"crewai not installed ({error})"}
        with console.status("one agent step as a LangGraph node…"):
            steps["langgraph"] = agent_step_langgraph(min(calls, 1000))
        with console.status("one agent step as a CrewAI task…"):
            try:
                steps["crewai"] = agent_step_crewai(min(calls // 10, 50))
            except ImportError as error:
                steps["crewai"] = {"error": f"crewai not installed ({error})"}
    results["agent_step"] = steps
    if args.workers:
        with console.status("workers over Redis…"):
            results["workers"] = worker_rows(args.workers, args.workers_agents)
    results["loadavg_at_end"] = os.getloadavg()

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

    step = Table(title="one agent step (one LLM turn asking for a tool + the tool call), "
                       "minus the same calls made directly")
    for col in ("framework", "unit", "direct calls", "through the framework", "overhead", "runs"):
        step.add_column(col, justify="left" if col in ("framework", "unit") else "right")
    units = {"agentos": "Agent.arun, max_steps=1 (a new run)",
             "langgraph": "one-node graph ainvoke", "crewai": "one-task crew kickoff"}
    for name, r in steps.items():  # type: ignore[union-attr]
        if "error" in r:
            step.add_row(name, units[name], r["error"], "", "", "")
            continue
        step.add_row(name, units[name], f"{r['direct_median_us']:.1f} µs",
                     f"{r['framework_median_us']:.1f} µs",
                     f"[bold]{r['overhead_median_us']:.1f} µs", str(r["calls"]))
    console.print(step)

    if results["scale"]:
        sc = Table(title="per-syscall cost with many concurrent agents (wall time ÷ syscalls; "
                         "fair share; each LLM call yields once)")
        for col in ("agents", "calls each", "pool slots", "syscalls", "wall s",
                    "per syscall", "minus direct call"):
            sc.add_column(col, justify="right")
        for r in results["scale"]:  # type: ignore[union-attr]
            slots = "1 per agent" if r["slots"] == r["agents"] else str(r["slots"])
            sc.add_row(f"{r['agents']:,}", str(r["calls_per_agent"]), slots, f"{r['syscalls']:,}",
                       f"{r['wall_s']:.2f}", f"{r['per_syscall_us']:.1f} µs",
                       f"[bold]{r['overhead_us']:.1f} µs")
        console.print(sc)
    if "workers" in results:
        print_worker_rows(console, results["workers"])  # type: ignore[arg-type]
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / "
                  f"{os.getloadavg()[2]:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
