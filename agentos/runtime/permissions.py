"""Tool permissions: who may call a tool, whether a human must approve each call, and its limits.

Set per tool name, for any tool (native, LangChain, CrewAI, MCP), in ``agentos.toml``::

    [tool_permissions.git_commit]
    approval = true              # ask the kernel's approver before each call
    agents = ["coder"]           # only these agents may call it
    timeout_s = 30               # per call, on top of the kernel's timeout
    concurrency = 1              # calls at once
    max_output_chars = 2000      # longer output is cut, and the cut is said

or in Python: ``kernel.tool_permissions["git_commit"] = ToolPermissions(approval=True)``.
:meth:`Kernel.call_tool <agentos.runtime.kernel.Kernel.call_tool>` enforces them; a refusal is a
:class:`~agentos.errors.ToolDenied` recorded as a ``denied`` syscall, and the agent loop hands
its message to the LLM.

The approver is ``kernel.approver``: a function ``(agent, tool, arguments) -> bool`` (or a
coroutine function). With none set, a call that needs approval is refused, saying how to set one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Approver", "ToolPermissions", "cap_output"]

Approver = Callable[[str, str, dict[str, Any]], Union[bool, Awaitable[bool]]]


class ToolPermissions(BaseModel):
    """What a tool may do and who may call it; unset fields do not restrict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval: bool = Field(False, description="a human (the kernel's approver) approves each call")
    agents: list[str] | None = Field(None, description="only these agents may call it")
    timeout_s: float | None = Field(None, gt=0, description="seconds per call")
    concurrency: int | None = Field(None, ge=1, description="calls running at once")
    max_output_chars: int | None = Field(None, ge=1, description="longer output is cut")

    def agent_refusal(self, tool: str, agent: str) -> str | None:
        """Why ``agent`` may not call ``tool``, or None when it may."""
        if self.agents is not None and agent not in self.agents:
            allowed = ", ".join(self.agents) or "no agent"
            return (f"agent {agent!r} may not call tool {tool!r}: it is limited to {allowed} "
                    f"(tool_permissions.{tool}.agents)")
        return None


def cap_output(value: Any, limit: int) -> tuple[Any, int | None]:
    """``value``, or its text cut to ``limit`` characters with a note saying so.

    Returns:
        The (possibly cut) value and the original length when it was cut, else None.
    """
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return value, None
    return (text[:limit] + f"... [output cut at {limit} of {len(text)} characters by the "
            "tool's max_output_chars]"), len(text)
