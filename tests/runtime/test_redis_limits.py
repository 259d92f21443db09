"""RedisLimits: pool limits and budgets shared by OS processes through a real redis-server.

The cross-process tests start four Python processes that submit through their own
`Scheduler(limits=RedisLimits(url))` and count what was admitted; the control cases run the same
children with in-process limits and show each process admitting its own share.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentos.config import load_settings
from agentos.errors import BudgetExceeded
from agentos.runtime.kernel import Kernel
from agentos.runtime.scheduler import Budget, PoolConfig, RedisLimits
from agentos.testing import ScriptedLLM

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]

# argv: url ("" = in-process limits), prefix, mode, seconds. Waits for the start key, then for
# `seconds` submits syscalls from 8 tasks; prints how many were admitted ("rpm") or the most
# that ran at once across all processes, read from a Redis counter ("concurrency").
CHILD = """
import asyncio, sys, time
import redis.asyncio as aioredis
from agentos.runtime.scheduler import PoolConfig, RedisLimits, Scheduler

async def main(url, server, prefix, mode, seconds):
    r = aioredis.Redis.from_url(server, decode_responses=True)
    limits = RedisLimits(url, prefix=prefix) if url else None
    if mode == "rpm":
        config = PoolConfig(max_concurrency=100, rpm=60)
    else:
        config = PoolConfig(max_concurrency=2)
    scheduler = Scheduler(config, limits=limits)
    admitted = 0

    async def work():
        nonlocal admitted
        admitted += 1
        if mode == "concurrency":
            now = await r.incr(prefix + "active")
            try:
                await r.eval("if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or 0) "
                             "then redis.call('SET', KEYS[1], ARGV[1]) end", 1, prefix + "max",
                             now)
                await asyncio.sleep(0.02)
            finally:
                await asyncio.shield(r.decr(prefix + "active"))

    while not await r.exists(prefix + "go"):
        await asyncio.sleep(0.01)
    end = time.monotonic() + seconds

    async def loop():
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(scheduler.submit("llm:shared", work),
                                       max(0.01, end - time.monotonic()))
            except asyncio.TimeoutError:
                return

    await asyncio.gather(*(loop() for _ in range(8)))
    print(admitted, flush=True)
    if limits is not None:
        await limits.aclose()
    await r.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
"""


async def _run_children(redis_url: str, shared: bool, mode: str, seconds: float,
                        n: int = 4) -> tuple[list[int], str, float]:
    """Start ``n`` children, let them go at once, return their counts, the prefix and how long
    the window really was (from the go signal to the last child's exit, an upper bound)."""
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_url if shared else "", redis_url, prefix, mode,
             str(seconds)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(n)
    ]
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await asyncio.sleep(0.5)  # let them import and connect; the window starts at "go"
        started = time.monotonic()
        await r.set(prefix + "go", 1)
        outputs = [await asyncio.to_thread(c.communicate, timeout=120) for c in children]
        elapsed = time.monotonic() - started
        for child, (_, errors) in zip(children, outputs, strict=True):
            assert child.returncode == 0, errors
        return [int(out.split()[-1]) for out, _ in outputs], prefix, elapsed
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        await r.aclose()


async def test_four_processes_under_one_rpm_limit_make_the_limits_requests_not_four_times(
    redis_url: str,
) -> None:
    counts, _, elapsed = await _run_children(redis_url, shared=True, mode="rpm", seconds=2.0)
    # A 60 RPM bucket: a burst of 60, then 1 a second, whatever the number of processes.
    assert 60 <= sum(counts) <= 60 + int(elapsed) + 1, (counts, elapsed)
    assert sum(1 for c in counts if c > 0) >= 2, counts  # the limit really was shared


async def test_control_in_process_rpm_limits_admit_each_processes_own_burst(
    redis_url: str,
) -> None:
    counts, _, _ = await _run_children(redis_url, shared=False, mode="rpm", seconds=1.0)
    assert all(c >= 60 for c in counts), counts  # 4 x 60: what the shared limit prevents


async def test_four_processes_never_run_more_than_the_shared_max_concurrency(
    redis_url: str,
) -> None:
    import redis.asyncio as aioredis

    counts, prefix, _ = await _run_children(redis_url, shared=True, mode="concurrency",
                                            seconds=1.5)
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        most = int(await r.get(prefix + "max") or 0)
    finally:
        await r.aclose()
    assert sum(counts) > 4, counts
    assert most == 2, (most, counts)  # 2 slots over all four processes, and both were used


