"""The dashboard page in headless Chromium (Debian's ``chromium``, driven by Playwright).

The page's numbers are compared with the run store's while a scripted run progresses step by
step (each LLM turn waits for the test to release it), and a screenshot is saved.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentos import Agent, Kernel
from agentos.dashboard.queries import metric_columns, metric_spec
from agentos.runtime.store import RunStore
from agentos.testing import FunctionLLM, call
from tests.dashboard._runs import add, expected_totals, priced
from tests.services import DashboardServer

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash system-packages.sh` (installs Debian's "
                    "chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, dashboard: DashboardServer) -> Iterator[Any]:
    """A fresh page that records every request it makes and every script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def _text(value: float, format: dict[str, Any]) -> str:
    """The page's formatting, in Python (see ``fmt`` in dashboard.js)."""
    if format["kind"] == "exp":
        return f"{value:.{format['digits']}e}"
    return f"{value:,.{format['digits']}f}"


def _assert_page_shows(page: Any, store: RunStore, run_id: str) -> dict[str, Any]:
    """Every total on the page equals the run store's (waiting for the page to catch up)."""
    from playwright.sync_api import expect

    want = expected_totals(store, run_id)
    cards = page.locator("#totals")
    expect(cards.locator("[data-metric=syscalls] .value")).to_have_text(f"{want['syscalls']:,}",
                                                                         timeout=WAIT_MS)
    prompt, completion = want["prompt_tokens"], want["completion_tokens"]
    expect(cards.locator("[data-metric=tokens] .value")).to_have_text(
        f"{want['tokens']:,} ({prompt:,} in / {completion:,} out)")
    for column in metric_columns(store):
        if not column.endswith("_tokens"):
            expect(cards.locator(f"[data-metric={column}] .value")).to_have_text(
                _text(want[column], metric_spec(column)["format"]))
    for key in ("queue_wait_s", "service_s"):
        expect(cards.locator(f"[data-metric={key}] .value")).to_have_text(f"{want[key]:,.3f}")
    row = page.locator(f"#runs tr[data-run-id='{run_id}']")
    expect(row.locator("[data-col=tokens]")).to_have_text(f"{want['tokens']:,}")
    expect(row.locator("[data-col=syscalls]")).to_have_text(f"{want['syscalls']:,}")
    expect(page.locator("#syscalls tbody tr")).to_have_count(want["syscalls"])
    expect(page.locator("#timeline g.bar")).to_have_count(want["syscalls"])
    return want


def _wait_for(predicate: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_matches_the_run_store_and_follows_a_run_as_it_progresses(
    page: Any, dashboard: DashboardServer, kernel: Kernel, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    gate: queue.Queue[int] = queue.Queue()
    replies = iter([
        priced(None, call("add", a=2, b=3), call("add", a=5, b=8), p=120, c=17, cost=0.00123,
               energy=1.25),
        priced(None, call("add", a=5, b=13), p=160, c=9, cost=0.00151, energy=1.5),
        priced("2 + 3 = 5 and 5 + 8 = 13, which add up to 18.", p=190, c=14, cost=0.00187,
               energy=0.75),
    ])

    async def brain(messages: list[Any], tools: Any) -> Any:
        await asyncio.to_thread(gate.get, True, 30)  # one LLM turn per release
        return next(replies)

    agent = Agent("watched", llm=FunctionLLM(brain, name="scripted"), tools=[add])
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(agent.run("Add 2+3 and 5+8, then sum them.", kernel=kernel)))

    page.goto(f"{dashboard.url}/")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    page.evaluate("window.__loaded_once = true")  # gone if the page reloaded instead of updating
    worker.start()
    try:
        run = _wait_for(lambda: next((r for r in kernel.store.list_runs(5) if r.name == "watched"), None),
                        "the run to start")
        expect(page.locator("#run-title")).to_have_text(f"{run.id} · watched", timeout=WAIT_MS)
        expect(page.locator("#run-status")).to_have_text("running")
        _assert_page_shows(page, kernel.store, run.id)  # 0 syscalls so far
        for step, syscalls in enumerate((3, 5, 6)):  # an LLM turn, then its tool calls
            gate.put(step)
            _wait_for(lambda: len(kernel.store.syscalls(run.id)) == syscalls, f"{syscalls} syscalls")
            if step == 0:
                expect(page.locator("#run-status")).to_have_text("running")
            _assert_page_shows(page, kernel.store, run.id)
        worker.join(10)
    finally:
        for _ in range(3):
            gate.put(-1)  # never leave the run blocked
        worker.join(10)
    assert results and results[0].ok
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=WAIT_MS)
    want = _assert_page_shows(page, kernel.store, run.id)
    assert want["tokens"] == 510
    llm_joules = sum(r.energy_j for r in kernel.store.syscalls(run.id) if r.kind == "llm")
    assert llm_joules == pytest.approx(3.5)  # what the scripted model reported
    agent_row = page.locator("#agents tr[data-agent=watched]")
    expect(agent_row.locator("[data-col=by_kind]")).to_have_text("llm 3 · tool 3")
    expect(page.locator("#resources tr[data-resource='tool:add'] [data-col=syscalls]")).to_have_text("3")
    expect(page.locator("#timeline g.lane[data-agent=watched]")).to_have_count(1)

    assert page.evaluate("window.__loaded_once") is True  # updated in place, by events
    # The energy meter's columns: FLOPs and CO2 cards, and how each number was obtained.
    expect(page.locator("#totals [data-metric=flops] .label")).to_have_text("FLOPs")
    expect(page.locator("#totals [data-metric=gco2] .label")).to_have_text("CO2e g")
    records = kernel.store.syscalls(run.id)
    for column in ("energy_method", "flops_method"):
        shown = page.locator(f"#methods [data-method={column}]")
        for method in {getattr(r, column) for r in records}:
            expect(shown).to_contain_text(method or "not recorded")

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert page.errors == []
    assert all(url.startswith((dashboard.url, "data:")) for url in page.requests), page.requests


def test_run_text_is_shown_as_text_and_never_run_as_html(
    page: Any, dashboard: DashboardServer, kernel: Kernel
) -> None:
    from playwright.sync_api import expect

    payload = '<img src=x onerror="window.__pwned = 1">'
    run_id = kernel.store.start_run(payload, task=f"<b>bold?</b> {payload}")
    page.goto(f"{dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-title")).to_have_text(f"{run_id} · {payload}", timeout=WAIT_MS)
    expect(page.locator("#run-task")).to_have_text(f"<b>bold?</b> {payload}")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    # The control case: the same text inserted as HTML does run in this browser.
    page.evaluate("text => { const d = document.createElement('div'); d.innerHTML = text; "
                  "document.body.append(d); }", payload)
    page.wait_for_function("window.__pwned === 1", timeout=WAIT_MS)


def test_an_unknown_run_shows_a_404_page_that_says_what_to_do(page: Any, dashboard: DashboardServer) -> None:
    response = page.goto(f"{dashboard.url}/runs/nosuchrun")
    assert response.status == 404
    assert "no run 'nosuchrun' in the run store" in page.inner_text("body")
    assert "agentos runs list" in page.inner_text("body")
