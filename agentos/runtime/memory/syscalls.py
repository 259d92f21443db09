"""Memory operations as kernel syscalls: the op table the kernel checks grants against, and
`AgentMemory`, the per-agent handle agents use.

``Kernel.memory_call(run, agent, op, namespaces, **arguments)`` looks ``op`` up here, checks the
agent's grants on every namespace the op touches (a refusal raises
:class:`~agentos.errors.MemoryAccessDenied` and is recorded as a ``denied`` syscall), then runs
it on the kernel's `Memory` as a syscall of kind ``memory``. No op reads a namespace it was not
checked for: ``get`` looks ids up only inside the named namespace, ``recall`` filters apply only
inside the checked namespaces, and ``namespaces`` lists only the readable ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentos.errors import UserError
from agentos.runtime.memory.namespaces import GLOBAL, Grants, agent_namespace

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.memory.store import Hit, Memory

__all__ = ["MEMORY_OPS", "AgentMemory", "MemoryOp", "prepare"]


@dataclass(frozen=True, slots=True)
class MemoryOp:
    """One memory operation: the access it needs on each namespace, how many it takes (None:
    any number; 0: none), and what it runs."""

    access: str
    arity: int | None
    run: Callable[[Memory, list[str], dict[str, Any]], Any]


def _one(fn: Callable[..., Any]) -> Callable[[Memory, list[str], dict[str, Any]], Any]:
    return lambda memory, names, args: fn(memory, names[0], **args)


MEMORY_OPS: dict[str, MemoryOp] = {
    "recall": MemoryOp("read", None, lambda m, names, args: m.recall(names, **args)),
    "get": MemoryOp("read", 1, _one(lambda m, ns, **a: m.get(ns, **a))),
    "list": MemoryOp("read", 1, _one(lambda m, ns, **a: m.list(ns, **a))),
    "count": MemoryOp("read", 1, _one(lambda m, ns, **a: m.count(ns, **a))),
    "remember": MemoryOp("write", 1, _one(lambda m, ns, **a: m.remember(ns, **a))),
    "remember_many": MemoryOp("write", 1, _one(lambda m, ns, **a: m.remember_many(ns, **a))),
    "forget": MemoryOp("write", 1, _one(lambda m, ns, **a: m.forget(ns, **a))),
}


def prepare(
    grants: Grants, agent: str, op: str, namespaces: Sequence[str], arguments: dict[str, Any]
) -> Callable[[Memory], Any]:
    """Check ``agent`` may run ``op`` on ``namespaces``; return the call to run on a `Memory`.

    ``op="namespaces"`` takes no namespace and lists the ones ``agent`` may read.

    Raises:
        UserError: unknown op, wrong number of namespaces, malformed namespace.
        MemoryAccessDenied: ``agent`` lacks the access on one of the namespaces.
    """
    names = list(namespaces)
    if op == "namespaces":
        return lambda memory: [ns for ns in memory.namespaces() if grants.can_read(agent, ns)]
    spec = MEMORY_OPS.get(op)
    if spec is None:
        known = ", ".join(sorted([*MEMORY_OPS, "namespaces"]))
        raise UserError(f"unknown memory op {op!r}; known: {known}")
    if not names or (spec.arity is not None and len(names) != spec.arity):
        raise UserError(f"memory op {op!r} takes {spec.arity or 'one or more'} namespace(s), "
                        f"got {names}")
    grants.check(agent, names, spec.access)
    return lambda memory: spec.run(memory, names, arguments)


class AgentMemory:
    """An agent's handle on memory inside one run: every method is a kernel syscall.

    Args:
        kernel: the kernel that checks grants and records the syscalls.
        run: the run the syscalls belong to.
        agent: the agent they are made for.
        namespaces: what ``recall`` searches by default (default: the agent's private namespace
            and ``global``).
        write_namespace: where ``remember`` writes by default (default: the private one).

    Raises (from every method):
        MemoryAccessDenied: a namespace the agent was not granted.
    """

    def __init__(self, kernel: Kernel, run: Run, agent: str, *,
                 namespaces: Sequence[str] | None = None, write_namespace: str | None = None) -> None:
        self.kernel, self.run, self.agent = kernel, run, agent
        self.private = agent_namespace(agent)
        self.namespaces = list(namespaces) if namespaces is not None else [self.private, GLOBAL]
        self.write_namespace = write_namespace or self.private

    async def recall(self, query: str, k: int = 5, filters: Mapping[str, Any] | None = None, *,
                     namespaces: Sequence[str] | None = None, **options: Any) -> list[Hit]:
        return await self.kernel.memory_call(
            self.run, self.agent, "recall", namespaces or self.namespaces,
            query=query, k=k, filters=filters, **options,
        )

    async def remember(self, text: str, metadata: Mapping[str, Any] | None = None, *,
                       namespace: str | None = None) -> str:
        return await self.kernel.memory_call(
            self.run, self.agent, "remember", [namespace or self.write_namespace],
            text=text, metadata=metadata,
        )

    async def get(self, ids: Sequence[str], *, namespace: str | None = None) -> list[Hit]:
        return await self.kernel.memory_call(
            self.run, self.agent, "get", [namespace or self.private], ids=list(ids))

    async def list(self, *, namespace: str | None = None, limit: int = 100,
                   filters: Mapping[str, Any] | None = None) -> list[Hit]:
        return await self.kernel.memory_call(
            self.run, self.agent, "list", [namespace or self.private], limit=limit, filters=filters)

    async def forget(self, ids: Sequence[str] | None = None,
                     filters: Mapping[str, Any] | None = None, *,
                     namespace: str | None = None) -> int:
        return await self.kernel.memory_call(
            self.run, self.agent, "forget", [namespace or self.private], ids=ids, filters=filters)

    async def readable_namespaces(self) -> list[str]:
        return await self.kernel.memory_call(self.run, self.agent, "namespaces", [])
