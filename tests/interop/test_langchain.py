"""LangChain / LangGraph apps on the kernel through AgentosChatModel."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool as lc_tool

from agentos import Budget, Kernel
from agentos.errors import BudgetExceeded
from agentos.interop.langchain import AgentosChatModel
from agentos.testing import ScriptedLLM, call


@lc_tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def test_a_prebuilt_react_agent_runs_its_model_calls_as_kernel_syscalls(kernel: Kernel) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = ScriptedLLM([call("multiply", a=6, b=7), "6 times 7 is 42."])
    model = AgentosChatModel(model=llm, kernel=kernel, agent="react")
    app = create_react_agent(model, [multiply])
    out = app.invoke({"messages": [("user", "What is 6 times 7?")]})
    assert out["messages"][-1].content == "6 times 7 is 42."
    # The tool's schema reached the model, and LangGraph's tool node ran the real tool.
    second = llm.calls[1]
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "42"
    assert second[0] == {"role": "user", "content": "What is 6 times 7?"}
    assert second[1]["tool_calls"][0]["function"]["name"] == "multiply"
    records = kernel.store.syscalls(model.run_id)
    assert [(r.agent, r.kind, r.outcome) for r in records] == [("react", "llm", "ok")] * 2
    assert records[0].detail == {"messages": 1, "tools": 1}
    assert out["messages"][1].usage_metadata["total_tokens"] > 0


def test_async_invoke_and_message_conversion(kernel: Kernel) -> None:
    llm = ScriptedLLM(["pong"])
    model = AgentosChatModel(model=llm, kernel=kernel)
    history = [SystemMessage("be brief"), HumanMessage("ping"),
               AIMessage("", tool_calls=[{"name": "multiply", "args": {"a": 1, "b": 2}, "id": "t1"}])]
    reply = asyncio.run(model.ainvoke(history))
    assert reply.content == "pong"
    sent = llm.calls[0]
    assert [m["role"] for m in sent] == ["system", "user", "assistant"]
    assert sent[2]["tool_calls"][0]["function"] == {"name": "multiply", "arguments": '{"a": 1, "b": 2}'}


def test_the_kernels_budget_governs_a_langchain_app(kernel: Kernel) -> None:
    run = kernel.start_run("capped", budget=Budget(tokens=30))
    model = AgentosChatModel(model=ScriptedLLM(["x" * 400, "never"]), kernel=kernel, run=run)
    model.invoke("first")
    with pytest.raises(BudgetExceeded, match="run budget for tokens exceeded"):
        model.invoke("second")
    assert [r.outcome for r in kernel.store.syscalls(run.id)] == ["ok", "budget_exceeded"]
