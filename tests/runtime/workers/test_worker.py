"""Kernels send syscalls to ``agentos worker`` processes over a real redis-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentos.config import load_settings
from agentos.errors import RunError, UnknownTool
from agentos.runtime.kernel import Kernel
from agentos.runtime.registry import ToolRegistry
from agentos.runtime.workers import RemoteSyscalls, Worker, WorkerConfig
from agentos.runtime.workers._protocol import encode_value
from tests.runtime.workers import programs
from tests.runtime.workers.conftest import ROOT, Workers

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]


def kernel_on(url: str, tmp_path: Path) -> Kernel:
    settings = load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "kernel"),
                                  "AGENTOS_WORKERS_URL": url})
    return Kernel(settings, registry=ToolRegistry(programs.TOOLS))


async def test_a_kernel_with_workers_url_runs_llm_and_tool_syscalls_on_two_worker_processes(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    procs = [workers.start(db_url, concurrency=2) for _ in range(2)]
    log = str(tmp_path / "calls.log")
    kernel = kernel_on(db_url, tmp_path)
    try:
        run = kernel.start_run("spread")
        done = await asyncio.gather(*(
            kernel.call_tool(run, f"agent{i % 2}", "record",
                             {"log": log, "tag": f"t{i}", "hold_s": 0.3})
            for i in range(8)
        ))
        reply = await kernel.llm(run, "agent0", "test/echo", [{"role": "user", "content": "hi"}])
        with pytest.raises(UnknownTool, match="unknown tool 'nope'"):
            await kernel.workers.call("tool", "tool:nope", {"name": "nope", "arguments": {}},
                                      timeout=30)
        kernel.end_run(run, "succeeded")
        records = kernel.store.syscalls(run.id)
    finally:
        await kernel.aclose()
    assert sorted(d.split()[0] for d in done) == sorted(f"t{i}" for i in range(8))
    pids = {int(d.split()[1]) for d in done}
    assert pids == {p.pid for p in procs}  # both processes ran some
    assert reply.content is not None and reply.content.startswith("echo hi ")
    assert int(reply.content.split()[-1]) in pids
    assert [(r.kind, r.outcome) for r in records].count(("tool", "ok")) == 8
    assert [(r.kind, r.outcome) for r in records].count(("llm", "ok")) == 1
    lines = Path(log).read_text().splitlines()
    assert sum(line.startswith("done ") for line in lines) == 8


async def test_a_syscall_already_in_the_journal_is_answered_from_it_not_run_again(
    db_url: str, tmp_path: Path
) -> None:
    ran: list[str] = []

    def count(tag: str) -> str:
        """Count a call.

        Args:
            tag: names it.
        """
        ran.append(tag)
        return f"ran {tag}"

    worker = Worker(WorkerConfig(db_url, lease=1.0), load_settings(
        env={"AGENTOS_DATA_DIR": str(tmp_path)}), registry=ToolRegistry([count]))
    client = RemoteSyscalls(db_url)
    task = asyncio.create_task(worker.run())
    try:
        body = {"name": "count", "arguments": {"tag": "a"}}
        first = await client.call("tool", "tool:count", body, key="k1", timeout=30)
        again = await client.call("tool", "tool:count", body, key="k1", timeout=30)
        # As if a worker finished "k2" and died before replying: only the journal knows it.
        await worker.journal.begin("k2", "dead-worker", 1.0)
        await worker.journal.finish("k2", {"ok": True, "value": encode_value("from journal"),
                                           "worker": "dead-worker"}, "dead-worker")
        replayed = await client.call("tool", "tool:count", body, key="k2", timeout=30)
        entry = await worker.journal.entry("k1")
    finally:
        worker.stop()
        await task
        await worker.aclose()
        await client.aclose()
    assert (first, again, replayed) == ("ran a", "ran a", "from journal")
    assert ran == ["a"]  # once, though asked three times
    assert entry["state"] == "done" and entry["starts"] == "1"
    assert worker.counts["replayed"] == 2


async def test_an_error_on_the_worker_is_raised_by_the_kernel_with_its_class(
    db_url: str, tmp_path: Path
) -> None:
    def fails() -> str:
        """Always fails."""
        raise ValueError("broken on purpose")

    def opaque() -> object:
        """Returns what JSON cannot carry."""
        return object()

    worker = Worker(WorkerConfig(db_url, lease=1.0), load_settings(
        env={"AGENTOS_DATA_DIR": str(tmp_path)}), registry=ToolRegistry([fails, opaque]))
    task = asyncio.create_task(worker.run())
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "k"),
                                       "AGENTOS_WORKERS_URL": db_url}),
                    registry=ToolRegistry([fails, opaque]))
    try:
        run = kernel.start_run("errors")
        from agentos.errors import ToolFailed

        with pytest.raises(ToolFailed, match="ValueError: broken on purpose"):
            await kernel.call_tool(run, "a", "fails", {})
        with pytest.raises(ToolFailed, match="returned a value of type .object., which cannot be sent back"):
            await kernel.call_tool(run, "a", "opaque", {})
        record = kernel.store.syscalls(run.id)[0]
    finally:
        worker.stop()
        await task
        await worker.aclose()
        await kernel.aclose()
    assert record.outcome == "error"
    assert isinstance(ToolFailed("x"), RunError)


async def test_agentos_status_shows_workers_queues_and_leases(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    proc = workers.start(db_url, concurrency=1, lease=5.0)
    log = str(tmp_path / "status.log")
    kernel = kernel_on(db_url, tmp_path)
    try:
        run = kernel.start_run("status")
        calls = [asyncio.create_task(kernel.call_tool(run, "a", "record",
                                                      {"log": log, "tag": f"s{i}", "hold_s": 2.5}))
                 for i in range(2)]
        while not Path(log).exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.3)  # a heartbeat (every second) since the first call started
        done = subprocess.run([sys.executable, "-m", "agentos", "status", "--url", db_url,
                               "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        table = subprocess.run([sys.executable, "-m", "agentos", "status", "--url", db_url],
                               cwd=ROOT, capture_output=True, text=True, timeout=60,
                               env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        await asyncio.gather(*calls)
    finally:
        await kernel.aclose()
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    [worker] = status["workers"]
    assert worker["pid"] == proc.pid and worker["alive"] and worker["running"] == 1
    tool_queue = next(q for q in status["queues"] if q["topic"] == "syscalls.tool")
    assert (tool_queue["held"], tool_queue["waiting"], tool_queue["backlog"]) == (1, 1, 2)
    [lease] = status["leases"]
    assert lease["worker"] == worker["id"] and lease["deliveries"] == 1
    assert table.returncode == 0, table.stderr
    assert "1 worker(s) alive" in table.stdout and "syscalls.tool" in table.stdout


async def test_memory_syscalls_run_on_a_worker_and_grants_are_still_checked_by_the_kernel(
    db_url: str, tmp_path: Path
) -> None:
    from agentos.errors import MemoryAccessDenied
    from agentos.runtime.memory import CachedEmbedder, Hit, Memory, SentenceTransformerEmbedder

    memory = Memory(tmp_path / "memory", embedder=CachedEmbedder(SentenceTransformerEmbedder(),
                                                                 None))
    worker = Worker(WorkerConfig(db_url, lease=5.0, kinds=("memory",)),
                    load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}), memory=memory)
    task = asyncio.create_task(worker.run())
    kernel = kernel_on(db_url, tmp_path)
    try:
        run = kernel.start_run("memory")
        chunk = await kernel.memory_call(run, "alice", "remember", ["agent:alice"],
                                         text="Ring attention passes key blocks around a ring.")
        hits = await kernel.memory_call(run, "alice", "recall", ["agent:alice"],
                                        query="ring attention", k=1)
        visible = await kernel.memory_call(run, "bob", "namespaces", [])
        with pytest.raises(MemoryAccessDenied):
            await kernel.memory_call(run, "bob", "recall", ["agent:alice"], query="ring")
        outcomes = [r.outcome for r in kernel.store.syscalls(run.id)]
    finally:
        worker.stop()
        await task
        await worker.aclose()
        await kernel.aclose()
        memory.close()
    assert isinstance(chunk, str)
    [hit] = hits
    assert isinstance(hit, Hit) and hit.id == chunk and "key blocks" in hit.text
    assert "agent:alice" not in visible  # listed on the worker, filtered by bob's grants here
    assert outcomes == ["ok", "ok", "ok", "denied"]
    assert worker.counts["done"] == 3  # the denied one never reached the worker


async def test_agentos_worker_help_and_status_without_a_url_say_what_to_do(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "agentos", "worker", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=env)
    assert shown.returncode == 0, shown.stderr
    for option in ("--url", "--concurrency", "--lease", "--attempts", "--tools", "--llm"):
        assert option in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "agentos", "status"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 2
    assert "pass --url redis://host:6379/0 or set AGENTOS_WORKERS_URL" in missing.stderr


async def test_four_workers_under_one_60_rpm_limit_make_60_requests_not_240(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    import signal
    import time

    for _ in range(4):
        workers.start(db_url, concurrency=4, env={"AGENTOS_RPM": "60",
                                                  "AGENTOS_DATA_DIR": str(tmp_path / "w")})
    kernel = kernel_on(db_url, tmp_path)
    kernel.configure_pool("llm:test/echo", max_concurrency=200)  # the workers hold the limit
    try:
        run = kernel.start_run("rpm")
        calls = [asyncio.create_task(kernel.llm(run, f"a{i}", "test/echo",
                                                [{"role": "user", "content": str(i)}]))
                 for i in range(150)]
        started = time.monotonic()
        while sum(c.done() for c in calls) < 60 and time.monotonic() - started < 60:
            await asyncio.sleep(0.05)  # the burst, however slow this machine is
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - started  # longer than the bucket has been in use
        answered = [c.result() for c in calls if c.done()]
        pids = {int(c.content.split()[-1]) for c in answered if c.content}
        kernel.cancel(run)
        await asyncio.gather(*calls, return_exceptions=True)
    finally:
        workers.stop(signal.SIGKILL)  # they hold syscalls waiting for the bucket: no need
        await kernel.aclose()
    # A 60 RPM bucket shared by the four: a burst of 60, then one a second.
    assert 60 <= len(answered) <= 60 + int(elapsed) + 1, (len(answered), elapsed)
    assert len(pids) >= 2  # answered by several workers, one limit
