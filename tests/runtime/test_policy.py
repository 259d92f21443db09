"""The scheduler's pure "what runs next" decision, one policy at a time, with plain values."""

from __future__ import annotations

import copy

import pytest

from agentos.runtime.scheduler import POLICIES, Pending, PolicyName, PolicyState, choose


def _drain(pending: list[Pending], state: PolicyState, now: float = 0.0) -> list[int]:
    order = []
    queue = list(pending)
    while queue:
        item = choose(queue, state, now)
        assert item is not None
        queue.remove(item)
        state.dispatched(item, queue)
        order.append(item.seq)
    return order


def test_empty_queue_chooses_nothing() -> None:
    assert choose([], PolicyState("fifo"), 0.0) is None


def test_fifo_is_submission_order() -> None:
    items = [Pending(seq, "a" if seq % 2 else "b", submitted_at=seq) for seq in (3, 0, 2, 1)]
    assert _drain(items, PolicyState("fifo")) == [0, 1, 2, 3]


@pytest.mark.parametrize("policy", POLICIES)
def test_choose_is_pure(policy: PolicyName) -> None:
    # Every field of the state set, so a change to any of them shows; three agents, mixed
    # priorities, weights and costs, so every policy has a real decision to make.
    state = PolicyState(
        policy, aging_rate=0.5, last_key="b", order=["b", "a"],
        virtual={"a": 3.0, "b": 1.5}, start={"a": 2.0}, clock=1.0,
    )
    items = [
        Pending(0, "a", 0.0, priority=1.0, weight=2.0, cost=3.0),
        Pending(1, "b", 0.5, priority=0.0, weight=1.0, cost=1.0),
        Pending(2, "c", 1.0, priority=2.0, weight=0.5, cost=2.0),
        Pending(3, "a", 1.5),
    ]
    state_before, items_before = copy.deepcopy(state), copy.deepcopy(items)
    objects_before = [id(p) for p in items]
    first = choose(items, state, 4.0)
    assert first is not None
    assert state == state_before  # dataclass equality: every field
    assert items == items_before and [id(p) for p in items] == objects_before
    # Deterministic: the same inputs (the same objects again, or equal copies) give the same call.
    assert choose(items, state, 4.0) is first
    assert choose(copy.deepcopy(items), copy.deepcopy(state), 4.0) == first
    assert state == state_before and items == items_before


def test_round_robin_alternates_agents() -> None:
    # Agent a submitted 4 calls before b submitted 2: round robin interleaves them.
    items = [Pending(i, "a", i) for i in range(4)] + [Pending(4 + i, "b", 4 + i) for i in range(2)]
    assert _drain(items, PolicyState("round_robin")) == [0, 4, 1, 5, 2, 3]


def test_round_robin_three_agents_keep_their_turns() -> None:
    items = [Pending(i, key, i) for i, key in enumerate("aaabbbccc")]
    assert _drain(items, PolicyState("round_robin")) == [0, 3, 6, 1, 4, 7, 2, 5, 8]


def test_priority_highest_first_ties_fifo() -> None:
    items = [Pending(0, "a", 0, priority=1), Pending(1, "b", 0, priority=5),
             Pending(2, "c", 0, priority=5), Pending(3, "d", 0, priority=0)]
    assert _drain(items, PolicyState("priority", aging_rate=0.0)) == [1, 2, 0, 3]


def test_priority_aging_prevents_starvation() -> None:
    old_low = Pending(0, "low", submitted_at=0.0, priority=0)
    new_high = Pending(1, "high", submitted_at=99.0, priority=5)
    # Slow aging: after 100 s the old call is worth 0 + 0.01*100 = 1 < 5.01, high goes first.
    assert choose([old_low, new_high], PolicyState("priority", aging_rate=0.01), 100.0) is new_high
    # Faster aging: 0 + 0.1*100 = 10 > 5.1, the starved call finally runs.
    assert choose([old_low, new_high], PolicyState("priority", aging_rate=0.1), 100.0) is old_low


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0)])
def test_fair_share_serves_in_proportion_to_weight(weights: tuple[float, float]) -> None:
    wa, wb = weights
    items = [Pending(i, "a", 0.0, weight=wa) for i in range(40)]
    items += [Pending(40 + i, "b", 0.0, weight=wb) for i in range(40)]
    state = PolicyState("fair_share")
    first = _drain(items, state)[:20]
    served_a = sum(1 for seq in first if seq < 40)
    expected_a = 20 * wa / (wa + wb)
    assert abs(served_a - expected_a) <= 1


def test_fair_share_new_agent_does_not_bank_idle_credit() -> None:
    state = PolicyState("fair_share")
    _drain([Pending(i, "a", 0.0) for i in range(10)], state)
    # b arrives late; it starts at a's level, so they now alternate instead of b taking 10 in a row.
    items = [Pending(10 + i, "a", 0.0) for i in range(4)] + [Pending(20 + i, "b", 0.0) for i in range(4)]
    order = _drain(items, state)
    assert order[:4].count(20) + order[:4].count(21) >= 1
    assert sum(1 for s in order[:4] if s >= 20) == 2


def test_fair_share_counts_cost_units() -> None:
    # a's calls cost 10 units each, b's 1: b gets ~10 calls per call of a.
    items = [Pending(i, "a", 0.0, cost=10) for i in range(5)]
    items += [Pending(100 + i, "b", 0.0, cost=1) for i in range(30)]
    order = _drain(items, PolicyState("fair_share"))[:11]
    assert sum(1 for s in order if s < 100) == 1


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scheduling policy"):
        choose([Pending(0, "a", 0.0)], PolicyState("lottery"), 0.0)  # type: ignore[arg-type]
