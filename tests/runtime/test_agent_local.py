"""A real agent on the packaged default model (1.5B), chaining two tools through the kernel (slow).

The 0.5B model stops after the first of the two calls; the 1.5B chains them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos import Agent, Kernel, load_settings, tool
from agentos.runtime.llm.models import resolve

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-1.5b"


@tool
def exchange_rate(currency: str) -> float:
    """Euros per one unit of a currency.

    Args:
        currency: a three-letter code such as USD or GBP.
    """
    return {"USD": 0.92, "GBP": 1.17, "JPY": 0.0061}[currency.upper()]


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a * b


def test_local_agent_uses_both_tools_to_a_correct_answer(
    tmp_path: Path, allow_model_requests: None
) -> None:
    try:
        resolve(MODEL)
    except Exception as error:  # the test says how to get the model rather than skipping silently
        pytest.fail(f"{error} (run `agentos models install {MODEL}`)")
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    agent = Agent(
        "converter",
        role="a currency converter that never guesses rates",
        llm=f"local/{MODEL}",
        tools=[exchange_rate, multiply],
        max_steps=6,
        llm_params={"temperature": 0.0},  # greedy: the same run every time
    )
    result = agent.run(
        "How many euros are 250 US dollars? First look up the USD rate with exchange_rate, "
        "then multiply 250 by that rate with multiply.",
        kernel=kernel,
    )
    assert result.ok, result.error
    # Both tools ran through the kernel, in order, with the right arguments: the rate of USD,
    # then 250 times that rate (as the run store recorded them).
    rows = kernel.store.syscalls(result.run_id)
    tools = [(r.name, r.outcome, r.detail["arguments"]) for r in rows if r.kind == "tool"]
    ok = [(name, args) for name, outcome, args in tools if outcome == "ok"]
    names = [name for name, _ in ok]
    assert "exchange_rate" in names and "multiply" in names, tools
    rate_call = next(args for name, args in ok if name == "exchange_rate")
    assert str(rate_call["currency"]).upper() == "USD"
    multiply_call = next(args for name, args in ok if name == "multiply")
    assert sorted(float(v) for v in multiply_call.values()) == pytest.approx([0.92, 250.0])
    assert names.index("exchange_rate") < names.index("multiply")
    assert "230" in (result.answer or ""), result.answer
    assert all(r.prompt_tokens > 0 for r in rows if r.kind == "llm")
    kernel.close()
