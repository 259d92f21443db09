"""Other frameworks on the agentos kernel.

- :mod:`agentos.interop.langchain`: ``AgentosChatModel``, a LangChain ``BaseChatModel`` (so a
  LangChain or LangGraph app, e.g. a prebuilt ReAct agent, runs its model calls as kernel
  syscalls);
- :mod:`agentos.interop.crewai`: ``AgentosCrewAILLM``, a CrewAI ``BaseLLM`` (so a CrewAI
  ``Crew`` does).

Their calls are scheduled, budgeted and recorded like any agent's (``agentos runs show``).
Nothing here is imported by ``import agentos``; each module imports its framework.
"""

from __future__ import annotations

__all__: list[str] = []
