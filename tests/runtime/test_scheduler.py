"""The scheduler loop: concurrency, rate limits, policies under load, retries, timeouts, cancel."""

from __future__ import annotations

import asyncio

import pytest

from agentos.errors import ProviderError, SyscallTimeout
from agentos.runtime.scheduler import PoolConfig, RetryPolicy, Scheduler


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_pool_never_exceeds_max_concurrency() -> None:
    async def main() -> tuple[int, list[int]]:
        s = Scheduler(PoolConfig(max_concurrency=3))
        active = peak = 0

        async def work() -> int:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            return 1

        outs = await asyncio.gather(*(s.submit("llm:x", work, share_key=f"a{i % 4}") for i in range(20)))
        return peak, [o.attempts for o in outs]

    peak, attempts = _run(main())
    assert peak == 3
    assert attempts == [1] * 20


def test_pools_are_independent() -> None:
    async def main() -> int:
        s = Scheduler(PoolConfig(max_concurrency=1))
        active = peak = 0

        async def work() -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

        await asyncio.gather(*(s.submit(f"tool:{i % 2}", work) for i in range(6)))
        return peak

    assert _run(main()) == 2


def test_requests_per_minute_limit_holds_back_the_excess() -> None:
    async def main() -> tuple[int, int, int]:
        s = Scheduler(PoolConfig(max_concurrency=100, rpm=60))  # burst 60, then 1 per second
        done = 0

        async def work() -> None:
            nonlocal done
            done += 1

        tasks = [asyncio.ensure_future(s.submit("llm:x", work)) for _ in range(61)]
        await asyncio.sleep(0.2)
        early, queued = done, s.queued("llm:x")
        await asyncio.gather(*tasks)  # the 61st runs after ~1 s of refill
        return early, queued, done

    early, queued, done = _run(main())
    assert (early, queued, done) == (60, 1, 61)


def test_tokens_per_minute_limit_counts_estimated_tokens() -> None:
    async def main() -> tuple[int, int]:
        s = Scheduler(PoolConfig(max_concurrency=100, tpm=6000))  # burst 6000 tokens, 100/s
        done = 0

        async def work() -> None:
            nonlocal done
            done += 1

        tasks = [asyncio.ensure_future(s.submit("llm:x", work, est_tokens=2500)) for _ in range(3)]
        await asyncio.sleep(0.1)
        early = done
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return early, s.queued("llm:x")

    early, queued_after_cancel = _run(main())
    assert early == 2  # 2 × 2500 fit in 6000; the third waits for refill
    assert queued_after_cancel == 0  # a cancelled waiter leaves the queue


def _dispatch_order(config: PoolConfig, submissions: list[dict]) -> list[str]:
    """The order in which a busy 1-slot pool runs ``submissions`` (labels), once it frees up.

    Each submission is ``{"label": ..., **submit kwargs}``; all are queued while a blocker holds
    the only slot, so the policy alone decides the order.
    """

    async def main() -> list[str]:
        s = Scheduler(config)
        order: list[str] = []
        gate = asyncio.Event()

        async def blocker() -> None:
            await gate.wait()

        first = asyncio.ensure_future(s.submit("llm:x", blocker, share_key="blocker"))
        await asyncio.sleep(0)
        tasks = []
        for sub in submissions:
            kwargs = {k: v for k, v in sub.items() if k != "label"}

            async def work(label: str = sub["label"]) -> None:
                order.append(label)

            tasks.append(asyncio.ensure_future(s.submit("llm:x", work, **kwargs)))
            await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *tasks)
        return order

    return _run(main())


@pytest.mark.parametrize("policy,expected", [
    ("fifo", ["p0", "p1", "p5", "p9"]),
    ("priority", ["p9", "p5", "p1", "p0"]),
])
def test_policy_decides_order_when_the_pool_is_busy(policy: str, expected: list[str]) -> None:
    config = PoolConfig(max_concurrency=1, policy=policy, aging_rate=0.0)  # type: ignore[arg-type]
    subs = [{"label": f"p{p}", "priority": p, "share_key": f"p{p}"} for p in (0, 1, 5, 9)]
    assert _dispatch_order(config, subs) == expected


def test_round_robin_interleaves_agents_under_load() -> None:
    subs = [{"label": f"{a}{i}", "share_key": a} for a in "ab" for i in range(3)]
    order = _dispatch_order(PoolConfig(max_concurrency=1, policy="round_robin"), subs)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_fair_share_serves_agents_in_proportion_to_weight_under_load() -> None:
    subs = [{"label": a, "share_key": a, "weight": w} for a, w in (("heavy", 3.0), ("light", 1.0))
            for _ in range(12)]
    order = _dispatch_order(PoolConfig(max_concurrency=1, policy="fair_share"), subs)
    assert order[:8].count("heavy") == 6 and order[:8].count("light") == 2


