"""What the LLM gateway speaks: messages in OpenAI chat format, completions, tool calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["LLM", "Completion", "Message", "ToolCall", "estimate_tokens"]

Message = dict[str, Any]  # {"role": ..., "content": ..., ["tool_calls"|"tool_call_id"|"name"]}


@dataclass(slots=True)
class ToolCall:
    """One tool call an LLM asked for.

    ``error`` is set when the call could not be read (bad JSON arguments, no tool name); the
    agent loop then sends ``error`` back to the LLM as a correction instead of running anything.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    error: str | None = None

    def to_openai(self) -> dict[str, Any]:
        import json

        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass(slots=True)
class Completion:
    """One LLM reply with its usage.

    Attributes:
        content: the reply's text; ``None`` when it only calls tools.
        tool_calls: the tools it asks to call, in order.
        prompt_tokens, completion_tokens: tokens read and written, as the provider reports them.
        cost: US dollars from litellm's cost map; 0 for models the map does not know (local).
        energy_j: joules the completion used. Remote litellm models fill an estimate from
            their tokens; for everything else (local models, your own :class:`LLM`) the
            kernel fills what it metered while the call ran (see
            :mod:`agentos.runtime.energy`), unless the LLM set it (or ``energy_method``) itself.
        flops, flops_method: FLOPs and how they were obtained (estimated from tokens for the
            catalogue's local models and for remote models; ``"not counted"`` otherwise).
        gco2: grams of CO2-equivalent of ``energy_j``.
        energy_method: how ``energy_j`` was obtained (which counter, model or estimate).
        model: the model that answered.
        finish_reason: the provider's, e.g. ``"stop"``, ``"length"``, ``"tool_calls"``.
    """

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    energy_j: float = 0.0
    model: str = ""
    finish_reason: str | None = None
    flops: float = 0.0
    flops_method: str = ""
    gco2: float = 0.0
    energy_method: str = ""

    def to_message(self) -> Message:
        """The assistant message to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return message


@runtime_checkable
class LLM(Protocol):
    """Anything that completes a conversation: litellm models, the local model, test doubles.

    Implement ``name`` and :meth:`complete` to plug in a model the gateway does not reach; the
    kernel schedules, retries, budgets and records it like any other.

    Attributes:
        name: the model's name in the run store and the scheduler pool ``llm:<name>``; a name
            starting with ``local/`` is scheduled on the local engine's slots.
    """

    name: str

    async def complete(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion:
        """Complete the conversation once.

        Args:
            messages: the conversation in OpenAI chat format (``role``, ``content``, and
                ``tool_calls`` / ``tool_call_id`` for tool turns).
            tools: OpenAI-style function specs (:meth:`Tool.spec`) the reply may call.
            **params: provider options (``max_tokens``, ``temperature``, ``api_base``, ...).

        Returns:
            The reply with its token usage (and cost, and energy where known). A tool call the
            model wrote but got wrong is a :class:`ToolCall` with ``error`` set, not an
            exception, so the agent loop can ask for a correction.

        Raises:
            ProviderError: the provider failed; set ``transient=True`` when a retry may help
                (rate limits, 5xx, dropped connections): the kernel retries only those, then
                tries the fallback models.
            UserError: misuse that no retry can fix; the message says what to change.
        """
        ...


def estimate_tokens(messages: list[Message]) -> int:
    """A cheap upper-ish estimate of prompt tokens (4 characters a token), for budgets/limits."""
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        for call in m.get("tool_calls") or ():
            chars += len(str(call))
    return chars // 4 + 4 * len(messages)
