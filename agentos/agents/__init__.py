"""Built-in agents."""

from __future__ import annotations

from agentos.agents.base import Agent, AgentResult, Step, ToolOutcome
from agentos.agents.coder import Coder, CoderResult
from agentos.agents.desktop import Desktop, DesktopResult
from agentos.agents.researcher import (
    Citation,
    CitationProblem,
    ResearchReport,
    Researcher,
    check_citations,
)

__all__ = [
    "Agent",
    "AgentResult",
    "Citation",
    "CitationProblem",
    "Coder",
    "CoderResult",
    "Desktop",
    "DesktopResult",
    "ResearchReport",
    "Researcher",
    "Step",
    "ToolOutcome",
    "check_citations",
]
