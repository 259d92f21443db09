"""Short-term memory: a token-bounded conversation window that summarises what falls out.

The window keeps the system messages and the most recent turns within ``max_tokens``
(estimated at four characters a token, as the kernel's budgets do). When it overflows,
:meth:`ConversationWindow.compact` moves the oldest turns out, down to ``target`` of the budget,
and asks the summariser for a new summary of the previous summary plus those turns; the summary
then rides along as one system message ahead of the recent turns. A tool result is never
separated from the assistant turn that asked for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agentos.errors import UserError
from agentos.runtime.llm.types import Message, estimate_tokens

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run

__all__ = ["ConversationWindow", "Summarizer", "llm_summarizer"]

Summarizer = Callable[[str | None, list[Message]], "str | Awaitable[str]"]
_SUMMARY_PREFIX = "Summary of the earlier conversation: "


class ConversationWindow:
    """The recent conversation of one agent, within a token budget.

    Args:
        max_tokens: the most the window's messages (summary included) may take.
        summarizer: ``summarizer(previous_summary, evicted_messages) -> str`` (sync or async),
            e.g. :func:`llm_summarizer`.
        target: after compaction the window takes at most ``target * max_tokens``.

    Raises:
        UserError: ``max_tokens`` below 64 or ``target`` outside (0, 1].
    """

    def __init__(self, max_tokens: int, summarizer: Summarizer, *, target: float = 0.6) -> None:
        if max_tokens < 64 or not 0 < target <= 1:
            raise UserError("ConversationWindow needs max_tokens >= 64 and 0 < target <= 1")
        self.max_tokens = max_tokens
        self.summarizer = summarizer
        self.target = target
        self.system: list[Message] = []
        self.turns: list[Message] = []
        self.summary: str | None = None
        self.evicted = 0  # how many messages were summarised away so far

    def add(self, message: Message) -> None:
        """Append a message (system messages stay at the front, never evicted)."""
        (self.system if message.get("role") == "system" else self.turns).append(dict(message))

    def messages(self) -> list[Message]:
        """What to send to the LLM: system messages, the summary, the recent turns."""
        summary: list[Message] = (
            [{"role": "system", "content": _SUMMARY_PREFIX + self.summary}] if self.summary else [])
        return [*self.system, *summary, *self.turns]

    def tokens(self) -> int:
        return estimate_tokens(self.messages())

    @property
    def overflowing(self) -> bool:
        return self.tokens() > self.max_tokens

    async def compact(self) -> bool:
        """Summarise the oldest turns away if the window is over budget; True if it did.

        Keeps at least the last turn. The summary itself counts against the budget, so a
        summariser that writes long summaries makes the window keep fewer turns.
        """
        if not self.overflowing:
            return False
        goal = int(self.max_tokens * self.target)
        evicted: list[Message] = []
        while len(self.turns) > 1 and self.tokens() > goal:
            evicted.append(self.turns.pop(0))
            # a tool result belongs with the assistant turn that called it
            while self.turns and self.turns[0].get("role") == "tool" and len(self.turns) > 1:
                evicted.append(self.turns.pop(0))
        if not evicted:
            return False
        result = self.summarizer(self.summary, evicted)
        if inspect.isawaitable(result):
            result = await result
        self.summary = str(result).strip()
        self.evicted += len(evicted)
        return True

    async def add_and_compact(self, message: Message) -> None:
        """:meth:`add` then :meth:`compact`."""
        self.add(message)
        await self.compact()


def llm_summarizer(kernel: Kernel, run: Run, agent: str, model: Any, *,
                   max_words: int = 120) -> Summarizer:
    """A summariser that asks ``model`` through the kernel (an ``llm`` syscall of ``agent``)."""

    async def summarize(previous: str | None, evicted: list[Message]) -> str:
        transcript = "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in evicted)
        prompt = (
            f"Update the summary of a conversation with the turns below. Keep facts, decisions, "
            f"names and numbers; at most {max_words} words. Reply with the summary only.\n\n"
            f"Summary so far: {previous or '(none)'}\n\nNew turns:\n{transcript}"
        )
        completion = await kernel.llm(run, agent, model, [{"role": "user", "content": prompt}],
                                      max_tokens=max_words * 2)
        return completion.content or (previous or "")

    return summarize
