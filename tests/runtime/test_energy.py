"""Every syscall carries energy, FLOPs and CO2 with their methods; energy budgets bite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos import Agent, Budget, Kernel, load_settings, tool
from agentos.runtime.energy import REMOTE_ACTIVE_PARAMS, REMOTE_J_PER_FLOP
from agentos.runtime.llm.gateway import LiteLLMModel
from agentos.runtime.store import RunStore
from agentos.testing import ScriptedLLM, call
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_CARBON_REGION": "DE"}))
    yield k
    k.close()


@tool
def crunch(seconds: float) -> str:
    """Keep one CPU busy for a while.

    Args:
        seconds: CPU seconds to burn.
    """
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return f"did {n} steps"


def test_tool_and_llm_syscalls_record_modelled_energy_flops_and_co2(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("crunch", seconds=0.3), "done"])
    result = Agent("worker", llm=llm, tools=[crunch]).run("crunch", kernel=kernel)
    assert result.status == "succeeded"
    rows = kernel.store.syscalls(result.run_id)
    assert [r.kind for r in rows] == ["llm", "tool", "llm"]
    tool_row = rows[1]
    per_thread = kernel.energy.shared.source.power.watts_per_thread  # type: ignore[attr-defined]
    # CPU time x W/thread. Process CPU time also counts other threads of this process (a test
    # suite's leftover servers), so only the lower bound is tight.
    assert 0.8 * 0.3 * per_thread < tool_row.energy_j < 3 * 0.3 * per_thread
    assert tool_row.energy_method.startswith("modelled: process CPU time")
    assert tool_row.gco2 == pytest.approx(tool_row.energy_j / 3.6e6 * 381)  # Germany, Ember 2023
    assert tool_row.flops == 0 and tool_row.flops_method == "not counted"
    for row in rows[0::2]:  # the scripted LLM runs in-process: metered like any work here
        assert row.energy_method and row.energy_method.startswith("modelled")
        assert 0 <= row.energy_j
    # Runs and agents aggregate what their syscalls recorded.
    total = sum(r.energy_j for r in rows)
    assert result.usage["energy_j"] == pytest.approx(total)
    assert result.usage["gco2"] == pytest.approx(sum(r.gco2 for r in rows))
    stored = kernel.store.get_run(result.run_id)
    assert stored is not None and stored.usage["energy_j"] == pytest.approx(total)


def test_energy_budget_stops_a_run_that_burns_cpu(kernel: Kernel) -> None:
    per_thread = kernel.energy.shared.source.power.watts_per_thread  # type: ignore[attr-defined]
    budget = Budget(energy_j=0.1 * per_thread)  # a tenth of a CPU-second's worth
    llm = ScriptedLLM([call("crunch", seconds=0.3), call("crunch", seconds=0.3), "done"])
    result = Agent("hot", llm=llm, tools=[crunch], budget=budget).run("go", kernel=kernel)
    assert result.status == "budget_exceeded" and "energy_j" in (result.error or "")
    outcomes = [(r.kind, r.outcome) for r in kernel.store.syscalls(result.run_id)]
    assert outcomes == [("llm", "ok"), ("tool", "ok"), ("llm", "budget_exceeded")]
    assert result.usage["energy_j"] > budget.energy_j  # type: ignore[operator]


def test_control_same_run_without_energy_budget_finishes(kernel: Kernel) -> None:
    llm = ScriptedLLM([call("crunch", seconds=0.3), call("crunch", seconds=0.3), "done"])
    result = Agent("hot", llm=llm, tools=[crunch]).run("go", kernel=kernel)
    assert result.status == "succeeded"


def test_budget_energy_j_setting_applies_to_runs(tmp_path: Path) -> None:
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_BUDGET_ENERGY_J": "0.001"}))
    try:
        result = Agent("hot", llm=ScriptedLLM([call("crunch", seconds=0.2), "done"]),
                       tools=[crunch]).run("go", kernel=k)
        assert result.status == "budget_exceeded" and "energy_j" in (result.error or "")
    finally:
        k.close()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def test_remote_llm_energy_and_flops_are_estimated_from_tokens(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.queue("hello there")
    model = LiteLLMModel("openai/fake-model", api_base=fake.base_url, api_key="sk-test")
    out = asyncio.run(model.complete([{"role": "user", "content": "hi"}]))
    tokens = out.prompt_tokens + out.completion_tokens
    assert out.flops == 2 * REMOTE_ACTIVE_PARAMS * tokens
    assert out.energy_j == pytest.approx(out.flops * REMOTE_J_PER_FLOP)
    assert out.energy_method.startswith("estimated") and out.flops_method.startswith("estimated")
    assert out.gco2 == pytest.approx(out.energy_j / 3.6e6 * 480)  # world average: grid unknown
    # Through the kernel the estimate is recorded as is, not replaced by local metering.
    fake.queue("again")
    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    try:
        result = Agent("remote", llm=model).run("hi", kernel=k)
        [row] = k.store.syscalls(result.run_id)
        assert row.energy_method.startswith("estimated") and row.energy_j > 0
    finally:
        k.close()


_OLD_SYSCALLS = """
CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, task TEXT, status TEXT NOT NULL,
    pid INTEGER, started_at REAL NOT NULL, ended_at REAL, result TEXT, error TEXT, usage TEXT);
