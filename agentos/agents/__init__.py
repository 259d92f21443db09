"""Built-in agents."""

from __future__ import annotations

from agentos.agents.base import Agent, AgentResult, Step, ToolOutcome

__all__ = ["Agent", "AgentResult", "Step", "ToolOutcome"]
