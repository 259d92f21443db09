"""Faults with real processes: a worker killed with -9 mid-syscall, a poison syscall that kills
every worker that takes it, and redis-server killed and restarted (AOF) during a run."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from agentos.errors import RunError
from agentos.runtime.workers._protocol import Journal
from tests.runtime.workers.conftest import Workers, clean_db_url
from tests.runtime.workers.test_worker import kernel_on
from tests.services import running_redis

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]


async def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_a_worker_killed_mid_syscall_is_replaced_and_the_syscall_completes_once(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    first = workers.start(db_url, lease=1.0)
    log = tmp_path / "calls.log"
    kernel = kernel_on(db_url, tmp_path)
    try:
        run = kernel.start_run("kill -9")
        call = asyncio.create_task(kernel.call_tool(
            run, "a", "record", {"log": str(log), "tag": "t", "hold_s": 60, "hold_once": True}))
        await _wait_for(lambda: f"start t {first.pid}" in _lines(log))
        first.send_signal(signal.SIGKILL)  # mid-syscall: started, never done
        first.wait(timeout=10)
        second = workers.start(db_url, lease=1.0)
        value = await asyncio.wait_for(call, 60)
        kernel.end_run(run, "succeeded")
        records = kernel.store.syscalls(run.id)
        r = aioredis.Redis.from_url(db_url, decode_responses=True)
        keys = await r.keys("agentos:journal:*")
        [entry] = [await Journal(r).entry(k.removeprefix("agentos:journal:")) for k in keys]
        await r.aclose()
    finally:
        await kernel.aclose()
    assert value == f"t {second.pid}"  # redelivered to the other worker, which finished it
    assert _lines(log) == [f"start t {first.pid}", f"start t {second.pid}",
                           f"done t {second.pid}"]  # completed once
    assert [(r.kind, r.name, r.outcome) for r in records] == [("tool", "record", "ok")]
    assert (entry["state"], entry["starts"]) == ("done", "2")  # started twice, finished once


async def test_a_poison_syscall_is_dead_lettered_after_its_attempts_and_the_kernel_told(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    log = tmp_path / "crash.log"
    kernel = kernel_on(db_url, tmp_path)
    try:
        run = kernel.start_run("poison")
        call = asyncio.create_task(kernel.call_tool(run, "a", "crash", {"log": str(log)}))
        for attempt in range(2):  # each delivery kills the worker that took it
            proc = workers.start(db_url, lease=0.5, attempts=2)
            await asyncio.to_thread(proc.wait, 60)
            assert proc.returncode == 1 and len(_lines(log)) == attempt + 1
        workers.start(db_url, lease=0.5, attempts=2)  # the third delivery: poison
        with pytest.raises(RunError, match=r"SyscallPoisoned: the tool syscall on 'tool:crash' "
                                           r"was delivered 3 times"):
            await asyncio.wait_for(call, 60)
        [record] = kernel.store.syscalls(run.id)
        r = aioredis.Redis.from_url(db_url, decode_responses=True)
        dead = await r.xrange("agentos:syscalls:syscalls.tool.dead")
        pending = await r.xpending("agentos:syscalls:syscalls.tool", "workers")
        await r.aclose()
    finally:
        await kernel.aclose()
    assert len(_lines(log)) == 2  # not run a third time
    assert record.outcome == "error"
    [(_, fields)] = dead
    assert '"name":"crash"' in fields["p"]
    assert pending["pending"] == 0  # acked in the source topic once dead-lettered


async def test_redis_killed_and_restarted_mid_run_loses_no_acknowledged_syscall(
    workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    n = 30
    (tmp_path / "redis").mkdir()
    with running_redis(tmp_path / "redis", persist=True) as server:
        url = clean_db_url(server.url)
        procs = [workers.start(url, lease=1.0, concurrency=4) for _ in range(2)]
        kernel = kernel_on(url, tmp_path)
        kernel.configure_pool("tool:record", max_concurrency=8)
        try:
            run = kernel.start_run("outage")
            calls = [asyncio.create_task(kernel.call_tool(
                run, "a", "record", {"log": str(log), "tag": f"t{i}", "hold_s": 0.1}))
                for i in range(n)]
            await _wait_for(lambda: sum(x.startswith("done") for x in _lines(log)) >= 5)
            server.stop(signal.SIGKILL)  # appendfsync always: every answered write is on disk
            finished_before = sum(x.startswith("done") for x in _lines(log))
            await asyncio.sleep(1.0)
            server.start()  # same port and directory
            values = await asyncio.wait_for(asyncio.gather(*calls), 120)
            kernel.end_run(run, "succeeded")
            records = kernel.store.syscalls(run.id)
        finally:
            await kernel.aclose()
        assert all(p.poll() is None for p in procs), workers.output()  # they reconnected
    assert finished_before < n  # the outage really was mid-run
    assert sorted(v.split()[0] for v in values) == sorted(f"t{i}" for i in range(n))
    assert [r.outcome for r in records] == ["ok"] * n  # each recorded once
    done = [x.split()[1] for x in _lines(log) if x.startswith("done")]
    assert set(done) == {f"t{i}" for i in range(n)}
    # A call whose work finished while Redis was down (its journal write failed) runs again
    # on redelivery; every other one ran once.
    assert len(done) - n <= 8, sorted(done)
