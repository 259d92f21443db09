"""The kernel governs and records every syscall: budgets, fallbacks, cancellation, the run store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel

from agentos import Agent, Budget, Kernel, Tool, ToolRegistry, load_settings, tool
from agentos.errors import BudgetExceeded, ProviderError
from agentos.runtime.llm.types import Completion
from agentos.testing import FunctionLLM, ScriptedLLM, call


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_MAX_RETRIES": "2"}))
    yield k
    k.close()


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(name="pid_in_process", run_in="process")
def pid_in_process(x: int) -> list[int]:
    """Twice x and the id of the process that computed it."""
    import os

    from agentos.errors import ToolRetry

    if x < 0:
        raise ToolRetry("x must be >= 0")
    return [2 * x, os.getpid()]


class PidTool(Tool):
    """A class-based tool that runs in a child process."""

    name = "pid_tool"
    description = "The id of the process that runs it, and a greeting."
    run_in = "process"

    class Args(BaseModel):
        who: str

    def run(self, who: str) -> list[object]:
        import os

        return [f"hello {who}", os.getpid()]


@tool(name="sleep_in_process", run_in="process")
def sleep_in_process(pid_file: str) -> str:
    """Write this process's id to pid_file, then sleep a minute."""
    import os
    import time

    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
    return "woke up"


