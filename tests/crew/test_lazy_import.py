"""`agentos.Crew` and `agentos.crew` load without LangGraph, CrewAI or litellm; they load when a crew runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["langgraph", "langchain_core", "crewai", "litellm", "torch", "chromadb", "yaml"]


def test_crew_names_import_light() -> None:
    probe = ("import agentos, agentos.crew, json, sys\nagentos.Crew; agentos.crew.Planner; "
             "agentos.crew.load_crew; agentos.crew.research_and_code\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