async def test_control_in_process_concurrency_runs_each_processes_own_slots(
    redis_url: str,
) -> None:
    import redis.asyncio as aioredis

    _, prefix, _ = await _run_children(redis_url, shared=False, mode="concurrency", seconds=1.0)
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        most = int(await r.get(prefix + "max") or 0)
    finally:
        await r.aclose()
    assert most > 2, most


async def test_a_slot_whose_holder_stopped_renewing_frees_after_its_lease(
    redis_url: str,
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    config = PoolConfig(max_concurrency=1)
    crashed = RedisLimits(redis_url, prefix=prefix, lease=1.0)
    await crashed.acquire("tool:x", config)  # never released, as by a process killed with -9
    assert await crashed.running("tool:x") == 1
    await crashed.aclose()  # its renewals stop with it
    other = RedisLimits(redis_url, prefix=prefix, lease=1.0)
    try:
        permit = await asyncio.wait_for(other.acquire("tool:x", config), 10)
        assert await other.running("tool:x") == 1
        await other.release(permit)
        assert await other.running("tool:x") == 0
    finally:
        await other.aclose()


async def test_a_running_holder_renews_its_lease_past_the_lease_time(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    config = PoolConfig(max_concurrency=1)
    holder = RedisLimits(redis_url, prefix=prefix, lease=0.3)
    other = RedisLimits(redis_url, prefix=prefix, lease=0.3)
    try:
        permit = await holder.acquire("tool:y", config)
        with pytest.raises(TimeoutError):  # three leases long: renewed, never taken over
            await asyncio.wait_for(other.acquire("tool:y", config), 0.9)
        await holder.release(permit)
        await other.release(await asyncio.wait_for(other.acquire("tool:y", config), 5))
    finally:
        await holder.aclose()
        await other.aclose()


async def test_tpm_is_charged_with_the_estimate_and_settled_with_the_use(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    config = PoolConfig(max_concurrency=10, tpm=600)  # 600 burst, 10 tokens a second
    limits = RedisLimits(redis_url, prefix=prefix)
    try:
        await limits.release(await limits.acquire("llm:m", config, est_tokens=500))
        await limits.settle_tokens("llm:m", config, estimated=500, actual=100)  # 400 back
        await limits.release(await asyncio.wait_for(limits.acquire("llm:m", config, 450), 1))
        with pytest.raises(TimeoutError):  # ~50 left: 450 more needs ~40 s of refill
            await asyncio.wait_for(limits.acquire("llm:m", config, 450), 0.5)
    finally:
        await limits.aclose()


async def test_two_kernels_share_one_runs_token_budget_through_redis(
    redis_url: str, tmp_path: Path
) -> None:
    prefix_env = {"AGENTOS_LIMITS_URL": redis_url}
    kernels = [
        Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / name), **prefix_env}))
        for name in ("a", "b")
    ]
    run_id = uuid.uuid4().hex[:12]
    budget = Budget(tokens=100)
    runs = [k.start_run("shared", budget=budget, run_id=run_id) for k in kernels]
    # Each completion is estimated at 13 tokens (11 prompt + max_tokens 2) and uses 12.
    messages = [{"role": "user", "content": "x" * 28}]
    llm = ScriptedLLM(["ok"] * 100)
    done = refused = 0
    try:
        for i in range(30):
            kernel, run = kernels[i % 2], runs[i % 2]
            try:
                await kernel.llm(run, "a", llm, messages, max_tokens=2)
                done += 1
            except BudgetExceeded as error:
                assert error.scope == "run" and error.resource == "tokens"
                refused += 1
        limits = kernels[0].scheduler.limits
        assert limits is not None
        used = await limits.usage(f"run:{run_id}")
        local = [run.usage.tokens for run in runs]
    finally:
        for k in kernels:
            await k.aclose()
    assert used["tokens"] <= 100 and used["reserved"] == 0, used
    assert used["tokens"] == sum(local)  # the shared count is both kernels' use
    assert done >= 5 and refused >= 10, (done, refused)
    assert all(tokens < 100 for tokens in local)  # neither kernel alone saw the budget run out


async def test_the_limits_url_setting_selects_the_shared_limits(tmp_path: Path) -> None:
    local = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}))
    shared = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path),
                                       "AGENTOS_LIMITS_URL": "redis://127.0.0.1:1/0"}))
    assert local.scheduler.limits is None
    assert isinstance(shared.scheduler.limits, RedisLimits)
    await local.aclose()
    await shared.aclose()