def test_every_syscall_is_recorded_with_usage(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("add", a=2, b=3), "5"])
    result = Agent("calc", llm=llm, tools=[add]).run("2+3?", kernel=kernel)
    rows = kernel.store.syscalls(result.run_id)
    assert [(r.kind, r.name, r.outcome) for r in rows] == [
        ("llm", "scripted", "ok"), ("tool", "add", "ok"), ("llm", "scripted", "ok"),
    ]
    assert all(r.agent == "calc" and r.queue_wait_s >= 0 and r.service_s >= 0 for r in rows)
    assert rows[0].prompt_tokens > 0 and rows[0].completion_tokens > 0
    run = kernel.store.get_run(result.run_id)
    assert run is not None and run.status == "succeeded" and run.result == "5"
    assert run.usage["tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in rows)


def test_token_budget_ends_the_run_cleanly_with_what_it_has(kernel: Kernel) -> None:
    # Each completion here reports 400 prompt tokens; the budget allows two of them.
    def reply(messages, tools):  # type: ignore[no-untyped-def]
        return Completion(None, [call("add", a=1, b=1)], prompt_tokens=400, completion_tokens=10)

    agent = Agent("spender", llm=FunctionLLM(reply), tools=[add], budget=Budget(tokens=900))
    result = agent.run("loop forever", kernel=kernel)
    assert result.status == "budget_exceeded"
    assert "tokens" in (result.error or "")
    rows = kernel.store.syscalls(result.run_id)
    assert [r.outcome for r in rows if r.kind == "llm"] == ["ok", "ok", "budget_exceeded"]
    assert sum(1 for r in rows if r.kind == "tool" and r.outcome == "ok") == 2
    assert kernel.store.get_run(result.run_id).status == "budget_exceeded"  # type: ignore[union-attr]


def test_cost_budget(kernel: Kernel) -> None:
    def reply(messages, tools):  # type: ignore[no-untyped-def]
        return Completion(None, [call("add", a=1, b=1)], 10, 10, cost=0.004)

    result = Agent("payer", llm=FunctionLLM(reply), tools=[add], budget=Budget(cost=0.01)).run(
        "go", kernel=kernel
    )
    assert result.status == "budget_exceeded" and "cost" in (result.error or "")
    assert result.usage["cost"] == pytest.approx(0.012)


def test_wall_time_budget_bounds_a_slow_syscall(kernel: Kernel) -> None:
    llm = ScriptedLLM(["never"], latency=5.0)
    result = Agent("slow", llm=llm, budget=Budget(wall_s=0.2)).run("wait", kernel=kernel)
    # The syscall is cut at the remaining wall budget, not retried, and the run ends cleanly.
    assert result.status == "budget_exceeded" and "wall_s" in (result.error or "")
    rows = kernel.store.syscalls(result.run_id)
    assert [r.outcome for r in rows] == ["budget_exceeded"]
    assert len(llm.calls) == 1


def test_energy_budget_counts_reported_joules(kernel: Kernel) -> None:
    def reply(messages, tools):  # type: ignore[no-untyped-def]
        return Completion(None, [call("add", a=1, b=2)], 5, 5, energy_j=30.0)

    result = Agent("hot", llm=FunctionLLM(reply), tools=[add], budget=Budget(energy_j=50.0)).run(
        "go", kernel=kernel
    )
    assert result.status == "budget_exceeded" and "energy_j" in (result.error or "")
    # Two completions' reported 30 J each, plus the few millijoules metered for the add tool.
    assert result.usage["energy_j"] == pytest.approx(60.0, abs=0.5)
    llm_rows = [r for r in kernel.store.syscalls(result.run_id) if r.kind == "llm"]
    assert [r.energy_method for r in llm_rows] == ["reported by the LLM"] * 2


def test_per_agent_budget_inside_a_shared_run(kernel: Kernel) -> None:
    async def main() -> tuple[str, str]:
        run = kernel.start_run("crew")
        greedy = Agent("greedy", llm=FunctionLLM(lambda m, t: Completion(None, [call("add", a=1, b=1)], 300, 0)),
                       tools=[add], budget=Budget(tokens=500))
        modest = Agent("modest", llm=ScriptedLLM(["done"]))
        a = await greedy.arun("spend", kernel=kernel, run=run)
        b = await modest.arun("finish", kernel=kernel, run=run)
        kernel.end_run(run, "succeeded")
        return a.status, b.status

    assert asyncio.run(main()) == ("budget_exceeded", "succeeded")


def test_fallback_model_takes_over_after_transient_failures(kernel: Kernel) -> None:
    down = FunctionLLM(lambda m, t: ProviderError("503", transient=True, status=503), name="primary")
    backup = ScriptedLLM(["from backup"], name="backup")
    result = Agent("a", llm=down, fallbacks=[backup]).run("hi", kernel=kernel)
    assert result.status == "succeeded" and result.answer == "from backup"
    rows = kernel.store.syscalls(result.run_id)
    assert [(r.name, r.outcome) for r in rows] == [("primary", "error"), ("backup", "ok")]


def test_permanent_provider_error_fails_the_run_without_fallback(kernel: Kernel) -> None:
    bad = FunctionLLM(lambda m, t: ProviderError("401 invalid key", status=401), name="bad")
    backup = ScriptedLLM(["unused"], name="backup")
    result = Agent("a", llm=bad, fallbacks=[backup]).run("hi", kernel=kernel)
    assert result.status == "failed" and "401" in (result.error or "")
    assert backup.calls == []


def test_cancel_a_run_from_outside(kernel: Kernel) -> None:
    async def main() -> str:
        run = kernel.start_run("cancel-me")
        agent = Agent("sleepy", llm=ScriptedLLM(["late"], latency=5.0))
        task = asyncio.ensure_future(agent.arun("wait", kernel=kernel, run=run))
        await asyncio.sleep(0.05)
        assert kernel.cancel(run) == 1
        result = await task
        return result.status

    assert asyncio.run(main()) == "cancelled"


def test_publish_is_a_recorded_syscall(kernel: Kernel) -> None:
    async def main() -> tuple[list[dict], list[str]]:
        run = kernel.start_run("chatty")
        await kernel.publish(run, "researcher", "findings", {"text": "ring attention is exact"})
        kernel.end_run(run, "succeeded")
        return kernel.store.messages(run.id), [r.kind for r in kernel.store.syscalls(run.id)]

    messages, kinds = asyncio.run(main())
    assert messages[0]["payload"] == {"text": "ring attention is exact"}
    assert messages[0]["sender"] == "researcher"
    assert kinds == ["publish"]


def test_budget_exceeded_is_raised_to_direct_kernel_callers(kernel: Kernel) -> None:
    async def main() -> None:
        run = kernel.start_run("direct", budget=Budget(tokens=50))
        llm = ScriptedLLM(["x" * 400, "never sent"])
        messages = [{"role": "user", "content": "hi"}]
        await kernel.llm(run, "a", llm, messages)  # fits the estimate; uses ~100 tokens
        await kernel.llm(run, "a", llm, messages)  # would exceed: refused before it is sent

    with pytest.raises(BudgetExceeded):
        asyncio.run(main())


def test_concurrent_calls_cannot_all_spend_the_same_remaining_tokens(kernel: Kernel) -> None:
    """Calls in flight reserve their estimate: of three concurrent calls whose estimates each
    fit the budget alone but not two together, one runs and two are refused."""
    sent: list[int] = []

    async def slow(messages, tools):  # type: ignore[no-untyped-def]
        sent.append(1)
        await asyncio.sleep(0.05)
        return "ok"

    async def main() -> list[BaseException | Completion]:
        run = kernel.start_run("reserve", budget=Budget(tokens=500))
        llm = FunctionLLM(slow, name="slow")
        messages = [{"role": "user", "content": "hi"}]
        calls = [kernel.llm(run, f"a{i}", llm, messages, max_tokens=300) for i in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert run.usage.reserved_tokens == 0  # every reservation was released
        return results

    kernel.configure_pool("llm:slow", max_concurrency=3)
    results = asyncio.run(main())
    assert sum(isinstance(r, BudgetExceeded) for r in results) == 2
    assert len(sent) == 1


def test_kernels_share_a_redis_bus(tmp_path: Path, redis_url: str) -> None:
    """Two kernels (as two processes would) talk over Redis Streams, both ways; each records
    what it sent (a publish syscall and the message) in its own run store."""
    import uuid

    tasks, results = f"tasks-{uuid.uuid4().hex[:8]}", f"results-{uuid.uuid4().hex[:8]}"

    async def main() -> dict[str, object]:
        env = {"AGENTOS_BUS_URL": redis_url}
        planner = Kernel(load_settings(env={**env, "AGENTOS_DATA_DIR": str(tmp_path / "a")}))
        coder = Kernel(load_settings(env={**env, "AGENTOS_DATA_DIR": str(tmp_path / "b")}))
        assert planner.bus is not coder.bus  # two clients of one Redis
        plan_run, code_run = planner.start_run("plan"), coder.start_run("code")
        await coder.bus.ensure_group(tasks, "coders")
        await planner.bus.ensure_group(results, "planners")
        await planner.publish(plan_run, "planner", tasks, {"task": "write fib"})
        [task] = await coder.bus.fetch(tasks, "coders", timeout=2.0)
        await coder.bus.ack(task)
        await coder.publish(code_run, "coder", results, {"done": task.payload["task"]})
        [result] = await planner.bus.fetch(results, "planners", timeout=2.0)
        await planner.bus.ack(result)
        planner.end_run(plan_run, "succeeded")
        coder.end_run(code_run, "succeeded")
        seen = {
            "task": task.payload,
            "result": result.payload,
            "planner": [(m["topic"], m["sender"], m["payload"])
                        for m in planner.store.messages(plan_run.id)],
            "coder": [(m["topic"], m["sender"], m["payload"])
                      for m in coder.store.messages(code_run.id)],
            "planner_calls": [(r.kind, r.name, r.outcome)
                              for r in planner.store.syscalls(plan_run.id)],
            "coder_calls": [(r.kind, r.name, r.outcome) for r in coder.store.syscalls(code_run.id)],
            "stores_apart": (planner.store.get_run(code_run.id), coder.store.get_run(plan_run.id)),
        }
        await planner.aclose()
        await coder.aclose()
        return seen

    seen = asyncio.run(main())
    assert seen["task"] == {"task": "write fib"} and seen["result"] == {"done": "write fib"}
    assert seen["planner"] == [(tasks, "planner", {"task": "write fib"})]
    assert seen["coder"] == [(results, "coder", {"done": "write fib"})]
    assert seen["planner_calls"] == [("publish", tasks, "ok")]
    assert seen["coder_calls"] == [("publish", results, "ok")]
    assert seen["stores_apart"] == (None, None)  # each kernel records only its own run


def test_invalid_bus_url_is_a_config_error() -> None:
    from agentos.errors import ConfigError

    with pytest.raises(ConfigError, match="AGENTOS_BUS_URL"):
        load_settings(env={"AGENTOS_BUS_URL": "kafka://x"})


def test_rate_limit_settings_apply_to_models_not_tools(tmp_path: Path) -> None:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_RPM": "30"}))
    k.llm_for("openai/gpt-4o-mini")
    assert k.scheduler.pool_config("llm:openai/gpt-4o-mini").rpm == 30
    assert k.scheduler.pool_config("tool:calculator").rpm is None
    k.close()


def test_agent_wall_budget_counts_from_the_agents_first_syscall(kernel: Kernel) -> None:
    async def main() -> str:
        import time as _time

        run = kernel.start_run("late-joiner")
        kernel.set_agent_budget(run, "late", Budget(wall_s=0.5))
        await asyncio.sleep(0.6)  # the run is older than the agent's budget...
        result = await Agent("late", llm=ScriptedLLM(["on time"])).arun("x", kernel=kernel, run=run)
        rows = kernel.store.syscalls(run.id)
        assert abs(rows[0].submitted_at - _time.time()) < 60  # stored as wall-clock time
        kernel.end_run(run, "succeeded")
        return result.status

    assert asyncio.run(main()) == "succeeded"  # ...but its own clock started at its first call


# --- the local model's pool, tool pools, validation, timeouts ---------------------------------


class _OpenEngine:
    """Stands in for a loaded LocalEngine in the engine cache (no model is loaded)."""

    def __init__(self, name: str, n_parallel: int) -> None:
        self.name, self.n_parallel, self._closed = name, n_parallel, False
        self.path = Path(f"/nowhere/{name}.gguf")


def test_local_pool_has_the_loaded_engines_slots(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentos.runtime.llm import engine

    model = "local/qwen2.5-coder-0.5b"
    monkeypatch.setattr(engine, "_ENGINES", {Path("/nowhere/x.gguf"): _OpenEngine("qwen2.5-coder-0.5b", 5)})
    in_flight, peak = 0, 0

    async def slow(messages, tools):  # type: ignore[no-untyped-def]
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return "ok"

    class Slow(FunctionLLM):
        async def complete(self, messages, tools=None, **params):  # type: ignore[no-untyped-def]
            await slow(messages, tools)
            return Completion("ok", prompt_tokens=1, completion_tokens=1, model=self.name)

    llm = Slow(lambda m, t: "unused", name=model)

    async def main() -> None:
        run = kernel.start_run("slots")
        await asyncio.gather(*(kernel.llm(run, f"a{i}", llm, [{"role": "user", "content": "x"}])
                               for i in range(8)))
        kernel.end_run(run, "succeeded")

    asyncio.run(main())
    config = kernel.scheduler.pool_config(f"llm:{model}")
    assert config.max_concurrency == 5 and peak == 5  # the engine's n_parallel, not the default 2
    assert config.policy == kernel.settings.policy


def test_local_pool_before_the_engine_loads_uses_the_default_slots(kernel: Kernel) -> None:
    from agentos.runtime.llm.engine import EngineConfig

    llm = ScriptedLLM(["ok"], name="local/not-loaded-model")
    run = kernel.start_run("default-slots")
    asyncio.run(kernel.llm(run, "a", llm, [{"role": "user", "content": "x"}]))
    assert kernel.scheduler.pool_config("llm:local/not-loaded-model").max_concurrency == EngineConfig().n_parallel


def test_tool_concurrency_caps_its_pool_and_keeps_the_configured_policy(tmp_path: Path) -> None:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_POLICY": "priority"}))
    order: list[int] = []

    @tool(name="one_at_a_time", concurrency=1)
    async def one_at_a_time(n: int) -> int:
        """Record the call order."""
        order.append(n)
        await asyncio.sleep(0.02)
        return n

    async def main() -> None:
        run = k.start_run("pool")
        registry = ToolRegistry([one_at_a_time])
        first = asyncio.ensure_future(k.call_tool(run, "a", "one_at_a_time", {"n": 0}, registry=registry))
        await asyncio.sleep(0)  # the first call holds the only slot; the rest queue behind it
        rest = [k.call_tool(run, "a", "one_at_a_time", {"n": n}, registry=registry, priority=n)
                for n in (1, 2, 3)]
        await asyncio.gather(first, *rest)
        k.end_run(run, "succeeded")

    asyncio.run(main())
    config = k.scheduler.pool_config("tool:one_at_a_time")
    assert config.max_concurrency == 1 and config.policy == "priority"
    assert order == [0, 3, 2, 1]  # queued calls ran by priority, not first-in-first-out
    k.close()


def test_tool_arguments_are_validated_once(kernel: Kernel) -> None:
    from pydantic import field_validator

    class Tag(Tool):
        name = "tag"
        description = "Tag a word."

        class Args(BaseModel):
            word: str

            @field_validator("word")
            @classmethod
            def mark(cls, value: str) -> str:
                return value + "!"  # not idempotent: a second validation would add another

        def run(self, word: str) -> str:
            return word

    run = kernel.start_run("validate")
    result = asyncio.run(kernel.call_tool(run, "a", "tag", {"word": "hi"}, registry=ToolRegistry([Tag])))
    assert result == "hi!"


def test_a_sync_tool_that_times_out_is_recorded_as_abandoned(kernel: Kernel) -> None:
    import threading

    from agentos.errors import SyscallTimeout

    release, finished = threading.Event(), threading.Event()

    @tool(name="stuck")
    def stuck() -> str:
        """Block until released."""
        release.wait(10)
        finished.set()
        return "late"

    run = kernel.start_run("stuck")
    try:
        with pytest.raises(SyscallTimeout, match="abandoned: it may still be running"):
            # asyncio.run returns at the timeout: the abandoned thread does not hold it up
            asyncio.run(kernel.call_tool(run, "a", "stuck", {}, registry=ToolRegistry([stuck]),
                                         timeout=0.1))
        [row] = kernel.store.syscalls(run.id)
        assert row.outcome == "abandoned" and row.detail["abandoned"] is True
        assert "cannot be stopped" in (row.error or "")
        assert not finished.is_set()  # the thread was still running when the syscall gave up
    finally:
        release.set()
    assert finished.wait(5)


def test_an_async_tool_that_times_out_is_stopped_not_abandoned(kernel: Kernel) -> None:
    from agentos.errors import SyscallTimeout

    stopped = []

    @tool(name="sleeper")
    async def sleeper() -> str:
        """Sleep for a long time."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.append(True)
            raise
        return "late"

    run = kernel.start_run("sleeper")
    with pytest.raises(SyscallTimeout) as info:
        asyncio.run(kernel.call_tool(run, "a", "sleeper", {}, registry=ToolRegistry([sleeper]), timeout=0.1))
    assert "abandoned" not in str(info.value) and stopped == [True]
    [row] = kernel.store.syscalls(run.id)
    assert row.outcome == "timeout"


def test_a_process_tool_runs_in_another_process_and_its_corrections_come_back(kernel: Kernel) -> None:
    import os

    from agentos.errors import ToolRetry

    registry = ToolRegistry([pid_in_process])
    run = kernel.start_run("process")
    doubled, pid = asyncio.run(kernel.call_tool(run, "a", "pid_in_process", {"x": 2}, registry=registry))
    assert doubled == 4 and pid != os.getpid()
    with pytest.raises(ToolRetry, match="x must be >= 0"):
        asyncio.run(kernel.call_tool(run, "a", "pid_in_process", {"x": -1}, registry=registry))


def test_a_tool_class_instance_runs_in_another_process(kernel: Kernel) -> None:
    import os

    run = kernel.start_run("class-process")
    greeting, pid = asyncio.run(kernel.call_tool(run, "a", "pid_tool", {"who": "ada"},
                                                 registry=ToolRegistry([PidTool])))
    assert greeting == "hello ada" and pid != os.getpid()


def test_a_cancelled_process_tool_is_killed_not_abandoned(kernel: Kernel, tmp_path: Path) -> None:
    import os
    import time

    from agentos.errors import Cancelled

    pid_file = tmp_path / "pid"

    async def main() -> None:
        run = kernel.start_run("kill-me")
        call = asyncio.ensure_future(kernel.call_tool(
            run, "a", "sleep_in_process", {"pid_file": str(pid_file)},
            registry=ToolRegistry([sleep_in_process]),
        ))
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:  # the child has started
            await asyncio.sleep(0.05)
        assert kernel.cancel(run) == 1
        with pytest.raises(Cancelled):
            await call
        [row] = kernel.store.syscalls(run.id)
        assert row.outcome == "cancelled" and "abandoned" not in row.detail

    asyncio.run(main())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not sleeping on
        os.kill(int(pid_file.read_text()), 0)


def test_a_process_tool_that_cannot_be_imported_is_refused_before_it_runs(kernel: Kernel) -> None:
    from agentos.errors import UserError

    @tool(name="nested", run_in="process")
    def nested() -> str:
        """Defined inside a test: a child process cannot import it."""
        return "never"

    run = kernel.start_run("nested")
    with pytest.raises(UserError, match="define it at module level"):
        asyncio.run(kernel.call_tool(run, "a", "nested", {}, registry=ToolRegistry([nested])))
    assert kernel.store.syscalls(run.id) == []


def test_an_abandoned_thread_keeps_its_tools_concurrency_slot_until_it_ends(kernel: Kernel) -> None:
    import threading

    from agentos.errors import SyscallTimeout

    release = threading.Event()
    calls: list[str] = []

    @tool(name="exclusive", concurrency=1)
    def exclusive(label: str) -> str:
        """Only one at a time; the first blocks until released."""
        calls.append(label)
        if label == "first":
            release.wait(10)
        return label

    async def main() -> tuple[int, list[str], str]:
        run = kernel.start_run("exclusive")
        registry = ToolRegistry([exclusive])
        try:
            with pytest.raises(SyscallTimeout, match="abandoned"):
                await kernel.call_tool(run, "a", "exclusive", {"label": "first"}, registry=registry,
                                       timeout=0.1)
            second = asyncio.ensure_future(
                kernel.call_tool(run, "a", "exclusive", {"label": "second"}, registry=registry))
            for _ in range(5):
                await asyncio.sleep(0)
            queued = kernel.scheduler.queued("tool:exclusive")  # the first still runs
            started = list(calls)
        finally:
            release.set()
        return queued, started, await second

    queued, started, second = asyncio.run(main())
    assert queued == 1 and started == ["first"]
    assert second == "second"  # it ran once the abandoned call ended
