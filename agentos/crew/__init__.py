"""Crews: agents as the nodes of a LangGraph graph on the agentos kernel.

``Crew`` runs tasks owned by agents along edges (loops bounded), checkpointed in the run store and
resumable after a crash without repeating completed syscalls; ``Planner`` turns a goal into a task
graph; ``load_crew`` reads a crew from YAML; ``research_and_code`` is the built-in crew.
LangGraph is imported only when a crew runs.
"""

from __future__ import annotations

from agentos.crew.builtin import research_and_code
from agentos.crew.checkpoint import Retention
from agentos.crew.crew import Crew, CrewEvent, CrewResult, Member
from agentos.crew.graph import CrewGraph
from agentos.crew.planner import Plan, PlannedTask, Planner
from agentos.crew.spec import load_crew
from agentos.crew.task import Check, CheckResult, Edge, Task

__all__ = [
    "Check",
    "CheckResult",
    "Crew",
    "CrewEvent",
    "CrewGraph",
    "CrewResult",
    "Edge",
    "Member",
    "Plan",
    "PlannedTask",
    "Planner",
    "Retention",
    "Task",
    "load_crew",
    "research_and_code",
]
