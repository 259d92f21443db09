"""Run budgets shared by OS processes through a real redis-server (``limits_url``).

Three Python processes open the same run (one ``run_id``, one `Budget`) in their own `Kernel`
with ``AGENTOS_LIMITS_URL`` set, and spend from it with completions until the kernel refuses one
with `BudgetExceeded`. What the three used together must stay within the budget (tokens: at all;
energy: plus at most the one syscall each process had in flight). The control runs the same
children without ``limits_url``: each process then spends the whole budget by itself.

The outage tests start their own redis-server and kill (SIGKILL) or freeze (SIGSTOP) it mid-run:
the next syscall fails with `LimitsUnavailable` within seconds, and is never run unbudgeted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentos.config import load_settings
from agentos.errors import LimitsUnavailable
from agentos.runtime.kernel import Kernel
from agentos.runtime.scheduler import Budget, RedisLimits
from agentos.testing import ScriptedLLM
from tests.services import running_redis

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = 3
# Every completion below: estimated at 13 tokens (11 for 28 prompt characters + max_tokens 2),
# uses 12 (ScriptedLLM's count), and reports 1 J.
MESSAGES = [{"role": "user", "content": "x" * 28}]

# argv: limits_url ("" = in-process budgets), server url, prefix, data dir, run id, budget JSON.
# Waits for the go key, then makes completions one after another until BudgetExceeded; prints
# one JSON line: how many it made, what this process used, and the error it got.
CHILD = """
import asyncio, dataclasses, json, sys
import redis.asyncio as aioredis
from agentos.config import load_settings
from agentos.errors import BudgetExceeded
from agentos.runtime.kernel import Kernel
from agentos.runtime.scheduler import Budget
from agentos.testing import ScriptedLLM

class OneJoule:
    '''ScriptedLLM's replies, each reporting 1 J (as an LLM that meters itself does).'''
    name = "one-joule"

    def __init__(self):
        self.inner = ScriptedLLM(["ok"] * 1000, latency=0.005)

    async def complete(self, messages, tools=None, **params):
        c = await self.inner.complete(messages, tools, **params)
        return dataclasses.replace(c, energy_j=1.0, energy_method="reported: 1 J a call")

async def main(limits_url, server, prefix, data_dir, run_id, budget):
    env = {"AGENTOS_DATA_DIR": data_dir}
    if limits_url:
        env["AGENTOS_LIMITS_URL"] = limits_url
    kernel = Kernel(load_settings(env=env))
    run = kernel.start_run("shared", budget=Budget(**json.loads(budget)), run_id=run_id)
    r = aioredis.Redis.from_url(server, decode_responses=True)
    while not await r.exists(prefix + "go"):
        await asyncio.sleep(0.01)
    llm, done, error = OneJoule(), 0, None
    for _ in range(1000):
        try:
            await kernel.llm(run, "a", llm, [{"role": "user", "content": "x" * 28}], max_tokens=2)
            done += 1
        except BudgetExceeded as exc:
            error = {"scope": exc.scope, "resource": exc.resource, "message": str(exc)}
            break
    print(json.dumps({"done": done, "tokens": run.usage.tokens, "energy_j": run.usage.energy_j,
                      "error": error}), flush=True)
    await r.aclose()
    await kernel.aclose()

