from __future__ import annotations

import pytest

from agentos.errors import BudgetExceeded
from agentos.runtime.scheduler import Budget, TokenBucket, Usage, check_budget


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket.per_minute(60, now=0.0)  # 60 burst, 1/s
    for _ in range(60):
        assert bucket.wait_time(1, 0.0) == 0.0
        bucket.take(1, 0.0)
    assert bucket.wait_time(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait_time(1, 0.5) == pytest.approx(0.5)
    assert bucket.wait_time(1, 1.0) == 0.0


def test_token_bucket_debt_is_repaid_before_next_request() -> None:
    bucket = TokenBucket.per_minute(600, now=0.0)  # 10 tokens/s
    bucket.take(900, 0.0)  # used more than the capacity: level -300
    assert bucket.wait_time(100, 0.0) == pytest.approx(40.0)


def test_token_bucket_oversized_request_waits_for_full_bucket_not_forever() -> None:
    bucket = TokenBucket.per_minute(60, now=0.0)
    bucket.take(60, 0.0)
    assert bucket.wait_time(1000, 0.0) == pytest.approx(60.0)


def test_bad_bucket_and_budget_values_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity > 0"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match="Budget.tokens"):
        Budget(tokens=-1)


def test_check_budget_tokens_would_exceed() -> None:
    usage = Usage(prompt_tokens=80, started_at=0.0)
    check_budget("run", Budget(tokens=100), usage, 0.0, est_tokens=20)
    with pytest.raises(BudgetExceeded) as info:
        check_budget("run", Budget(tokens=100), usage, 0.0, est_tokens=21)
    assert info.value.resource == "tokens" and info.value.scope == "run"
    assert "Raise the budget" in str(info.value)


@pytest.mark.parametrize(
    ("budget", "usage", "now", "resource"),
    [
        (Budget(cost=0.01), Usage(cost=0.01, started_at=0.0), 0.0, "cost"),
        (Budget(energy_j=5.0), Usage(energy_j=6.0, started_at=0.0), 0.0, "energy_j"),
        (Budget(wall_s=10.0), Usage(started_at=0.0), 10.5, "wall_s"),
    ],
)
def test_check_budget_each_resource(budget: Budget, usage: Usage, now: float, resource: str) -> None:
    with pytest.raises(BudgetExceeded) as info:
        check_budget("agent:x", budget, usage, now)
    assert info.value.resource == resource


def test_no_budget_never_raises() -> None:
    check_budget("run", None, Usage(prompt_tokens=10**9, started_at=0), 1e9, est_tokens=10**9)
