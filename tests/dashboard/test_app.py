"""The dashboard's HTTP endpoints, served by the real `agentos dashboard` process."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from agentos import Kernel
from tests.dashboard._runs import expected_totals, finished_run, two_agents_one_slot
from tests.services import DashboardServer


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body.decode()


def test_run_endpoints_report_the_run_stores_numbers(dashboard: DashboardServer, kernel: Kernel) -> None:
    run_id = finished_run(kernel)
    want = expected_totals(kernel.store, run_id)
    record = kernel.store.get_run(run_id)

    status, detail = _get(f"{dashboard.url}/api/runs/{run_id}")
    assert status == 200
    run = detail["run"]
    assert (run["id"], run["name"], run["status"], run["task"]) == (run_id, "adder", "succeeded", record.task)
    assert run["totals"] == pytest.approx(want)
    assert run["usage"] == record.usage and run["totals"]["tokens"] == record.usage["tokens"]
    assert run["duration_s"] == pytest.approx(record.ended_at - record.started_at)
    records = kernel.store.syscalls(run_id)
    assert [(s["id"], s["agent"], s["kind"], s["name"], s["outcome"]) for s in detail["syscalls"]] == [
        (r.id, r.agent, r.kind, r.name, r.outcome) for r in records]
    assert [s["energy_j"] for s in detail["syscalls"]] == [r.energy_j for r in records]
    assert detail["agents"][0]["energy_j"] == pytest.approx(want["energy_j"])
    bars = [b for a in detail["timeline"]["agents"] for b in a["bars"]]
    assert sorted(b["id"] for b in bars) == [r.id for r in records]

    status, listing = _get(f"{dashboard.url}/api/runs")
    assert status == 200 and listing["store"] == str(dashboard.data_dir / "runs.sqlite")
    listed = {r["id"]: r for r in listing["runs"]}
    assert listed[run_id]["totals"] == pytest.approx(want)
    assert {m["key"] for m in listing["metrics"]} >= {"prompt_tokens", "completion_tokens", "cost", "energy_j"}

    status, by_prefix = _get(f"{dashboard.url}/api/runs/{run_id[:8]}")
    assert status == 200 and by_prefix["run"]["id"] == run_id


def test_the_timeline_shows_who_waited_for_the_shared_llm_slot(
    dashboard: DashboardServer, kernel: Kernel
) -> None:
    run_id = two_agents_one_slot(kernel, latency=0.1)
    records = kernel.store.syscalls(run_id)
    status, detail = _get(f"{dashboard.url}/api/runs/{run_id}")
    assert status == 200
    lanes = {a["agent"]: a for a in detail["timeline"]["agents"]}
    assert set(lanes) == {"planner", "writer"}
    waits = {r.id: r.queue_wait_s for r in records}
    bars = [b for a in lanes.values() for b in a["bars"]]
    assert {b["id"]: b["wait_s"] for b in bars} == waits
    assert max(waits.values()) >= 0.05  # one agent's turn waited for the other's (0.1 s each)
    started = detail["run"]["started_at"]
    for bar in bars:
        record = next(r for r in records if r.id == bar["id"])
        assert bar["start_s"] == pytest.approx(record.submitted_at - started)
        assert bar["service_s"] == record.service_s
    pool = next(g for g in detail["resources"] if g["resource"] == "llm:scripted")
    llm_waits = [r.queue_wait_s for r in records if r.resource == "llm:scripted"]
    assert pool["syscalls"] == 4
    assert pool["queue_wait_s"] == pytest.approx(sum(llm_waits))
    assert pool["max_wait_s"] == max(llm_waits)
    per_agent = {a["agent"]: a for a in detail["agents"]}
    for name in ("planner", "writer"):
        mine = [r for r in records if r.agent == name]
        assert per_agent[name]["syscalls"] == len(mine)
        assert per_agent[name]["tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in mine)
        assert per_agent[name]["queue_wait_s"] == pytest.approx(sum(r.queue_wait_s for r in mine))


def test_a_running_run_whose_process_is_gone_shows_as_abandoned(
    dashboard: DashboardServer, kernel: Kernel
) -> None:
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    killed = kernel.store.start_run("killed")
    kernel.store.execute("UPDATE runs SET pid=? WHERE id=?", (int(gone.stdout), killed))
    alive = kernel.store.start_run("alive")  # this process: still running
    for run_id, shown in ((killed, "abandoned"), (alive, "running")):
        status, detail = _get(f"{dashboard.url}/api/runs/{run_id}")
        assert status == 200
        assert (detail["run"]["status"], detail["run"]["shown_status"]) == ("running", shown)
    assert kernel.store.get_run(killed).status == "running"  # the dashboard only reads


def test_an_unknown_run_is_a_404_that_says_where_to_look(dashboard: DashboardServer) -> None:
    status, body = _get(f"{dashboard.url}/api/runs/nosuchrun")
    assert status == 404
    assert body["error"].startswith("no run 'nosuchrun' in the run store ")
    assert "agentos runs list" in body["error"]
    status, page = _get(f"{dashboard.url}/runs/nosuchrun")
    assert status == 404 and "no run &#x27;nosuchrun&#x27;" in page
    status, body = _get(f"{dashboard.url}/api/runs?limit=lots")
    assert status == 400 and "limit must be a whole number from 1 to 1000, got 'lots'" in body["error"]


def test_events_announce_each_change_to_the_run_store(dashboard: DashboardServer, kernel: Kernel) -> None:
    lines: list[str] = []
    got_change = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(f"{dashboard.url}/api/events", timeout=20) as stream:
            for raw in stream:
                lines.append(raw.decode().strip())
                if lines[-1] == "event: change":
                    got_change.set()
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    deadline = time.monotonic() + 10
    while "event: hello" not in lines and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "event: hello" in lines
    assert not got_change.wait(0.6)  # nothing changed, nothing announced
    kernel.store.start_run("watched")
    assert got_change.wait(10), lines
    listener.join(5)


def test_the_page_and_its_assets_are_served_from_the_package(dashboard: DashboardServer) -> None:
    status, page = _get(f"{dashboard.url}/")
    assert status == 200 and "<title>agentos dashboard</title>" in page
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        status, _ = _get(f"{dashboard.url}{asset}")
        assert status == 200, asset
