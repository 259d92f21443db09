"""Tool permissions, enforced by the kernel: allowed agents, approval, timeout, concurrency and
output cap; every refusal is recorded as a ``denied`` syscall and nothing runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Agent, Kernel, ToolRegistry, load_settings, tool
from agentos.errors import SyscallTimeout, ToolDenied, ToolFailed
from agentos.runtime.permissions import ToolPermissions
from agentos.testing import ScriptedLLM, call

ran: list[str] = []


@tool
def deploy(target: str) -> str:
    """Deploy to a target.

    Args:
        target: where.
    """
    ran.append(target)
    return f"deployed to {target}"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    ran.clear()
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}),
               registry=ToolRegistry([deploy]))
    yield k
    k.close()


def _outcomes(kernel: Kernel, run_id: str) -> list[tuple[str, str]]:
    return [(s.agent, s.outcome) for s in kernel.store.syscalls(run_id) if s.kind == "tool"]


def test_a_tool_limited_to_named_agents_refuses_the_others(kernel: Kernel) -> None:
    kernel.tool_permissions["deploy"] = ToolPermissions(agents=["release"])
    run = kernel.start_run("t")
    with pytest.raises(ToolDenied, match="agent 'intern' may not call tool 'deploy'"):
        asyncio.run(kernel.call_tool(run, "intern", "deploy", {"target": "prod"}))
    assert ran == []
    assert asyncio.run(kernel.call_tool(run, "release", "deploy", {"target": "prod"})) == (
        "deployed to prod")
    assert ran == ["prod"]
    assert _outcomes(kernel, run.id) == [("intern", "denied"), ("release", "ok")]
    assert isinstance(ToolDenied("x"), ToolFailed)  # the agent loop reports it to the LLM


def test_approval_is_asked_recorded_and_refused_without_an_approver(kernel: Kernel) -> None:
    kernel.tool_permissions["deploy"] = ToolPermissions(approval=True)
    run = kernel.start_run("t")
    with pytest.raises(ToolDenied, match="no approver is set"):
        asyncio.run(kernel.call_tool(run, "a", "deploy", {"target": "prod"}))
    asked: list[tuple[str, str, dict[str, str]]] = []

    def approver(agent: str, name: str, arguments: dict[str, str]) -> bool:
        asked.append((agent, name, arguments))
        return arguments["target"] == "staging"

    kernel.approver = approver
    with pytest.raises(ToolDenied, match="a human rejected 'a' calling tool 'deploy'"):
        asyncio.run(kernel.call_tool(run, "a", "deploy", {"target": "prod"}))
    assert asyncio.run(kernel.call_tool(run, "a", "deploy", {"target": "staging"})) == (
        "deployed to staging")
    assert ran == ["staging"]
    assert asked == [("a", "deploy", {"target": "prod"}), ("a", "deploy", {"target": "staging"})]
    assert _outcomes(kernel, run.id) == [("a", "denied"), ("a", "denied"), ("a", "ok")]
    decisions = [m["payload"] for m in kernel.store.messages(run.id)
                 if m["topic"] == "tool.approvals"]
    assert [d["approved"] for d in decisions] == [False, True]


def test_an_async_approver_is_awaited(kernel: Kernel) -> None:
    async def approver(agent: str, name: str, arguments: dict[str, str]) -> bool:
        await asyncio.sleep(0)
        return True

    kernel.tool_permissions["deploy"] = ToolPermissions(approval=True)
    kernel.approver = approver
    run = kernel.start_run("t")
    assert asyncio.run(kernel.call_tool(run, "a", "deploy", {"target": "x"})) == "deployed to x"


def test_timeout_concurrency_and_output_cap(kernel: Kernel) -> None:
    state = {"now": 0, "max": 0}

    @tool
    async def work(seconds: float, size: int = 3) -> str:
        """Sleep, then return size characters.

        Args:
            seconds: how long.
            size: output length.
        """
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(seconds)
        state["now"] -= 1
        return "x" * size

    registry = ToolRegistry([work])
    run = kernel.start_run("t")

    async def two_at_once() -> None:
        await asyncio.gather(*(kernel.call_tool(run, "a", "work", {"seconds": 0.2},
                                                registry=registry) for _ in range(2)))

    asyncio.run(two_at_once())
    assert state["max"] == 2  # control: no permission, both run at once
    kernel.tool_permissions["work"] = ToolPermissions(concurrency=1, timeout_s=1.0,
                                                      max_output_chars=10)
    state["max"] = 0
    asyncio.run(two_at_once())
    assert state["max"] == 1
    with pytest.raises(SyscallTimeout):
        asyncio.run(kernel.call_tool(run, "a", "work", {"seconds": 5}, registry=registry))
    short = asyncio.run(kernel.call_tool(run, "a", "work", {"seconds": 0, "size": 10},
                                         registry=registry))
    assert short == "x" * 10
    cut = asyncio.run(kernel.call_tool(run, "a", "work", {"seconds": 0, "size": 50},
                                       registry=registry))
    assert cut.startswith("x" * 10 + "... [output cut at 10 of 50 characters")


def test_permissions_load_from_agentos_toml(tmp_path: Path) -> None:
    config = tmp_path / "agentos.toml"
    config.write_text('[tool_permissions.deploy]\nagents = ["release"]\nmax_output_chars = 5\n')
    settings = load_settings(env={"AGENTOS_CONFIG": str(config),
                                  "AGENTOS_DATA_DIR": str(tmp_path)})
    k = Kernel(settings, registry=ToolRegistry([deploy]))
    try:
        assert k.tool_permissions["deploy"] == ToolPermissions(agents=["release"],
                                                               max_output_chars=5)
    finally:
        k.close()


def test_the_agent_gets_the_refusal_as_a_correctable_message(kernel: Kernel) -> None:
    kernel.tool_permissions["deploy"] = ToolPermissions(agents=["release"])
    llm = ScriptedLLM([call("deploy", target="prod"), "I am not allowed to deploy."])
    result = Agent("intern", llm=llm, tools=[deploy], kernel=kernel).run("deploy")
    assert result.ok and result.answer == "I am not allowed to deploy."
    (outcome,) = result.steps[0].tool_calls
    assert not outcome.ok and "may not call tool 'deploy'" in outcome.output
    assert ran == []
