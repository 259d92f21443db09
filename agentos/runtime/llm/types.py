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
    """One LLM reply with its usage."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    energy_j: float = 0.0
    model: str = ""
    finish_reason: str | None = None

    def to_message(self) -> Message:
        """The assistant message to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return message


@runtime_checkable
class LLM(Protocol):
    """Anything that completes a conversation: litellm models, the local model, test doubles."""

    name: str

    async def complete(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion: ...


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
