"""The kernel enforces memory grants: no API reads another agent's private memory.

Bob writes a secret to ``agent:bob``; Alice tries every API on it (recall, recall with filters,
get by id, list, count, forget, namespace listing) and gets either a `MemoryAccessDenied`
(recorded as a ``denied`` syscall) or nothing of Bob's. The control cases show Bob, and Alice
once granted, do reach it through the same calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentos.errors import MemoryAccessDenied
from agentos.runtime.kernel import Kernel
from agentos.runtime.memory import CachedEmbedder, Memory
from agentos.runtime.memory.syscalls import AgentMemory

SECRET = "The launch code for project Nightjar is 4417-alpha."


@pytest.fixture
def kernel(tmp_path: Path, embedder: CachedEmbedder):  # type: ignore[no-untyped-def]
    from agentos.config import load_settings

    memory = Memory(tmp_path / "memory", embedder=embedder)
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}),
                    store=tmp_path / "runs.sqlite", memory=memory)
    yield kernel
    asyncio.run(kernel.aclose())
    memory.close()


def test_no_api_reads_another_agents_private_memory(kernel: Kernel) -> None:
    async def scenario() -> None:
        run = kernel.start_run("grants")
        bob = AgentMemory(kernel, run, "bob")
        alice = AgentMemory(kernel, run, "alice")
        secret_id = await bob.remember(SECRET, {"project": "nightjar"})
        await alice.remember("Alice's shopping list: eggs, flour.", {"project": "nightjar"})

        # Control: the owner reaches it through each API.
        assert (await bob.recall("launch code Nightjar"))[0].id == secret_id
        assert [h.id for h in await bob.get([secret_id])] == [secret_id]
        assert [h.id for h in await bob.list()] == [secret_id]
        assert "agent:bob" in await bob.readable_namespaces()

        denied = [
            alice.recall("launch code Nightjar", namespaces=["agent:bob"]),
            alice.recall("launch code", namespaces=["agent:alice", "agent:bob"]),
            alice.recall("launch code", filters={"project": "nightjar"},
                         namespaces=["agent:bob"]),
            alice.get([secret_id], namespace="agent:bob"),
            alice.list(namespace="agent:bob"),
            alice.forget(ids=[secret_id], namespace="agent:bob"),
            alice.forget(filters={"project": "nightjar"}, namespace="agent:bob"),
            alice.remember("overwrite", namespace="agent:bob"),
            kernel.memory_call(run, "alice", "count", ["agent:bob"]),
        ]
        for attempt in denied:
            with pytest.raises(MemoryAccessDenied, match="may not (read|write) memory namespace 'agent:bob'"):
                await attempt

        # Through her own namespaces, nothing of Bob's comes back: not by query, filter or id.
        for hits in (
            await alice.recall("launch code Nightjar 4417"),
            await alice.recall("launch code", filters={"project": "nightjar"}),
            await alice.recall("4417-alpha", mode="lexical"),
            await alice.get([secret_id]),
            await alice.list(filters={"project": "nightjar"}),
        ):
            assert all("4417" not in h.text for h in hits)
        assert await alice.forget(ids=[secret_id]) == 0
        assert "agent:bob" not in await alice.readable_namespaces()
        assert (await bob.get([secret_id]))[0].text == SECRET  # still there, untouched

        # Control: once granted read access, Alice reaches it through the same call.
        kernel.grants.allow("alice", "agent:bob")
        assert (await alice.recall("launch code", namespaces=["agent:bob"]))[0].id == secret_id
        with pytest.raises(MemoryAccessDenied, match="write"):
            await alice.forget(ids=[secret_id], namespace="agent:bob")
        kernel.end_run(run, "succeeded")

        calls = kernel.store.syscalls(run.id)
        memory_calls = [c for c in calls if c.kind == "memory"]
        assert len(memory_calls) == len(calls)
        refusals = [c for c in memory_calls if c.outcome == "denied"]
        assert len(refusals) == len(denied) + 1
        assert all(c.agent == "alice" and "agent:bob" in c.error for c in refusals)
        assert {c.name for c in refusals} >= {"recall", "get", "list", "forget", "remember"}
        ok = [c for c in memory_calls if c.outcome == "ok"]
        assert ok[0].agent == "bob" and ok[0].name == "remember"
        assert ok[0].detail["namespaces"] == ["agent:bob"]

    asyncio.run(scenario())


def test_crew_namespace_is_shared_by_members_only(kernel: Kernel) -> None:
    async def scenario() -> None:
        run = kernel.start_run("crew")
        namespace = kernel.grants.allow_crew("c1", ["researcher", "coder"])
        researcher = AgentMemory(kernel, run, "researcher", write_namespace=namespace)
        coder = AgentMemory(kernel, run, "coder", namespaces=[namespace])
        outsider = AgentMemory(kernel, run, "outsider", namespaces=[namespace])
        finding = await researcher.remember("heapq.heappush keeps the heap invariant.")
        assert (await coder.recall("heap invariant"))[0].id == finding
        with pytest.raises(MemoryAccessDenied):
            await outsider.recall("heap invariant")
        with pytest.raises(MemoryAccessDenied):
            await outsider.remember("x", namespace="global")  # global is read-only by default

    asyncio.run(scenario())