CREATE TABLE syscalls (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, agent TEXT NOT NULL,
    kind TEXT NOT NULL, resource TEXT NOT NULL, name TEXT, submitted_at REAL NOT NULL,
    queue_wait_s REAL NOT NULL, service_s REAL NOT NULL, attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0, energy_j REAL NOT NULL DEFAULT 0, outcome TEXT NOT NULL,
    error TEXT, detail TEXT);
INSERT INTO runs VALUES ('old1', 'before', NULL, 'succeeded', 1, 1.0, 2.0, 'ok', NULL, '{}');
INSERT INTO syscalls (run_id, agent, kind, resource, name, submitted_at, queue_wait_s, service_s,
    attempts, energy_j, outcome) VALUES ('old1', 'a', 'tool', 'tool:x', 'x', 1.0, 0, 0.1, 1, 0.5, 'ok');
"""


def test_a_run_store_from_before_energy_columns_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SYSCALLS)
    store = RunStore(path)
    [old] = store.syscalls("old1")
    assert (old.energy_j, old.flops, old.gco2, old.energy_method) == (0.5, 0.0, 0.0, None)
    store.record_syscall("old1", "a", "llm", "llm:m", "m", 3.0, 0, 0.2, 1, "ok", 1, 2, 0.0, 1.5,
                         flops=10.0, gco2=0.1, energy_method="modelled: x", flops_method="estimated: y")
    new = store.syscalls("old1")[1]
    assert (new.flops, new.gco2, new.energy_method, new.flops_method) == (10.0, 0.1, "modelled: x", "estimated: y")
    store.close()
    RunStore(path).close()  # opening again finds the columns and adds nothing


def test_asking_for_rapl_where_there_is_none_is_a_clear_error(tmp_path: Path) -> None:
    if Path("/sys/class/powercap").is_dir():
        pytest.skip("this machine has powercap")
    from agentos.errors import UserError

    k = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_ENERGY_SOURCE": "rapl"}))
    try:
        with pytest.raises(UserError, match="powercap does not exist.*AGENTOS_ENERGY_SOURCE"):
            Agent("a", llm=ScriptedLLM(["done"])).run("hi", kernel=k)
    finally:
        k.close()


def test_unknown_carbon_region_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    from agentos.errors import ConfigError

    with pytest.raises(ConfigError, match="AGENTOS_CARBON_REGION.*known: .*FR"):
        load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_CARBON_REGION": "Mars"})
    assert load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path), "AGENTOS_CARBON_REGION": "fr"}).carbon_region == "FR"
