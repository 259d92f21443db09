"""The kernel's scheduler: per-resource queues, policies, rate limits, budgets and retries."""

from __future__ import annotations

from agentos.runtime.scheduler._limits import Budget, TokenBucket, Usage, check_budget
from agentos.runtime.scheduler._loop import (
    Outcome,
    PoolConfig,
    RetryPolicy,
    Scheduler,
    is_transient,
)
from agentos.runtime.scheduler._policy import POLICIES, Pending, PolicyName, PolicyState, choose
from agentos.runtime.scheduler._redis_limits import Permit, RedisLimits

__all__ = [
    "POLICIES",
    "Budget",
    "Outcome",
    "Pending",
    "Permit",
    "PolicyName",
    "PolicyState",
    "PoolConfig",
    "RedisLimits",
    "RetryPolicy",
    "Scheduler",
    "TokenBucket",
    "Usage",
    "check_budget",
    "choose",
    "is_transient",
]
