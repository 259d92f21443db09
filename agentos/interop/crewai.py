"""A CrewAI LLM whose completions are agentos kernel syscalls.

Give it to CrewAI agents and a CrewAI ``Crew`` runs on the kernel: its model calls are
scheduled, budgeted and recorded in the run store (``agentos runs show``)::

    from crewai import Agent, Crew, Task
    from agentos.interop.crewai import AgentosCrewAILLM

    llm = AgentosCrewAILLM(model="local/qwen2.5-coder-1.5b", agent="crewai")
    writer = Agent(role="writer", goal="...", backstory="...", llm=llm)
    Crew(agents=[writer], tasks=[Task(description="...", expected_output="...", agent=writer)]).kickoff()

CrewAI drives tools through its text (ReAct) protocol with this LLM
(``supports_function_calling()`` is False), and runs the tools itself.
Set ``CREWAI_DISABLE_TELEMETRY=true`` and ``OTEL_SDK_DISABLED=true`` to keep CrewAI offline.
"""

from __future__ import annotations

from typing import Any

from crewai.llms.base_llm import BaseLLM
from pydantic import ConfigDict, Field, PrivateAttr

from agentos.interop._bridge import KernelBinding, run_sync

__all__ = ["AgentosCrewAILLM"]


class AgentosCrewAILLM(BaseLLM):
    """A CrewAI ``BaseLLM`` backed by :meth:`agentos.Kernel.llm`.

    Args:
        model: a litellm model string (CrewAI requires a name); the calls go to ``llm`` when
            given, else to this model through the kernel.
        llm: an LLM object to call instead of the model string (e.g. a scripted test LLM).
        kernel: the kernel; default: a new one from the settings.
        agent: the agent name the calls are recorded and budgeted under.
        run: the kernel run the calls belong to; default: one opened on the first call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: Any = Field(default=None, exclude=True)
    kernel: Any = Field(default=None, exclude=True)
    agent: str = "crewai"
    run: Any = Field(default=None, exclude=True)
    _binding: KernelBinding | None = PrivateAttr(default=None)

    @property
    def binding(self) -> KernelBinding:
        if self._binding is None:
            target = self.llm if self.llm is not None else self.model
            self._binding = KernelBinding(self.kernel, target, self.agent, self.run)
        return self._binding

    @property
    def run_id(self) -> str:
        """The id of the kernel run the calls are recorded in (opened now if needed)."""
        return self.binding.run.id

    def supports_function_calling(self) -> bool:
        return False

    def supports_stop_words(self) -> bool:
        return True

    def get_context_window_size(self) -> int:
        return 32768

    def call(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        """One completion through the kernel; returns the text (stop words applied).

        Raises:
            BudgetExceeded, ProviderError, SyscallTimeout: as :meth:`Kernel.llm` raises them.
        """
        return run_sync(self.acall(messages, tools, callbacks, available_functions, from_task,
                                   from_agent, response_model))

    async def acall(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        """Async :meth:`call`."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        chat = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages]
        params: dict[str, Any] = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = int(self.max_tokens)
        if self.stop:
            params["stop"] = list(self.stop)
        completion = await self.binding.acomplete(chat, None, **params)
        return self._apply_stop_words(completion.content or "")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)
