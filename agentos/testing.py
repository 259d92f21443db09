"""Test doubles for LLMs, shipped so users test their own agents the way agentos tests its own.

Never a default: an agent only uses these when you pass one as its ``llm``.

Example:
    >>> from agentos.testing import ScriptedLLM, call
    >>> llm = ScriptedLLM([call("add", a=2, b=3), "The sum is 5."])
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Union

from agentos.runtime.llm.types import Completion, Message, ToolCall, estimate_tokens

__all__ = ["FunctionLLM", "Reply", "ScriptedLLM", "call"]

_ids = itertools.count()


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a scripted reply: ``call("search", query="ring attention")``."""
    return ToolCall(id=f"call_{next(_ids)}", name=name, arguments=arguments)


Reply = Union[str, ToolCall, list[ToolCall], Completion, BaseException]


def _completion(reply: Reply, messages: list[Message], name: str) -> Completion:
    if isinstance(reply, BaseException):
        raise reply
    if isinstance(reply, Completion):
        return reply
    prompt_tokens = estimate_tokens(messages)
    if isinstance(reply, str):
        return Completion(reply, [], prompt_tokens, max(1, len(reply) // 4), model=name,
                          finish_reason="stop")
    calls = [reply] if isinstance(reply, ToolCall) else list(reply)
    # Fresh ids per reply so a script can be replayed.
    calls = [ToolCall(f"call_{next(_ids)}", c.name, dict(c.arguments), c.error) for c in calls]
    return Completion(None, calls, prompt_tokens, 8 * len(calls), model=name,
                      finish_reason="tool_calls")


class ScriptedLLM:
    """Replays fixed replies in order: text answers, tool calls, or exceptions to raise.

    Args:
        replies: one entry per completion. A ``str`` is a final answer, a :class:`ToolCall` (or a
            list of them) a tool-calling turn, an exception instance is raised by that call.
        latency: seconds each completion takes (``asyncio.sleep``), for scheduling tests.
        name: the model name reported in completions and the run store.

    Raises:
        RuntimeError: on a call after the script ran out (says how many replies it had).
    """

    def __init__(self, replies: Sequence[Reply], *, latency: float = 0.0, name: str = "scripted"):
        self.replies = list(replies)
        self.latency = latency
        self.name = name
        self.calls: list[list[Message]] = []  # every conversation it was sent, for assertions

    async def complete(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion:
        index = len(self.calls)
        self.calls.append([dict(m) for m in messages])
        if index >= len(self.replies):
            raise RuntimeError(
                f"ScriptedLLM ran out of replies: it had {len(self.replies)} and got call "
                f"{index + 1}. Add replies or lower the agent's max_steps."
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        return _completion(self.replies[index], messages, self.name)


class FunctionLLM:
    """An LLM whose replies come from your function ``fn(messages, tools) -> Reply``.

    ``fn`` may be sync or async. Use it for replies that depend on the conversation, e.g. read
    the last tool result and answer with it.
    """

    def __init__(
        self,
        fn: Callable[[list[Message], list[dict[str, Any]] | None], Reply | Awaitable[Reply]],
        *,
        latency: float = 0.0,
        name: str = "function",
    ) -> None:
        self.fn = fn
        self.latency = latency
        self.name = name

    async def complete(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion:
        if self.latency:
            await asyncio.sleep(self.latency)
        reply = self.fn(messages, tools)
        if inspect.isawaitable(reply):
            reply = await reply
        return _completion(reply, messages, self.name)  # type: ignore[arg-type]
