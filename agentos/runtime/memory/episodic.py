"""Episodic memory: what happened in past runs, searchable ("what did the coder try last time?").

The run store keeps every run and syscall; :func:`remember_run` turns one finished run into one
episode per agent that acted in it (the task, the tools it called with their arguments and
outcomes, how the run ended) and stores it in that agent's private namespace with
``kind="episode"``. :func:`recall_episodes` searches them. Episodes are private like the rest of
an agent's memory: through the kernel, another agent reads them only if granted.
"""

from __future__ import annotations

import json
from typing import Any

from agentos.errors import UserError
from agentos.runtime.memory.namespaces import agent_namespace
from agentos.runtime.memory.store import Hit, Memory
from agentos.runtime.store import RunStore

__all__ = ["episode_text", "recall_episodes", "remember_run"]

_MAX_CALLS = 30


def episode_text(store: RunStore, run_id: str, agent: str) -> str | None:
    """The episode of ``agent`` in run ``run_id`` as text, or None if it made no syscall there.

    Raises:
        UserError: no such run.
    """
    run = store.get_run(run_id)
    if run is None:
        raise UserError(f"no run {run_id!r}; `agentos runs list` shows the recent ones")
    calls = [c for c in store.syscalls(run.id) if c.agent == agent]
    if not calls:
        return None
    lines = [f"Run {run.id} ({run.name}) ended {run.status}.", f"Task: {run.task or '-'}"]
    tools = [c for c in calls if c.kind == "tool"]
    for call in tools[:_MAX_CALLS]:
        arguments = json.dumps(call.detail.get("arguments", {}), default=str)[:300]
        lines.append(f"- tried {call.name}({arguments}): {call.outcome}"
                     + (f" ({call.error[:200]})" if call.error else ""))
    if len(tools) > _MAX_CALLS:
        lines.append(f"- ... and {len(tools) - _MAX_CALLS} more tool calls")
    llm_calls = sum(c.kind == "llm" for c in calls)
    lines.append(f"LLM calls: {llm_calls}; tool calls: {len(tools)}.")
    if run.result:
        lines.append(f"Result: {run.result[:800]}")
    if run.error:
        lines.append(f"Error: {run.error[:400]}")
    return "\n".join(lines)


def remember_run(memory: Memory, store: RunStore, run_id: str) -> dict[str, str]:
    """Store one episode per agent of a run in its private namespace; returns agent -> id.

    Episodes are never merged with look-alikes (two runs of the same task stay two episodes);
    recording the same run again replaces its episodes (ids ``e-<run id>-<agent>``).
    """
    run = store.get_run(run_id)
    if run is None:
        raise UserError(f"no run {run_id!r}; `agentos runs list` shows the recent ones")
    agents = sorted({c.agent for c in store.syscalls(run.id)})
    out: dict[str, str] = {}
    for agent in agents:
        text = episode_text(store, run.id, agent)
        if text is None:
            continue
        episode_id = f"e-{run.id}-{agent}"
        memory.add_chunks(agent_namespace(agent), [episode_id], [text], [{
            "kind": "episode", "run_id": run.id, "status": run.status,
            "started_at": run.started_at,
        }])
        out[agent] = episode_id
    return out


def recall_episodes(memory: Memory, agent: str, query: str, k: int = 3, **options: Any) -> list[Hit]:
    """``agent``'s episodes best matching ``query``, most recent first among the ``k`` best."""
    hits = memory.recall(agent_namespace(agent), query, k=k, filters={"kind": "episode"},
                         **options)
    return sorted(hits, key=lambda h: -float(h.metadata.get("started_at", 0.0)))
