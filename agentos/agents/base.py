"""The agent: a role, a goal, an LLM, tools, and the think → call tools → observe loop.

Every LLM completion and tool call goes through the kernel as a syscall. A malformed or invalid
tool call goes back to the LLM as an error message it can correct (at most ``max_tool_retries``
times in a row); a run out of budget ends cleanly with what it has.
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
    InvalidToolCall,
    ProviderError,
    SyscallTimeout,
    ToolFailed,
    ToolRetry,
    UnknownTool,
    UserError,
)
from agentos.runtime.llm.types import LLM, Completion, Message
from agentos.runtime.registry import ToolRegistry, as_tool
from agentos.runtime.scheduler import Budget
from agentos.runtime.tool import Tool

if TYPE_CHECKING:
    from agentos.runtime.kernel import Kernel, Run

__all__ = ["Agent", "AgentResult", "Step", "ToolOutcome"]

_MAX_OBSERVATION = 4000


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
                completion = await kernel.llm(
                    run, self.name, model, messages, specs, fallbacks=self.fallbacks,
                    priority=self.priority, weight=self.weight, **self.llm_params,
                )
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

    def _notify(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)

    async def _act(
        self, kernel: Kernel, run: Run, tools: ToolRegistry, completion: Completion, step: Step,
        messages: list[Message],
    ) -> bool:
        """Run the completion's tool calls; True when every call was well-formed."""
        well_formed = True
        for call in completion.tool_calls:
            ok = False
            if call.error:
                output = f"Error: {call.error}"
                well_formed = False
            else:
                try:
                    result = await kernel.call_tool(run, self.name, call.name, call.arguments,
                                                     registry=tools)
                    output, ok = _render(result), True
                except (UnknownTool, InvalidToolCall) as exc:
                    output, well_formed = f"Error: {exc}", False
                except ToolRetry as exc:
                    output = f"Error: {exc}"
                except ToolFailed as exc:
                    output = f"Error: {exc}"
            step.tool_calls.append(ToolOutcome(call.name, call.arguments, output, ok))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": output}
            )
        return well_formed


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
