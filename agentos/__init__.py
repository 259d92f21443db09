"""agentos: an LLM operating system.

``import agentos`` is light: names below are imported on first use, and nothing here imports
torch, transformers, chromadb, litellm, langgraph or crewai.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentResult",
    "Budget",
    "Coder",
    "BudgetExceeded",
    "Crew",
    "Kernel",
    "Memory",
    "PoolConfig",
    "Run",
    "Tool",
    "ToolRegistry",
    "UserError",
    "__version__",
    "load_settings",
    "tool",
]

_EXPORTS = {
    "Agent": "agentos.agents.base",
    "AgentResult": "agentos.agents.base",
    "Budget": "agentos.runtime.scheduler",
    "Coder": "agentos.agents.coder",
    "BudgetExceeded": "agentos.errors",
    "Crew": "agentos.crew",
    "Kernel": "agentos.runtime.kernel",
    "Memory": "agentos.runtime.memory",
    "PoolConfig": "agentos.runtime.scheduler",
    "Run": "agentos.runtime.kernel",
    "Tool": "agentos.runtime.tool",
    "ToolRegistry": "agentos.runtime.registry",
    "UserError": "agentos.errors",
    "load_settings": "agentos.config",
    "tool": "agentos.runtime.tool",
}

if TYPE_CHECKING:
    from agentos.agents.base import Agent, AgentResult
    from agentos.agents.coder import Coder
    from agentos.config import load_settings
    from agentos.crew import Crew
    from agentos.errors import BudgetExceeded, UserError
    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.memory import Memory
    from agentos.runtime.registry import ToolRegistry
    from agentos.runtime.scheduler import Budget, PoolConfig
    from agentos.runtime.tool import Tool, tool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
