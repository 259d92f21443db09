"""Run the five crew tasks on a model and grade them with the hidden checkers.

    python examples/crew_tasks/run.py [--model local/qwen2.5-coder-1.5b] [--only invoices] [--out DIR]

Each task runs as ``agentos crew run`` runs it: the docs are ingested into memory, the built-in
``research_and_code`` crew works on the goal, and its ``solution.py`` is graded in the sandbox.
Prints one line per task and a total; ``--json FILE`` writes the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasks import DOCS, TASKS, check  # noqa: E402


def solve(task_id: str, goal: str, *, model: Any, out: Path, kernel: Any = None,
          max_rounds: int = 2) -> dict[str, Any]:
    """One task through the built-in crew (``model``: a model string or LLM object); returns
    its result row."""
    from agentos import Kernel
    from agentos.crew import research_and_code
    from agentos.crew.members import default_members

    kernel = kernel or Kernel()
    crew = research_and_code(kernel=kernel, max_rounds=max_rounds,
                             **default_members(kernel, model))
    started = time.monotonic()
    result = crew.run(goal)
    wall = time.monotonic() - started
    files = dict(result.data.get("code", {}).get("files") or {})
    target = out / task_id
    target.mkdir(parents=True, exist_ok=True)
    # The previous run's files go first: one this run did not write must not pass for its own.
    manifest = target / ".written"
    if manifest.is_file():
        for name in manifest.read_text().splitlines():
            (target / name).unlink(missing_ok=True)
    (target / "report.md").write_text(result.report)
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    manifest.write_text("".join(f"{name}\n" for name in ["report.md", *files]))
    graded = check(task_id, files)
    calls = [s for s in kernel.store.syscalls(result.run_id) if s.kind == "llm"]
    return {
        "task": task_id, "crew_status": result.status, "solved": graded.passed,
        "wall_s": round(wall, 1), "llm_calls": len(calls),
        "tokens": sum(s.prompt_tokens + s.completion_tokens for s in calls),
        "run_id": result.run_id, "check_output": graded.output[-500:],
    }


def ingest_docs(kernel: Any) -> None:
    from agentos.runtime.memory import GLOBAL
    from agentos.runtime.memory.ingest import ingest

    ingest(kernel.memory, [DOCS], GLOBAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="litellm model string (default: settings)")
    parser.add_argument("--only", action="append", help="task id (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("crew_task_runs"))
    parser.add_argument("--max-rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from agentos import Kernel

    kernel = Kernel()
    ingest_docs(kernel)
    rows = []
    for task in TASKS:
        if args.only and task.id not in args.only:
            continue
        row = solve(task.id, task.goal, model=args.model, out=args.out, kernel=kernel,
                    max_rounds=args.max_rounds)
        rows.append(row)
        print(f"{task.id:14} solved={row['solved']!s:5} crew={row['crew_status']:14} "
              f"{row['wall_s']:7.1f} s  {row['llm_calls']:3} LLM calls  {row['tokens']:7} tokens",
              flush=True)
    print(f"solved {sum(r['solved'] for r in rows)} of {len(rows)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
