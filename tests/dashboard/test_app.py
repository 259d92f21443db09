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
from tests.dashboard._runs import expected_totals, finished_run
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
