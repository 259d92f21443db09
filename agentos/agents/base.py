"""The agent: a role, a goal, an LLM, tools, and the think → call tools → observe loop.

Every LLM completion and tool call goes through the kernel as a syscall. A malformed or invalid
tool call goes back to the LLM as an error message it can correct (at most ``max_tool_retries``
times in a row); a run out of budget ends cleanly with what it has. Several tool calls in one
reply run concurrently. A conversation that outgrows the model's context is trimmed by
short-term memory (:class:`~agentos.runtime.memory.short_term.ConversationWindow`: the oldest
turns summarised, then over-long contents clipped) and sent again, instead of ending the run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentos.errors import (
    BudgetExceeded,
    Cancelled,
    ContextLengthExceeded,
    InvalidToolCall,
    ProviderError,
    SyscallTimeout,
    ToolFailed,
    ToolRetry,
    UnknownTool,
    UserError,
)
from agentos.runtime.llm.types import LLM, Completion, Message, ToolCall, estimate_tokens
from agentos.runtime.registry import ToolRegistry, as_tool
from agentos.runtime.scheduler import Budget
from agentos.runtime.tool import Tool

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run

__all__ = ["Agent", "AgentResult", "Step", "ToolOutcome"]

_MAX_OBSERVATION = 4000
_TRIM_ATTEMPTS = 3  # trims of one turn's conversation before a context error ends the run


@dataclass(slots=True)
class ToolOutcome:
    """One tool call in a step and what came back."""

    name: str
    arguments: dict[str, Any]
    output: str
    ok: bool


@dataclass(slots=True)
class Step:
    """One think → act → observe turn."""

    index: int
    content: str | None
    tool_calls: list[ToolOutcome] = field(default_factory=list)


@dataclass(slots=True)
class AgentResult:
    """What a run of an agent produced.

    Attributes:
        status: ``succeeded``, ``max_steps``, ``budget_exceeded``, ``failed`` or ``cancelled``.
        answer: the final answer (or the last thing the LLM said when it did not finish).
        error: why it did not succeed, when it did not.
    """

    answer: str | None
    status: str
    steps: list[Step]
    usage: dict[str, float | int]
    run_id: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class Agent:
    """An LLM agent run by the kernel.

    Args:
        name: unique within a crew; the scheduler's fair share and budgets key on it.
        role: one line: what the agent is.
        goal: what it is trying to achieve.
        llm: a litellm model string (``"openai/gpt-4o-mini"``, ``"local/qwen2.5-coder-1.5b"``)
            or an LLM object (e.g. :class:`agentos.testing.ScriptedLLM`); defaults to the
            configured model.
        tools: tools, typed functions, LangChain or CrewAI tools (converted, see
            :mod:`agentos.interop.langchain_tools`), or names of registered tools.
        max_steps: LLM turns before the run stops with status ``max_steps``.
        max_tool_retries: consecutive bad tool-call turns the LLM may correct before the run fails.
        budget: a per-agent budget within each run.
        fallbacks: models to try when ``llm`` keeps failing with transient errors.
        priority, weight: for the scheduler's priority and fair-share policies.
        llm_params: extra parameters for every completion (``temperature``, ``max_tokens``, …).
        on_step: called with each :class:`Step` once its tool calls have run (for progress).
        context_tokens: trim the conversation before a turn when it is estimated above this
            many tokens; without it, only when the model refuses it as too long.

    Raises:
        UserError: a tool name is unknown or two tools share a name.
    """

    def __init__(
        self,
        name: str,
        *,
        role: str = "a helpful assistant",
        goal: str = "",
        llm: str | LLM | None = None,
        tools: Sequence[Tool | Any | str] = (),
        max_steps: int | None = None,
        max_tool_retries: int | None = None,
        budget: Budget | None = None,
        fallbacks: Sequence[str | LLM] = (),
        priority: float = 0.0,
        weight: float = 1.0,
        instructions: str | None = None,
        llm_params: dict[str, Any] | None = None,
        kernel: Kernel | None = None,
        on_step: Callable[[Step], None] | None = None,
        context_tokens: int | None = None,
    ) -> None:
        if not name:
            raise UserError("an agent needs a name")
        self.name = name
        self.role = role
        self.goal = goal
        self.llm = llm
        self._tool_specs = list(tools)
        self.max_steps = max_steps
        self.max_tool_retries = max_tool_retries
        self.budget = budget
        self.fallbacks = list(fallbacks)
        self.priority = priority
        self.weight = weight
        self.instructions = instructions
        self.llm_params = dict(llm_params or {})
        self.kernel = kernel
        self.on_step = on_step
        if context_tokens is not None and context_tokens < 64:
            raise UserError(f"context_tokens must be at least 64, got {context_tokens}")
        self.context_tokens = context_tokens
        self._registry: ToolRegistry | None = None

    # --- set-up -------------------------------------------------------------------------------

    def _tools(self, kernel: Kernel) -> ToolRegistry:
        if self._registry is None:
            registry = ToolRegistry()
            for spec in self._tool_specs:
                registry.register(kernel.registry.get(spec) if isinstance(spec, str) else as_tool(spec))
            self._registry = registry
        return self._registry

    def system_prompt(self, tools: ToolRegistry) -> str:
        lines = [f"You are {self.name}, {self.role}."]
        if self.goal:
            lines.append(f"Your goal: {self.goal}")
        if len(tools):
            # Only what to do, not how to format it: the provider (native tool calling or the
            # local model's JSON schema) decides the wire format of calls and answers.
            lines.append(
                "Use your tools ("
                + ", ".join(t.name for t in tools)
                + ") whenever they can compute or look up something for you, one step at a "
                "time; when you have the result, give the final answer."
            )
        if self.instructions:
            lines.append(self.instructions)
        return "\n".join(lines)

    # --- running ------------------------------------------------------------------------------

    def run(self, task: str, *, kernel: Kernel | None = None) -> AgentResult:
        """Run the agent on ``task`` (sync facade over :meth:`arun`).

        Raises:
            UserError: called from inside a running event loop (use ``await agent.arun(...)``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task, kernel=kernel))
        raise UserError("Agent.run() was called inside an event loop; use `await agent.arun(task)`")

    async def arun(
        self, task: str, *, kernel: Kernel | None = None, run: Run | None = None,
        history: list[Message] | None = None,
    ) -> AgentResult:
        """Run the agent on ``task`` within ``run`` (a new run when None).

        The result's status says how it ended; provider failures and exhausted budgets end the
        run with what it has instead of raising.
        """
        kernel = kernel or self.kernel
        if kernel is None:
            from agentos.runtime.kernel import Kernel

            kernel = self.kernel = Kernel()
        settings = kernel.settings
        owns_run = run is None
        if run is None:
            run = kernel.start_run(self.name, task, budget=self.budget if self.budget else None)
        elif self.budget is not None:
            kernel.set_agent_budget(run, self.name, self.budget)
        model = self.llm if self.llm is not None else settings.model
        max_steps = self.max_steps or settings.max_steps
        max_retries = (
            self.max_tool_retries if self.max_tool_retries is not None else settings.max_tool_retries
        )
        tools = self._tools(kernel)
        specs = [t.spec() for t in tools] or None
        messages: list[Message] = [{"role": "system", "content": self.system_prompt(tools)}]
        messages += history or []
        messages.append({"role": "user", "content": task})
        steps: list[Step] = []
        answer: str | None = None
        status, error = "max_steps", f"stopped after max_steps={max_steps} LLM turns"
        bad_turns = 0
        try:
            for index in range(max_steps):
                completion = await self._complete(kernel, run, model, messages, specs, task)
                step = Step(index, completion.content)
                steps.append(step)
                messages.append(completion.to_message())
                if completion.content:
                    answer = completion.content
                if not completion.tool_calls:
                    status, error = "succeeded", None
                    self._notify(step)
                    break
                well_formed = await self._act(kernel, run, tools, completion, step, messages)
                self._notify(step)
                if well_formed:
                    bad_turns = 0
                    continue
                bad_turns += 1
                if bad_turns > max_retries:
                    status = "failed"
                    error = (
                        f"the LLM made invalid tool calls {bad_turns} turns in a row "
                        f"(max_tool_retries={max_retries}); last: {step.tool_calls[-1].output}"
                    )
                    break
        except BudgetExceeded as exc:
            status, error = "budget_exceeded", str(exc)
        except Cancelled as exc:
            status, error = "cancelled", str(exc)
        except (ProviderError, SyscallTimeout) as exc:
            status, error = "failed", str(exc)
        except BaseException as exc:  # misuse or a bug: record the run as failed, then raise
            if owns_run:
                kernel.end_run(run, "failed", answer, f"{type(exc).__name__}: {exc}")
            raise
        if owns_run:
            kernel.end_run(run, status, answer, error)
        usage = (run.usage if owns_run else run.agent(self.name)).as_dict()
        return AgentResult(answer, status, steps, usage, run.id, error)

    async def _complete(
        self, kernel: Kernel, run: Run, model: str | LLM, messages: list[Message],
        specs: list[dict[str, Any]] | None, task: str,
    ) -> Completion:
        """One LLM turn. A conversation the model refuses as too long (or estimated above
        ``context_tokens``) is trimmed in place to 60 % of its size and sent again, up to
        ``_TRIM_ATTEMPTS`` times.

        Raises:
            ContextLengthExceeded: it still does not fit, or cannot be trimmed further.
        """
        if self.context_tokens is not None and estimate_tokens(messages) > self.context_tokens:
            await self._trim(kernel, run, model, messages, task, self.context_tokens)
        for attempt in range(_TRIM_ATTEMPTS + 1):
            try:
                return await kernel.llm(
                    run, self.name, model, messages, specs, fallbacks=self.fallbacks,
                    priority=self.priority, weight=self.weight, **self.llm_params,
                )
            except ContextLengthExceeded:
                budget = int(estimate_tokens(messages) * 0.6)
                if attempt == _TRIM_ATTEMPTS or not await self._trim(
                    kernel, run, model, messages, task, budget
                ):
                    raise
        raise AssertionError("unreachable")

    async def _trim(
        self, kernel: Kernel, run: Run, model: str | LLM, messages: list[Message], task: str,
        budget: int,
    ) -> bool:
        """Shrink ``messages`` in place to about ``budget`` estimated tokens; True if it shrank.

        Short-term memory summarises the oldest turns (an LLM syscall of this agent); the task
        stays verbatim after the summary, a tool result whose call was summarised becomes a user
        message, and contents still too long are clipped, longest first.
        """
        from agentos.runtime.memory.short_term import ConversationWindow, llm_summarizer

        before = estimate_tokens(messages)
        pinned = next(
            (m for m in messages if m.get("role") == "user" and m.get("content") == task), None)
        summarize = llm_summarizer(kernel, run, self.name, model)

        async def clipped(previous: str | None, evicted: list[Message]) -> str:
            room = max(200, 2 * budget // max(1, len(evicted)))  # chars: half the budget in all
            return await summarize(previous, [_clip(m, room) for m in evicted])  # type: ignore[misc]

        window = ConversationWindow(max(64, budget), clipped)
        for message in messages:
            if message is not pinned:
                window.add(message)
        await window.compact()
        system, turns = window.messages()[: len(window.system) + bool(window.summary)], window.turns
        if turns and turns[0].get("role") == "tool":  # its assistant turn was summarised away
            turns[0] = {"role": "user", "content": f"Tool result: {turns[0].get('content') or ''}"}
        trimmed = [*system, *([pinned] if pinned is not None else []), *turns]
        while estimate_tokens(trimmed) > budget and len(trimmed) > 1:
            sizes = [len(str(m.get("content") or "")) for m in trimmed[1:]]  # not the agent's prompt
            longest = 1 + sizes.index(max(sizes))
            if sizes[longest - 1] < 400:
                break
            trimmed[longest] = _clip(trimmed[longest], sizes[longest - 1] // 2)
        if estimate_tokens(trimmed) >= before:
            return False
        messages[:] = trimmed
        return True

    def _notify(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)

    async def _act(
        self, kernel: Kernel, run: Run, tools: ToolRegistry, completion: Completion, step: Step,
        messages: list[Message],
    ) -> bool:
        """Run the completion's tool calls; True when every call was well-formed.

        Several calls in one reply (parallel tool calls) run concurrently, each its own kernel
        syscall; their results go back in the order the LLM asked for them. An error that ends
        the run (a budget, a cancellation) is raised once every call has finished.
        """

        async def one(call: ToolCall) -> tuple[str, bool, bool]:  # (output, ok, well-formed)
            if call.error:
                return f"Error: {call.error}", False, False
            try:
                result = await kernel.call_tool(run, self.name, call.name, call.arguments,
                                                 registry=tools)
            except (UnknownTool, InvalidToolCall) as exc:
                return f"Error: {exc}", False, False
            except (ToolRetry, ToolFailed) as exc:
                return f"Error: {exc}", False, True
            return _render(result), True, True

        gathered = await asyncio.gather(*(one(c) for c in completion.tool_calls),
                                        return_exceptions=True)
        outcomes: list[tuple[str, bool, bool]] = []
        for outcome in gathered:
            if isinstance(outcome, BaseException):
                raise outcome
            outcomes.append(outcome)
        well_formed = True
        for call, (output, ok, formed) in zip(completion.tool_calls, outcomes, strict=True):
            well_formed = well_formed and formed
            step.tool_calls.append(ToolOutcome(call.name, call.arguments, output, ok))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": output}
            )
        return well_formed


def _clip(message: Message, chars: int) -> Message:
    """``message`` with its text content cut to ``chars`` characters (marked)."""
    content = message.get("content")
    if not isinstance(content, str) or len(content) <= chars:
        return message
    return {**message, "content": content[:chars] + f"... [trimmed {len(content) - chars} chars]"}


def _render(result: Any) -> str:
    if isinstance(result, str):
        text = result
    else:
        try:
            text = json.dumps(result, default=str)
        except (TypeError, ValueError):
            text = repr(result)
    if len(text) > _MAX_OBSERVATION:
        text = text[:_MAX_OBSERVATION] + f"... [truncated {len(text) - _MAX_OBSERVATION} chars]"
    return text
