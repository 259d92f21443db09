"""A crew's tasks, the checks on their outputs, and the edges between them.

A :class:`Task` is one node of the crew graph: an owner agent (or a plain function), a
description, the output it is expected to produce and a :class:`Check` of that output. An
:class:`Edge` leads from one task to another, always or only when a condition holds
(``"check_failed"``, ``"check_passed"``, ``"output_contains:TEXT"`` or a function of the state);
conditional edges may loop back, bounded by the target's ``max_visits``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentos.errors import CrewDefinitionError

__all__ = ["Check", "CheckResult", "Condition", "Edge", "Task"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Whether a task's output passed its check, and why not when it did not."""

    passed: bool
    reason: str = ""


class Check(BaseModel):
    """A check of a task's output text; every rule given must hold.

    Attributes:
        contains: substrings the output must contain.
        regex: a regular expression the output must match somewhere (``re.search``).
        min_chars: the output must be at least this long (after stripping).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    min_chars: int = Field(1, ge=0)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"regex {value!r} does not compile: {error}") from None
        return value

    def __call__(self, output: str, state: Mapping[str, Any]) -> CheckResult:
        text = (output or "").strip()
        if len(text) < self.min_chars:
            return CheckResult(False, f"the output is shorter than {self.min_chars} characters")
        missing = [c for c in self.contains if c not in text]
        if missing:
            return CheckResult(False, f"the output does not contain {', '.join(map(repr, missing))}")
        if self.regex is not None and re.search(self.regex, text) is None:
            return CheckResult(False, f"the output does not match /{self.regex}/")
        return CheckResult(True)


CheckFn = Callable[[str, Mapping[str, Any]], Union[CheckResult, bool]]
Condition = Union[str, Callable[[Mapping[str, Any]], bool], None]


@dataclass(slots=True)
class Task:
    """One node of a crew graph.

    Args:
        name: unique in the crew (letters, digits, ``_``, ``-``); the node's name.
        agent: the name of the crew agent that owns the task; None when ``fn`` does the work.
        description: what to do; ``{goal}`` is replaced by the crew's goal.
        expected_output: what the output should be (shown to the agent).
        check: a :class:`Check`, or ``fn(output, state) -> CheckResult | bool``; None passes.
        max_visits: how many times the task may run in one crew run (bounds loops).
        fn: a plain function ``fn(state) -> str`` (sync or async) run instead of an agent.
        reads: other tasks whose latest outputs are also shown to this one (beyond the tasks
            that hand off to it), e.g. a reviewer reading the research.

    Raises:
        CrewDefinitionError: the name is not a valid identifier, or neither/both of ``agent``
            and ``fn`` are given.
    """

    name: str
    agent: str | None = None
    description: str = ""
    expected_output: str = ""
    check: Check | CheckFn | None = None
    max_visits: int = 3
    fn: Callable[[Mapping[str, Any]], Any] | None = field(default=None, repr=False)
    reads: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name or ""):
            raise CrewDefinitionError(
                f"task name {self.name!r} is not valid: use letters, digits, '_' or '-' "
                "(at most 64, not starting with a digit)"
            )
        if (self.agent is None) == (self.fn is None):
            raise CrewDefinitionError(
                f"task {self.name!r} needs exactly one of agent= (an agent of the crew does it) "
                "or fn= (a function does it)"
            )
        if self.max_visits < 1:
            raise CrewDefinitionError(f"task {self.name!r}: max_visits must be at least 1")

    def evaluate(self, output: str, state: Mapping[str, Any]) -> CheckResult:
        """Run the check on ``output``; no check passes."""
        if self.check is None:
            return CheckResult(True)
        result = self.check(output, state)
        if isinstance(result, CheckResult):
            return result
        return CheckResult(bool(result), "" if result else "the check returned False")


@dataclass(frozen=True, slots=True)
class Edge:
    """A handoff from task ``source`` to task ``target``.

    Args:
        source, target: task names.
        when: None (always), ``"check_failed"`` / ``"check_passed"`` (the source's check),
            ``"output_contains:TEXT"``, or ``fn(state) -> bool``. An edge with a condition may
            form a loop; an unconditional cycle is refused.
    """

    source: str
    target: str
    when: Condition = None

    @property
    def conditional(self) -> bool:
        return self.when is not None

    def holds(self, state: Mapping[str, Any]) -> bool:
        """Whether the edge's condition holds in ``state`` (after the source ran)."""
        when = self.when
        if when is None:
            return True
        if callable(when):
            return bool(when(state))
        check = state.get("checks", {}).get(self.source, {})
        if when == "check_failed":
            return check.get("passed") is False
        if when == "check_passed":
            return check.get("passed") is True
        if when.startswith("output_contains:"):
            return when.split(":", 1)[1] in (state.get("outputs", {}).get(self.source) or "")
        raise CrewDefinitionError(_bad_condition(self))

    def validate(self) -> None:
        """Raise :class:`CrewDefinitionError` when ``when`` is a string no rule knows."""
        when = self.when
        if isinstance(when, str) and when not in {"check_failed", "check_passed"} and not (
            when.startswith("output_contains:") and len(when) > len("output_contains:")
        ):
            raise CrewDefinitionError(_bad_condition(self))


def _bad_condition(edge: Edge) -> str:
    return (
        f"edge {edge.source} -> {edge.target}: unknown condition {edge.when!r}; use "
        "'check_failed', 'check_passed' or 'output_contains:TEXT'"
    )
