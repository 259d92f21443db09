"""The dashboard's reads over the run store: totals, metric columns, the timeline's lanes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos import Kernel, load_settings
from agentos.dashboard import queries
from agentos.runtime.store import RunStore
from tests.dashboard._runs import expected_totals, finished_run


def test_totals_per_run_agent_and_resource_equal_the_syscall_records(tmp_path: Path) -> None:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    try:
        run_id = finished_run(kernel)
        records = kernel.store.syscalls(run_id)
        detail = queries.run_detail(kernel.store, run_id)
        assert detail is not None
        want = expected_totals(kernel.store, run_id)
        assert detail["run"]["totals"] == pytest.approx(want)
        assert detail["run"]["totals"]["tokens"] == kernel.store.get_run(run_id).usage["tokens"]
        assert [a["agent"] for a in detail["agents"]] == ["adder"]
        assert detail["agents"][0]["by_kind"] == {"llm": 3, "tool": 2}
        by_resource = {g["resource"]: g["syscalls"] for g in detail["resources"]}
        assert by_resource == {"llm:scripted": 3, "tool:add": 1, "tool:multiply": 1}
        assert [s["id"] for s in detail["syscalls"]] == [r.id for r in records]
        assert [s["outcome"] for s in detail["syscalls"]] == [r.outcome for r in records]
        listed = queries.list_runs(kernel.store)["runs"]
        assert [r["id"] for r in listed] == [run_id]
        assert listed[0]["totals"] == pytest.approx(want)
    finally:
        kernel.close()


def test_a_prefix_finds_the_run_and_an_unknown_id_finds_none(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    first = store.start_run("a", run_id="abc_1")
    store.start_run("b", run_id="abcx1")
    assert queries.run_detail(store, "abc_")["run"]["id"] == first  # "_" is not a wildcard
    assert queries.run_detail(store, "abcx")["run"]["id"] == "abcx1"
    assert queries.run_detail(store, "zzz") is None


def test_numeric_columns_the_store_gains_are_summed_and_labelled() -> None:
    store = RunStore(":memory:")
    run_id = store.start_run("meter")
    for _ in range(2):
        store.record_syscall(run_id, "a", "llm", "llm:m", "m", 0.0, 0.0, 1.0, 1, "ok",
                             10, 2, 0.5, 3.0)
    existing = set(queries.metric_columns(store))
    added = [c for c in ("dash_flops", "dash_co2_g") if c not in existing]
    for column in added:
        store.execute(f"ALTER TABLE syscalls ADD COLUMN {column} REAL NOT NULL DEFAULT 0")
    store.execute("UPDATE syscalls SET dash_flops=2.5e12, dash_co2_g=0.125")
    columns = queries.metric_columns(store)
    assert columns[:4] == ["prompt_tokens", "completion_tokens", "cost", "energy_j"]
    assert {"dash_flops", "dash_co2_g"} <= set(columns)
    totals = queries.list_runs(store)["runs"][0]["totals"]
    assert totals["dash_flops"] == pytest.approx(5e12) and totals["dash_co2_g"] == pytest.approx(0.25)
    assert totals["energy_j"] == 6 and totals["tokens"] == 24
    labels = {m["key"]: m for m in queries.list_runs(store)["metrics"]}
    assert labels["dash_flops"]["label"] == "FLOPs" and labels["dash_flops"]["format"]["kind"] == "exp"
    assert labels["dash_co2_g"]["label"] == "CO2e g"


def _syscall(i: int, agent: str, at: float, wait: float, service: float) -> dict:
    return {"id": i, "agent": agent, "kind": "tool", "name": "t", "resource": "tool:t",
            "outcome": "ok", "submitted_at": at, "queue_wait_s": wait, "service_s": service}


def test_timeline_puts_overlapping_syscalls_of_one_agent_on_separate_lanes() -> None:
    t0 = 1000.0
    calls = [
        _syscall(1, "coder", t0 + 0.0, 0.5, 1.0),     # 0.0 .. 1.5
        _syscall(2, "coder", t0 + 0.2, 0.0, 0.5),     # 0.2 .. 0.7: overlaps 1
        _syscall(3, "coder", t0 + 1.6, 0.1, 0.1),     # after both: back on lane 0
        _syscall(4, "researcher", t0 + 0.1, 2.0, 0.4),
    ]
    tl = queries.timeline(calls, t0)
    coder, researcher = tl["agents"]
    assert coder["agent"] == "coder" and coder["lanes"] == 2
    assert [(b["id"], b["lane"]) for b in coder["bars"]] == [(1, 0), (2, 1), (3, 0)]
    assert coder["bars"][0]["start_s"] == pytest.approx(0.0)
    assert coder["bars"][0]["wait_s"] == 0.5 and coder["bars"][0]["service_s"] == 1.0
    assert researcher["lanes"] == 1 and researcher["bars"][0]["start_s"] == pytest.approx(0.1)
    assert tl["end_s"] == pytest.approx(2.5)