asyncio.run(main(*sys.argv[1:7]))
"""


async def _spend(redis_url: str, tmp_path: Path, budget: dict[str, Any], *,
                 shared: bool) -> tuple[list[dict[str, Any]], str]:
    """Run `CHILDREN` children on one run id and budget, let them go at once; their reports and
    the run id."""
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    run_id = uuid.uuid4().hex[:12]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_url if shared else "", redis_url, prefix,
             str(tmp_path / f"child{i}"), run_id, json.dumps(budget)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(CHILDREN)
    ]
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await asyncio.sleep(1.0)  # let them import and open the run; spending starts at "go"
        await r.set(prefix + "go", 1)
        outputs = [await asyncio.to_thread(c.communicate, timeout=120) for c in children]
        for child, (_, errors) in zip(children, outputs, strict=True):
            assert child.returncode == 0, errors
        return [json.loads(out.splitlines()[-1]) for out, _ in outputs], run_id
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        await r.aclose()


async def _shared_usage(redis_url: str, run_id: str) -> dict[str, float]:
    limits = RedisLimits(redis_url)  # the kernel's default prefix
    try:
        return await limits.usage(f"run:{run_id}")
    finally:
        await limits.aclose()


async def test_three_processes_never_spend_more_than_one_shared_token_budget(
    redis_url: str, tmp_path: Path
) -> None:
    reports, run_id = await _spend(redis_url, tmp_path, {"tokens": 300}, shared=True)
    total = sum(r["tokens"] for r in reports)
    # Each admission reserves its estimate (13) and uses 12: no overshoot at all, and the last
    # refusal came with fewer than 13 tokens left for the whole run (or each child's last try).
    assert 300 - 13 * CHILDREN < total <= 300, reports
    assert sum(1 for r in reports if r["done"] > 0) >= 2, reports  # really spent together
    for report in reports:
        assert report["error"]["scope"] == "run" and report["error"]["resource"] == "tokens"
        assert report["error"]["message"].startswith(
            "run budget for tokens exceeded: limit 300, used "), report
        assert "this syscall needs ~13 more" in report["error"]["message"], report
    used = await _shared_usage(redis_url, run_id)
    assert used["tokens"] == total and used["reserved"] == 0, (used, reports)


async def test_three_processes_stop_at_one_shared_energy_budget_plus_one_call_each(
    redis_url: str, tmp_path: Path
) -> None:
    reports, run_id = await _spend(redis_url, tmp_path, {"energy_j": 20.0}, shared=True)
    total = sum(r["energy_j"] for r in reports)
    # Energy is known only after a call, so a call is admitted while the joules used so far are
    # under the budget: each process may have one (1 J) call in flight when it is reached.
    assert 20.0 <= total <= 20.0 + CHILDREN, reports
    assert sum(1 for r in reports if r["done"] > 0) >= 2, reports
    for report in reports:
        assert report["error"]["scope"] == "run" and report["error"]["resource"] == "energy_j"
        assert report["error"]["message"].startswith(
            "run budget for energy_j exceeded: limit 20, used "), report
    used = await _shared_usage(redis_url, run_id)
    assert used["energy_j"] == pytest.approx(total), (used, reports)


async def test_control_without_limits_url_each_process_spends_the_whole_budget(
    redis_url: str, tmp_path: Path
) -> None:
    reports, _ = await _spend(redis_url, tmp_path, {"tokens": 300, "energy_j": 20.0},
                              shared=False)
    # What the shared budget prevents: every process alone goes up to the limit.
    assert all(r["energy_j"] >= 20.0 or r["tokens"] > 300 - 13 for r in reports), reports
    assert sum(r["energy_j"] for r in reports) >= 20.0 * CHILDREN, reports


def _kernel(tmp_path: Path, limits_url: str) -> Kernel:
    return Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path / "data"),
                                     "AGENTOS_LIMITS_URL": limits_url}))


async def test_redis_killed_between_syscalls_refuses_the_next_with_limits_unavailable(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as server:
        kernel = _kernel(tmp_path, server.url)
        run = kernel.start_run("outage", budget=Budget(tokens=1000))
        llm = ScriptedLLM(["ok"] * 10)
        try:
            await kernel.llm(run, "a", llm, MESSAGES, max_tokens=2)
            server.stop(signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises(LimitsUnavailable) as info:
                await asyncio.wait_for(kernel.llm(run, "a", llm, MESSAGES, max_tokens=2), 60)
            elapsed = time.monotonic() - started
            records = kernel.store.syscalls(run.id)
        finally:
            await kernel.aclose()
    assert elapsed < 10, elapsed  # redis-py's few reconnects, not a hang
    message = str(info.value)
    assert info.value.url == server.url
    assert f"Redis at {server.url}" in message and "ConnectionError" in message, message
    assert "was refused" in message and "AGENTOS_LIMITS_URL" in message, message
    assert len(llm.calls) == 1  # the second completion never ran without its budget
    assert [r.outcome for r in records] == ["ok", "error"], records
    assert "LimitsUnavailable" in (records[-1].error or ""), records[-1]


async def test_redis_killed_during_a_syscall_says_its_use_could_not_be_charged(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as server:
        kernel = _kernel(tmp_path, server.url)
        run = kernel.start_run("outage", budget=Budget(tokens=1000))
        inner = ScriptedLLM(["ok"] * 10)

        class KillsRedis:
            name = "kills-redis"

            async def complete(self, messages: Any, tools: Any = None, **params: Any) -> Any:
                await asyncio.to_thread(server.stop, signal.SIGKILL)
                return await inner.complete(messages, tools, **params)

        try:
            with pytest.raises(LimitsUnavailable) as info:
                await asyncio.wait_for(kernel.llm(run, "a", KillsRedis(), MESSAGES,
                                                  max_tokens=2), 60)
            outcomes = [r.outcome for r in kernel.store.syscalls(run.id)]
        finally:
            await kernel.aclose()
    message = str(info.value)
    assert "the syscall finished, but its use (12 tokens" in message, message
    assert "could not be charged to the shared budget" in message, message
    assert run.usage.tokens == 12  # kept in this process's run usage and record
    assert outcomes == ["ok"]


async def test_a_frozen_redis_fails_the_budget_check_within_its_timeout(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        assert server.proc is not None
        limits = RedisLimits(server.url, timeout=0.5)
        budget = Budget(tokens=100)
        try:
            await limits.reserve("run", "run:frozen", budget, 10)  # connected and working
            os.kill(server.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
            started = time.monotonic()
            with pytest.raises(LimitsUnavailable, match="TimeoutError"):
                await asyncio.wait_for(limits.reserve("run", "run:frozen", budget, 10), 60)
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            await limits.aclose()
    assert elapsed < 3, elapsed  # one 0.5 s wait for the reply (not retried), not forever


# argv: redis url, budget key. Reserves 200 tokens of a 300-token budget with a 1 s lease, says
# so, then hangs as a syscall that never ends (renewing its lease) until it is killed.
HOLDER = """
import asyncio, sys
from agentos.runtime.scheduler import Budget, RedisLimits

