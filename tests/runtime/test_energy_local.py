"""A run on the real local model (0.5B, llama.cpp in-process) is stopped by its energy budget (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos import Agent, Budget, Kernel, load_settings, tool
from agentos.runtime.llm.models import resolve

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-0.5b"


@tool
def exchange_rate(currency: str) -> float:
    """Euros per one unit of a currency.

    Args:
        currency: a three-letter code such as USD or GBP.
    """
    return {"USD": 0.92, "GBP": 1.17}[currency.upper()]


def test_local_model_run_stops_at_its_energy_budget(tmp_path: Path, allow_model_requests: None) -> None:
    try:
        resolve(MODEL)
    except Exception as error:
        pytest.fail(f"{error} (run `agentos models install {MODEL}`)")
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    try:
        agent = Agent("spender", llm=f"local/{MODEL}", tools=[exchange_rate], max_steps=4,
                      budget=Budget(energy_j=0.05), llm_params={"temperature": 0.0, "max_tokens": 64})
        result = agent.run("What is the USD rate in euros? Use exchange_rate.", kernel=kernel)
        rows = kernel.store.syscalls(result.run_id)
    finally:
        kernel.close()
    assert result.status == "budget_exceeded", (result.status, result.error)
    assert "energy_j" in (result.error or "")
    first = rows[0]
    assert first.kind == "llm" and first.outcome == "ok"
    # The completion ran in this process's llama.cpp threads: modelled from their CPU time.
    assert first.energy_j > 0.05 and first.energy_method.startswith("modelled")
    tokens = first.prompt_tokens + first.completion_tokens
    assert first.flops == pytest.approx(2 * 0.49e9 * tokens)
    assert first.flops_method.startswith("estimated")
    assert rows[-1].outcome == "budget_exceeded"