def test_transient_errors_are_retried_with_backoff() -> None:
    async def main() -> tuple[str, int, int]:
        s = Scheduler(seed=0)
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ProviderError("503 overloaded", transient=True, status=503)
            return "ok"

        out = await s.submit("llm:x", flaky, retry=RetryPolicy(max_retries=3, base_delay=0.01))
        return out.value, out.attempts, calls

    assert _run(main()) == ("ok", 3, 3)


def test_retries_give_up_after_max_retries() -> None:
    async def main() -> int:
        s = Scheduler(seed=0)
        calls = 0

        async def down() -> None:
            nonlocal calls
            calls += 1
            raise ProviderError("429 rate limited", transient=True, status=429)

        with pytest.raises(ProviderError, match="429"):
            await s.submit("llm:x", down, retry=RetryPolicy(max_retries=2, base_delay=0.001))
        return calls

    assert _run(main()) == 3


def test_permanent_errors_are_not_retried() -> None:
    async def main() -> int:
        s = Scheduler()
        calls = 0

        async def bad() -> None:
            nonlocal calls
            calls += 1
            raise ProviderError("401 bad key", transient=False, status=401)

        with pytest.raises(ProviderError):
            await s.submit("llm:x", bad, retry=RetryPolicy(max_retries=5, base_delay=0.001))
        return calls

    assert _run(main()) == 1


def test_backoff_is_exponential_and_jittered_within_its_cap() -> None:
    import random

    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= cap
        assert max(delays) > 0.6 * cap  # jitter spans the range
    assert RetryPolicy(base_delay=0.5, jitter=False).delay(2, rng) == 2.0


def test_timeout_raises_syscall_timeout_and_frees_the_slot() -> None:
    async def main() -> int:
        s = Scheduler(PoolConfig(max_concurrency=1))

        async def slow() -> None:
            await asyncio.sleep(5)

        with pytest.raises(SyscallTimeout, match="longer than 0.05s"):
            await s.submit("llm:x", slow, timeout=0.05)

        async def fast() -> int:
            return 7

        return (await s.submit("llm:x", fast)).value

    assert _run(main()) == 7


def test_cancel_stops_queued_and_running_syscalls_of_one_run_only() -> None:
    async def main() -> tuple[list[str], str]:
        s = Scheduler(PoolConfig(max_concurrency=1))

        async def slow() -> str:
            await asyncio.sleep(5)
            return "finished"

        async def other() -> str:
            return "other ran"

        running = asyncio.ensure_future(s.submit("llm:x", slow, run_id="r1"))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(s.submit("llm:x", slow, run_id="r1"))
        survivor = asyncio.ensure_future(s.submit("llm:x", other, run_id="r2"))
        await asyncio.sleep(0.01)
        assert s.cancel("r1") == 2
        results = await asyncio.gather(running, queued, return_exceptions=True)
        return [type(r).__name__ for r in results], (await survivor).value

    kinds, survivor = _run(main())
    assert kinds == ["Cancelled", "Cancelled"]
    assert survivor == "other ran"


def test_invalid_pool_config_is_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        PoolConfig(max_concurrency=0)
    with pytest.raises(ValueError, match="unknown policy"):
        PoolConfig(policy="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rpm"):
        PoolConfig(rpm=0)



def test_raising_a_pools_concurrency_starts_its_queued_syscalls_at_once() -> None:
    async def main() -> tuple[int, int]:
        s = Scheduler(PoolConfig(max_concurrency=1))
        release = asyncio.Event()

        async def work() -> None:
            await release.wait()

        tasks = [asyncio.ensure_future(s.submit("tool:x", work)) for _ in range(4)]
        await asyncio.sleep(0)
        before = s.running("tool:x")
        s.configure("tool:x", PoolConfig(max_concurrency=3))
        after = s.running("tool:x")  # no syscall had to finish first
        release.set()
        await asyncio.gather(*tasks)
        return before, after

    assert _run(main()) == (1, 3)


def test_an_occupied_slot_holds_back_syscalls_until_released() -> None:
    async def main() -> tuple[int, int, int]:
        s = Scheduler(PoolConfig(max_concurrency=1))
        release = s.occupy("tool:x")
        task = asyncio.ensure_future(s.submit("tool:x", lambda: asyncio.sleep(0, "ran")))
        await asyncio.sleep(0)
        held = (s.queued("tool:x"), s.running("tool:x"))
        release()
        release()  # a second release changes nothing
        outcome = await task
        assert outcome.value == "ran"
        return (*held, s.running("tool:x"))

    assert _run(main()) == (1, 1, 0)