async def main(url, key):
    limits = RedisLimits(url, lease=1.0)
    await limits.reserve("run", key, Budget(tokens=300), 200)
    print("reserved", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:3]))
"""


async def test_a_reservation_of_a_killed_process_goes_back_to_the_budget_after_its_lease(
    redis_url: str,
) -> None:
    from agentos.errors import BudgetExceeded

    key = f"run:{uuid.uuid4().hex[:12]}"
    budget = Budget(tokens=300)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_url, key], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    limits = RedisLimits(redis_url, lease=1.0)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 60)
        assert line.strip() == "reserved", holder.stderr.read() if holder.poll() else line
        # Alive, it renews its lease: 200 of the 300 stay reserved well past one lease.
        await asyncio.sleep(2.5)
        with pytest.raises(BudgetExceeded):
            await limits.reserve("run", key, budget, 200)
        assert (await limits.usage(key))["reserved"] == 200
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        await asyncio.sleep(1.6)  # the lease runs out; nobody renews it
        reservation = await limits.reserve("run", key, budget, 200)
        used = await limits.usage(key)
        assert used["reserved"] == 200 and used["expired"] == 200, used
        await limits.settle(key, reservation, 150, 0.0)
        used = await limits.usage(key)
        assert used["reserved"] == 0 and used["tokens"] == 150, used
    finally:
        if holder.poll() is None:
            holder.kill()
        await limits.aclose()


# argv: redis url, budget key. One reserve against Budget(wall_s=1.0) in a fresh process;
# prints "admitted" or the BudgetExceeded's resource and message.
LATECOMER = """
import asyncio, sys
from agentos.errors import BudgetExceeded
from agentos.runtime.scheduler import Budget, RedisLimits

async def main(url, key):
    limits = RedisLimits(url)
    try:
        reservation = await limits.reserve("run", key, Budget(wall_s=1.0), 10)
        await limits.settle(key, reservation, 10, 0.0)
        print("admitted")
    except BudgetExceeded as exc:
        print(exc.resource, exc)
    await limits.aclose()

asyncio.run(main(*sys.argv[1:3]))
"""


async def test_a_process_joining_a_run_late_gets_only_the_wall_time_left(redis_url: str) -> None:
    """The run's wall clock starts at its first syscall in any process: a process that joins
    after the run's wall_s has passed is refused, though its own clock has barely started."""
    key = f"run:{uuid.uuid4().hex[:12]}"

    def latecomer() -> str:
        out = subprocess.run([sys.executable, "-c", LATECOMER, redis_url, key], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    limits = RedisLimits(redis_url)
    try:
        first = await limits.reserve("run", key, Budget(wall_s=1.0), 10)
        await limits.settle(key, first, 10, 0.0)
        await asyncio.sleep(1.1)
        said = await asyncio.to_thread(latecomer)
    finally:
        await limits.aclose()
    match = re.match(r"wall_s run budget for wall_s exceeded: limit 1, used ([\d.]+)\. ", said)
    assert match and float(match.group(1)) >= 1.1, said  # seconds since the first process began


async def test_closing_ends_the_listener_even_where_its_cancellation_is_swallowed(
    redis_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some redis-py versions swallow a cancellation inside ``PubSub.get_message``; the
    listener then looped on, and a clean-clone CI run hung at the event loop's teardown."""
    limits = RedisLimits(redis_url)
    real = limits._redis.pubsub

    def swallowing_pubsub(**options: Any) -> Any:
        pubsub = real(**options)
        get_message = pubsub.get_message

        async def swallowing(*args: Any, **kwargs: Any) -> Any:
            try:
                return await get_message(*args, **kwargs)
            except asyncio.CancelledError:
                return None

        pubsub.get_message = swallowing
        return pubsub

    monkeypatch.setattr(limits._redis, "pubsub", swallowing_pubsub)
    limits._start_background()
    listener = limits._listener
    await asyncio.sleep(0.3)  # subscribed, waiting in get_message
    started = time.monotonic()
    await limits.aclose()
    assert listener is not None and listener.done()
    assert time.monotonic() - started < 4.0  # it ended, not the 5 s bound giving up on it
