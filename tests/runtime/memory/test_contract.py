"""The memory contract: every backend (embedded Chroma, Chroma server) passes these."""

from __future__ import annotations

import pytest

from agentos.errors import UserError
from tests.runtime.memory.conftest import MemoryFactory

FACTS = [
    ("The Eiffel Tower is in Paris and was finished in 1889.", "geo"),
    ("Python lists are mutable sequences; tuples are immutable.", "python"),
    ("A heap queue keeps the smallest item at index zero.", "python"),
    ("Bananas are a yellow fruit rich in potassium.", "food"),
    ("The zxqv protocol frames every packet with a 4-byte length prefix.", "net"),
]


@pytest.fixture
def memory(make_memory: MemoryFactory):  # type: ignore[no-untyped-def]
    memory = make_memory()
    memory.remember_many("global", [t for t, _ in FACTS], [{"topic": c} for _, c in FACTS])
    return memory


def test_recall_finds_the_relevant_memory_with_every_hit_field(memory) -> None:  # type: ignore[no-untyped-def]
    hits = memory.recall("global", "which sequence type cannot be changed?", k=3)
    assert hits[0].text == FACTS[1][0]
    hit = hits[0]
    assert hit.namespace == "global" and hit.id.startswith("m-") and hit.score > 0
    assert hit.metadata["topic"] == "python"
    as_json = hit.as_dict()
    assert {"source", "chunk_id", "score", "text", "position"} <= set(as_json)
    assert as_json["chunk_id"] == hit.id


@pytest.mark.parametrize("mode", ["hybrid", "vector", "lexical"])
def test_each_mode_ranks_the_matching_memory_first(memory, mode: str) -> None:  # type: ignore[no-untyped-def]
    hits = memory.recall("global", "zxqv packet framing", k=2, mode=mode)
    assert hits[0].text == FACTS[4][0]


def test_lexical_half_finds_a_rare_token_that_vectors_rank_low(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    filler = [f"Notes about the weather on day {i}: mild, some clouds, light wind." for i in range(30)]
    memory.remember_many("global", [*filler, "Error code QX-7731 means the fuse blew."])
    hybrid = memory.recall("global", "QX-7731", k=3)
    assert "QX-7731" in hybrid[0].text


def test_filters_restrict_recall_get_and_list(memory) -> None:  # type: ignore[no-untyped-def]
    hits = memory.recall("global", "fruit", k=5, filters={"topic": "python"})
    assert hits and all(h.metadata["topic"] == "python" for h in hits)
    assert {h.metadata["topic"] for h in memory.list("global", filters={"topic": "geo"})} == {"geo"}
    lexical = memory.recall("global", "bananas potassium", k=5, filters={"topic": "geo"},
                            mode="lexical")
    assert lexical == []


def test_exact_and_near_duplicates_merge(make_memory: MemoryFactory) -> None:
    memory = make_memory(dedup_threshold=0.95)
    first = memory.remember("agent:a", "Meeting moved to Thursday at 3 pm.")
    assert memory.remember("agent:a", "Meeting  moved to Thursday at 3 pm.") == first
    assert memory.remember("agent:a", "meeting moved to thursday at 3 PM!") == first
    batch = memory.remember_many("agent:a", ["Buy milk.", "Buy milk."])
    assert batch[0] == batch[1]
    runbook = ("The deployment runbook says: drain the node, cordon it, upgrade the kubelet, "
               "then uncordon it and watch the pods come back.")
    kept = memory.remember("agent:a", runbook)
    assert memory.remember("agent:a", runbook.replace("watch the pods", "watch pods")) == kept
    assert memory.remember("agent:a", runbook.replace("kubelet", "kernel")) != kept
    assert memory.count("agent:a") == 4


def test_get_and_forget_by_id_and_by_filter(memory) -> None:  # type: ignore[no-untyped-def]
    hit = memory.recall("global", "Eiffel Tower", k=1)[0]
    assert [h.text for h in memory.get("global", [hit.id, "m-nope"])] == [hit.text]
    assert memory.forget("global", ids=[hit.id]) == 1
    assert memory.get("global", [hit.id]) == []
    assert all(h.id != hit.id for h in memory.recall("global", "Eiffel Tower", k=5))
    assert all(h.id != hit.id for h in memory.recall("global", "Eiffel", k=5, mode="lexical"))
    assert memory.forget("global", filters={"topic": "python"}) == 2
    assert memory.count("global") == 2
    with pytest.raises(UserError, match="ids or filters"):
        memory.forget("global")


def test_namespaces_are_separate_collections(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    memory.remember("agent:a", "alpha secret: the vault code is 1234")
    memory.remember("agent:b", "bravo note: lunch at noon")
    assert memory.namespaces() == ["agent:a", "agent:b"]
    assert all("vault" not in h.text for h in memory.recall("agent:b", "vault code", k=5))
    assert memory.recall(["agent:a", "agent:b"], "vault code", k=1)[0].namespace == "agent:a"
    assert memory.recall("crew:none", "anything") == []
    assert memory.drop("agent:a") == 1 and memory.namespaces() == ["agent:b"]


def test_bad_input_says_what_to_do(memory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="empty query"):
        memory.recall("global", "   ")
    with pytest.raises(UserError, match="empty text"):
        memory.remember("global", "")
    with pytest.raises(UserError, match="bad memory namespace"):
        memory.remember("people", "x")
    with pytest.raises(UserError, match="values must be"):
        memory.remember("global", "x y z", {"tags": ["a"]})
    with pytest.raises(UserError, match="k must be"):
        memory.recall("global", "x", k=0)


def test_diversity_spreads_hits_over_distinct_memories(make_memory: MemoryFactory) -> None:
    memory = make_memory(dedup_threshold=1.01)  # keep the near-copies apart
    copies = [f"The cache is flushed every {n} minutes by the cron job." for n in (5, 6, 7)]
    memory.remember_many("global", [*copies, "Cache misses are logged to the metrics server."])
    plain = memory.recall("global", "how often is the cache flushed", k=2)
    diverse = memory.recall("global", "how often is the cache flushed", k=2, diversity=0.7)
    assert all(h.text in copies for h in plain)
    assert any(h.text not in copies for h in diverse)
