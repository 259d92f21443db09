"""The crew journal: every completed syscall of a crew run, keyed by a syscall id, so a resumed
run replays what was already done instead of doing it again.

A task visit sees the kernel through a :class:`JournaledKernel`. Its n-th LLM call, tool call,
memory operation or publish gets the syscall id ``"<task>/<visit>/<kind><n>"``; the id is the
same when the visit runs again after a crash, because a visit's syscalls happen in a fixed order. Before a syscall the
journal is consulted: a recorded result for the same id *and the same request* (a digest of the
messages or arguments) is returned as it was, without calling the model or the tool, and the
run store records it with outcome ``replayed``. Only a syscall that was in flight when the
process died runs again (at-least-once for that one call, exactly-once for completed ones).

Human approval of code-running tools also lives here (``interrupt`` of LangGraph), because it
must happen right before the tool call it guards.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from agentos.errors import ApprovalRejected, ToolFailed
from agentos.runtime.llm.types import Completion, Message, ToolCall

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.store import RunStore

__all__ = ["Journal", "JournaledKernel"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS crew_journal ("
    " run_id TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, digest TEXT NOT NULL,"
    " result TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (run_id, key))"
)


def digest(value: Any) -> str:
    """A stable digest of a request (JSON with sorted keys)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Journal:
    """Completed syscalls of one crew run, in the run store's database.

    Args:
        store: the run store (its SQLite file holds the ``crew_journal`` table).
        run_id: the crew run.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        store.execute(_SCHEMA)

    def get(self, key: str, request_digest: str) -> dict[str, Any] | None:
        """The recorded result of syscall ``key``, if it was made with the same request."""
        rows = self.store.execute(
            "SELECT digest, result FROM crew_journal WHERE run_id=? AND key=?", (self.run_id, key)
        )
        if not rows or rows[0][0] != request_digest:
            return None
        return json.loads(rows[0][1])

    def put(self, key: str, kind: str, request_digest: str, result: dict[str, Any]) -> None:
        """Record syscall ``key`` as completed with ``result`` (committed before returning)."""
        self.store.execute(
            "INSERT OR REPLACE INTO crew_journal (run_id, key, kind, digest, result, created_at) "
            "VALUES (?,?,?,?,?,?)",
            (self.run_id, key, kind, request_digest, json.dumps(result, default=str), time.time()),
        )

    def entries(self) -> list[tuple[str, str]]:
        """``(key, kind)`` of every recorded syscall, in the order they completed."""
        rows = self.store.execute(
            "SELECT key, kind FROM crew_journal WHERE run_id=? ORDER BY created_at, rowid",
            (self.run_id,),
        )
        return [(k, kind) for k, kind in rows]


class JournaledKernel:
    """The kernel as one task visit sees it: LLM calls, tool calls and publishes go through the
    journal; everything else is the kernel itself.

    Args:
        kernel: the real kernel.
        journal: the crew run's journal.
        scope: ``"<task>/<visit>"``, the prefix of this visit's syscall ids.
        approve_tools: tool names that need a human's approval before they run (empty: none).
        rerun_tools: tools run again instead of replayed on resume: side-effect-free checks
            whose result the agent also keeps in memory (the Coder's ``run_tests`` sets the
            outcome it checks "tests passed" against).
    """

    def __init__(
        self, kernel: Kernel, journal: Journal, scope: str, *,
        approve_tools: Collection[str] = (), rerun_tools: Collection[str] = (),
    ) -> None:
        self._kernel = kernel
        self._journal = journal
        self._scope = scope
        self._approve_tools = set(approve_tools)
        self._rerun_tools = set(rerun_tools)
        self._counts: dict[str, int] = {}
        self.replayed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kernel, name)

    def _next_key(self, kind: str) -> str:
        n = self._counts.get(kind, 0)
        self._counts[kind] = n + 1
        return f"{self._scope}/{kind}{n}"

    def _record_replay(self, run: Run, agent: str, kind: str, name: str, key: str,
                       p: int = 0, c: int = 0, cost: float = 0.0, energy: float = 0.0) -> None:
        self.replayed += 1
        run.usage.add(kind, p, c, cost, energy)
        run.agent(agent).add(kind, p, c, cost, energy)
        self._kernel.store.record_syscall(
            run.id, agent, kind, f"{kind}:{name}", name, time.time(), 0.0, 0.0, 0, "replayed",
            p, c, cost, energy, None, {"syscall_id": key},
        )

    async def llm(
        self, run: Run, agent: str, model: Any, messages: list[Message],
        tools: list[dict[str, Any]] | None = None, **kwargs: Any,
    ) -> Completion:
        """:meth:`Kernel.llm <agentos.runtime.kernel.Kernel.llm>`, replayed when journaled."""
        key = self._next_key("llm")
        request = digest({"messages": messages, "tools": [t.get("function", t).get("name")
                                                          for t in tools or ()]})
        recorded = self._journal.get(key, request)
        if recorded is not None:
            completion = _completion_from(recorded)
            self._record_replay(run, agent, "llm", completion.model or "replayed", key,
                                completion.prompt_tokens, completion.completion_tokens,
                                completion.cost, completion.energy_j)
            return completion
        completion = await self._kernel.llm(run, agent, model, messages, tools, **kwargs)
        self._journal.put(key, "llm", request, _completion_to(completion))
        return completion

    async def call_tool(
        self, run: Run, agent: str, name: str, arguments: dict[str, Any], **kwargs: Any
    ) -> Any:
        """:meth:`Kernel.call_tool <agentos.runtime.kernel.Kernel.call_tool>`, replayed when
        journaled; asks for approval first when ``name`` is in ``approve_tools``.

        Raises:
            ApprovalRejected: a human rejected the call.
            ToolFailed: the tool failed (now, or when it ran before the crash).
        """
        key = self._next_key("tool")
        request = digest({"name": name, "arguments": arguments})
        permissions = self._kernel.tool_permissions.get(name)
        needs_kernel_approval = permissions is not None and permissions.approval
        if name in self._approve_tools or needs_kernel_approval:
            # Before the journal: a replayed visit asks again and LangGraph answers from the
            # decisions already given, so answers stay matched to their calls. A tool whose
            # kernel permissions need approval is asked here, through the crew's interrupt,
            # and the kernel records that decision instead of asking again.
            self._ask_approval(run, agent, name, arguments)
            if needs_kernel_approval:
                kwargs["approved_by"] = "crew"
        recorded = None if name in self._rerun_tools else self._journal.get(key, request)
        if recorded is not None:
            self._record_replay(run, agent, "tool", name, key)
            if "error" in recorded:
                raise ToolFailed(recorded["error"])
            return recorded["value"]
        try:
            value = await self._kernel.call_tool(run, agent, name, arguments, **kwargs)
        except ToolFailed as error:
            self._journal.put(key, "tool", request, {"error": str(error)})
            raise
        self._journal.put(key, "tool", request, {"value": _jsonable(value)})
        return value

    def _ask_approval(self, run: Run, agent: str, name: str, arguments: dict[str, Any]) -> None:
        from langgraph.types import interrupt

        key = self._next_key("approval")
        question = {
            "kind": "approval", "syscall_id": key, "agent": agent, "tool": name,
            "arguments": arguments,
            "question": (f"{agent} wants to run the code-running tool {name}. Approve?"
                         if name in self._approve_tools else
                         f"{agent} wants to call {name}, which needs approval. Approve?"),
        }
        # Always call interrupt(): LangGraph hands this visit's answers back by call order.
        answer = interrupt(question)
        approved = bool(answer.get("approved")) if isinstance(answer, dict) else bool(answer)
        request = digest(question)
        if self._journal.get(key, request) is None:  # record each decision once
            decision = {"approved": approved, "tool": name, "agent": agent,
                        "by": answer.get("by", "human") if isinstance(answer, dict) else "human"}
            self._journal.put(key, "approval", request, decision)
            self._kernel.store.record_message(run.id, f"crew.{run.id}.approvals", "human",
                                              {**decision, "syscall_id": key})
        if not approved:
            raise ApprovalRejected(f"a human rejected {agent} running {name}")

    async def memory_call(
        self, run: Run, agent: str, op: str, namespaces: Any, **arguments: Any
    ) -> Any:
        """:meth:`Kernel.memory_call <agentos.runtime.kernel.Kernel.memory_call>`, replayed
        when journaled (recalled hits come back as they were)."""
        key = self._next_key("memory")
        request = digest({"op": op, "namespaces": namespaces, "arguments": arguments})
        recorded = self._journal.get(key, request)
        if recorded is not None:
            self._record_replay(run, agent, "memory", op, key)
            return _memory_result_from(recorded)
        value = await self._kernel.memory_call(run, agent, op, namespaces, **arguments)
        self._journal.put(key, "memory", request, _memory_result_to(value))
        return value

    async def publish(
        self, run: Run, agent: str, topic: str, payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Any:
        """:meth:`Kernel.publish <agentos.runtime.kernel.Kernel.publish>`, once per syscall id."""
        key = self._next_key("publish")
        request = digest({"topic": topic, "payload": payload})
        if self._journal.get(key, request) is not None:
            self._record_replay(run, agent, "publish", topic, key)
            return None
        message = await self._kernel.publish(run, agent, topic, payload, headers)
        self._journal.put(key, "publish", request, {"topic": topic})
        return message


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _completion_to(c: Completion) -> dict[str, Any]:
    return {
        "content": c.content,
        "tool_calls": [
            {"id": t.id, "name": t.name, "arguments": t.arguments, "error": t.error}
            for t in c.tool_calls
        ],
        "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
        "cost": c.cost, "energy_j": c.energy_j, "model": c.model, "finish_reason": c.finish_reason,
    }


def _completion_from(d: dict[str, Any]) -> Completion:
    return Completion(
        d["content"], [ToolCall(**t) for t in d["tool_calls"]], d["prompt_tokens"],
        d["completion_tokens"], d["cost"], d["energy_j"], d["model"], d["finish_reason"],
    )


def _memory_result_to(value: Any) -> dict[str, Any]:
    from agentos.runtime.memory.store import Hit

    if isinstance(value, list) and value and all(isinstance(h, Hit) for h in value):
        return {"hits": [h.as_dict() for h in value]}
    return {"value": _jsonable(value)}


def _memory_result_from(recorded: dict[str, Any]) -> Any:
    if "hits" not in recorded:
        return recorded["value"]
    from agentos.runtime.memory.store import Hit

    return [Hit(h["chunk_id"], h["text"], h["namespace"], h["source"], h["position"],
                h["score"], h["metadata"], h.get("similarity")) for h in recorded["hits"]]
