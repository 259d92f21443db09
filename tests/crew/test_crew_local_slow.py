"""One crew task end to end on the real local 0.5B model: ingest, research, code in the sandbox,
review, report, graded by the hidden checker (slow; `agentos models install qwen2.5-coder-0.5b`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from agentos import Kernel

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crew_tasks"


@pytest.mark.slow
def test_a_crew_task_end_to_end_on_the_local_model(kernel: Kernel, tmp_path: Path,
                                                  allow_model_requests: None) -> None:
    sys.path.insert(0, str(EXAMPLE))
    tasks, run = importlib.import_module("tasks"), importlib.import_module("run")
    task = next(t for t in tasks.TASKS if t.id == "kivu_calendar")
    run.ingest_docs(kernel)
    row = run.solve(task.id, task.goal, model="local/qwen2.5-coder-0.5b", out=tmp_path,
                    kernel=kernel, max_rounds=1)
    # The crew ran every stage and ended with what it had (a 0.5B model may not solve it).
    assert row["crew_status"] in {"succeeded", "not_converged"}, row
    events = [s for s in kernel.store.syscalls(row["run_id"])]
    agents = {s.agent for s in events if s.kind == "llm"}
    assert {"researcher", "coder", "reviewer"} <= agents
    assert any(s.kind == "memory" and s.name == "recall" for s in events)
    report = (tmp_path / task.id / "report.md").read_text()
    assert report.startswith("# Report:") and "## Tests" in report
    print(row)  # solved or not: the hidden checker's verdict, for the record
