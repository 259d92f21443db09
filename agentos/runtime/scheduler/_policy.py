"""What runs next: a pure function over queue state.

No clocks, threads or agents here. :func:`choose` looks at the pending syscalls of one resource
pool and the policy's bookkeeping (:class:`PolicyState`) at time ``now`` and names the one to
dispatch; :meth:`PolicyState.dispatched` is the only state change, applied by the loop after it
dispatches. Everything is testable with plain values.

Policies:
    fifo: earliest submitted first.
    round_robin: agents take turns; within an agent, FIFO.
    priority: highest ``priority + aging_rate * waited_seconds`` first (aging stops starvation);
        ties go to the earliest submitted.
    fair_share: weighted fair queuing across agents (or crews, by ``share_key``): each key has a
        finish tag that grows by ``cost / weight`` per dispatched call; the head call with the
        smallest finish tag goes next, so service is proportional to weight. A call starts no
        earlier than the start tag of the last dispatched call (the virtual clock), so an agent
        that was idle does not bank credit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["POLICIES", "Pending", "PolicyName", "PolicyState", "choose"]

PolicyName = Literal["fifo", "round_robin", "priority", "fair_share"]
POLICIES: tuple[PolicyName, ...] = ("fifo", "round_robin", "priority", "fair_share")


@dataclass(frozen=True, slots=True)
class Pending:
    """One queued syscall, as the policy sees it."""

    seq: int  # submission order, unique per scheduler
    share_key: str  # who it is charged to: an agent name, or "crew/agent"
    submitted_at: float
    priority: float = 0.0
    weight: float = 1.0
    cost: float = 1.0  # service units it will consume (1 per call, or estimated tokens)


@dataclass(slots=True)
class PolicyState:
    """Bookkeeping a policy carries between decisions."""

    policy: PolicyName = "fifo"
    aging_rate: float = 1.0  # priority points gained per second waited
    last_key: str | None = None  # round robin: who went last
    order: list[str] = field(default_factory=list)  # round robin: keys in first-seen order
    virtual: dict[str, float] = field(default_factory=dict)  # fair share: finish tag per key
    start: dict[str, float] = field(default_factory=dict)  # fair share: start tag of backlogged keys
    clock: float = 0.0  # fair share: the largest start tag dispatched so far

    def start_tag(self, key: str) -> float:
        """Fair share: when ``key``'s next call starts in virtual time."""
        tag = self.start.get(key)
        return max(self.virtual.get(key, 0.0), self.clock) if tag is None else tag

    def dispatched(self, item: Pending, remaining: Sequence[Pending] = ()) -> None:
        """Record that ``item`` was dispatched; ``remaining`` is the queue after it left."""
        if self.policy == "round_robin":
            self.last_key = item.share_key
            if item.share_key not in self.order:
                self.order.append(item.share_key)
        elif self.policy == "fair_share":
            key = item.share_key
            start = self.start_tag(key)
            self.virtual[key] = start + item.cost / item.weight
            self.clock = max(self.clock, start)
            # A key's start tag is pinned when it becomes backlogged and advances by its own
            # service only; a key that goes idle loses its tag and rejoins at the clock.
            backlogged = {p.share_key for p in remaining}
            self.start = {k: v for k, v in self.start.items() if k in backlogged}
            if key in backlogged:
                self.start[key] = self.virtual[key]
            for k in backlogged:
                if k not in self.start:
                    self.start[k] = max(self.virtual.get(k, 0.0), self.clock)


def choose(pending: Sequence[Pending], state: PolicyState, now: float) -> Pending | None:
    """The pending syscall to dispatch next under ``state.policy``, or None when none is queued.

    Pure: neither argument is modified.
    """
    if not pending:
        return None
    policy = state.policy
    if policy == "fifo":
        return min(pending, key=lambda p: p.seq)
    if policy == "priority":
        return max(
            pending,
            key=lambda p: (p.priority + state.aging_rate * max(0.0, now - p.submitted_at), -p.seq),
        )
    if policy == "round_robin":
        return _round_robin(pending, state)
    if policy == "fair_share":
        return min(pending, key=lambda p: (state.start_tag(p.share_key) + p.cost / p.weight, p.seq))
    raise ValueError(f"unknown scheduling policy {policy!r}; choose one of {POLICIES}")


def _round_robin(pending: Sequence[Pending], state: PolicyState) -> Pending:
    first: dict[str, Pending] = {}
    for p in pending:
        if p.share_key not in first or p.seq < first[p.share_key].seq:
            first[p.share_key] = p
    # Known keys rotate in first-seen order; unseen keys join at the end, by arrival.
    ring = [k for k in state.order if k in first]
    ring += sorted((k for k in first if k not in state.order), key=lambda k: first[k].seq)
    if state.last_key in state.order:
        # The next key after the one that went last, in ring order.
        position = {k: i for i, k in enumerate(state.order)}
        last = position[state.last_key]
        known = [k for k in ring if k in position]
        after = [k for k in known if position[k] > last]
        if after:
            return first[after[0]]
        unseen = [k for k in ring if k not in position]
        if unseen:
            return first[unseen[0]]
    return first[ring[0]]
