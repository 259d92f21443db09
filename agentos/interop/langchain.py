"""A LangChain chat model whose completions are agentos kernel syscalls.

Swap it in for any LangChain chat model and the app's model calls are scheduled by the kernel,
checked against its budgets and recorded in the run store::

    from langgraph.prebuilt import create_react_agent
    from agentos.interop.langchain import AgentosChatModel

    model = AgentosChatModel(model="local/qwen2.5-coder-1.5b", agent="react")
    app = create_react_agent(model, [my_tool])
    app.invoke({"messages": [("user", "...")]})
    # agentos runs show <model.run_id>

Tool calling works through ``bind_tools`` (OpenAI tool schemas); the app's own tool node runs
the tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from agentos.interop._bridge import KernelBinding

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

    from agentos.runtime.kernel import Kernel, Run
    from agentos.runtime.llm.types import Completion, Message

__all__ = ["AgentosChatModel", "to_openai_messages"]


class AgentosChatModel(BaseChatModel):
    """A LangChain ``BaseChatModel`` backed by :meth:`agentos.Kernel.llm`.

    Args:
        model: a litellm model string or an LLM object (e.g. :class:`agentos.testing.ScriptedLLM`);
            default: the configured model.
        kernel: the kernel; default: a new one from the settings.
        agent: the agent name the calls are recorded and budgeted under.
        run: the kernel run the calls belong to; default: one opened on the first call
            (``run_id`` names it).
        params: extra completion parameters (``temperature``, ``max_tokens``...).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = None
    kernel: Any = Field(default=None, exclude=True)
    agent: str = "langchain"
    run: Any = Field(default=None, exclude=True)
    params: dict[str, Any] = Field(default_factory=dict)
    _binding: KernelBinding | None = PrivateAttr(default=None)

    @property
    def binding(self) -> KernelBinding:
        if self._binding is None:
            self._binding = KernelBinding(self.kernel, self.model, self.agent, self.run)
        return self._binding

    @property
    def run_id(self) -> str:
        """The id of the kernel run the calls are recorded in (opened now if needed)."""
        return self.binding.run.id

    @property
    def _llm_type(self) -> str:
        return "agentos"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        name = self.model if isinstance(self.model, str) else getattr(self.model, "name", None)
        return {"model": name, "agent": self.agent}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, BaseMessage]:
        """Offer ``tools`` (LangChain tools, functions, pydantic models or OpenAI schemas)."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        tools, params = self._split(stop, kwargs)
        completion = self.binding.complete(to_openai_messages(messages), tools, **params)
        return _result(completion)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        tools, params = self._split(stop, kwargs)
        completion = await self.binding.acomplete(to_openai_messages(messages), tools, **params)
        return _result(completion)

    def _split(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        params = {**self.params, **kwargs}
        tools = params.pop("tools", None)
        if stop:
            params["stop"] = stop
        return tools, params


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as the OpenAI chat messages the kernel speaks."""
    out: list[Message] = []
    for m in messages:
        text = _text(m.content)
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": text})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": text})
        elif isinstance(m, AIMessage):
            message: Message = {"role": "assistant", "content": text}
            if m.tool_calls:
                message["tool_calls"] = [
                    {"id": c.get("id") or f"call_{i}", "type": "function",
                     "function": {"name": c["name"], "arguments": json.dumps(c.get("args", {}))}}
                    for i, c in enumerate(m.tool_calls)
                ]
            out.append(message)
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "tool_call_id": m.tool_call_id,
                        "name": getattr(m, "name", None) or "", "content": text})
        else:
            out.append({"role": "user", "content": text})
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or ():
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def _result(c: Completion) -> ChatResult:
    tool_calls = [{"name": t.name, "args": t.arguments, "id": t.id, "type": "tool_call"}
                  for t in c.tool_calls if not t.error]
    invalid = [{"name": t.name, "args": json.dumps(t.arguments), "id": t.id, "error": t.error,
                "type": "invalid_tool_call"} for t in c.tool_calls if t.error]
    message = AIMessage(
        content=c.content or "", tool_calls=tool_calls, invalid_tool_calls=invalid,
        usage_metadata={"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens,
                        "total_tokens": c.prompt_tokens + c.completion_tokens},
        response_metadata={"model_name": c.model, "finish_reason": c.finish_reason},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])
