"""The state a crew graph carries from node to node (and checkpoints after every step).

Every channel that several nodes may write in the same step is a per-task dict merged by key,
so tasks running concurrently never collide.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

__all__ = ["CrewState", "merge"]


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """LangGraph reducer: the union of two dicts, the newer value winning per key."""
    return {**(left or {}), **(right or {})}


class CrewState(TypedDict, total=False):
    """A crew run's state.

    Attributes:
        goal: what the crew was asked to do.
        outputs: the latest output of each task that ran.
        checks: per task, ``{"passed": bool, "reason": str}`` of its latest output.
        visits: how many times each task has run.
        data: per task, structured results (citations, files, test outcome) its agent returned.
        stops: why a task or loop ended early (did not converge, rejected, budget), per task.
        events: one record per task run, in order: ``{"task", "agent", "visit", "passed", ...}``.
    """

    goal: str
    outputs: Annotated[dict[str, str], merge]
    checks: Annotated[dict[str, dict[str, Any]], merge]
    visits: Annotated[dict[str, int], merge]
    data: Annotated[dict[str, Any], merge]
    stops: Annotated[dict[str, str], merge]
    events: Annotated[list[dict[str, Any]], operator.add]
