"""Built-in agents."""

from __future__ import annotations

from agentos.agents.base import Agent, AgentResult, Step, ToolOutcome
from agentos.agents.coder import Coder, CoderResult

__all__ = ["Agent", "AgentResult", "Coder", "CoderResult", "Step", "ToolOutcome"]
