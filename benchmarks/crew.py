"""The five crew tasks (examples/crew_tasks) on one local model, three ways, in one run:

- ``agentos``: the built-in ``research_and_code`` crew (Researcher with verified citations,
  Coder in the bubblewrap sandbox, reviewer);
- ``langgraph``: LangGraph's prebuilt ReAct agent on ``AgentosChatModel`` with a ``search_docs``
  tool (memory recall), answering with the code;
- ``crewai``: a one-agent CrewAI crew on ``AgentosCrewAILLM`` with the same tool.

All three use the same model through the agentos kernel (so LLM calls and tokens come from the
run store) and the same hidden checkers. Prints a table and writes
``benchmarks/results/crew.json``::

    python benchmarks/crew.py [--model local/qwen2.5-coder-1.5b] [--only invoices] [--systems agentos crewai]
                              [--max-rounds 3] [--out benchmarks/results/crew.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "crew_tasks"))
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from run import ingest_docs, solve  # noqa: E402
from tasks import TASKS, check  # noqa: E402

_ANSWER = ("Reply with the complete content of solution.py in one ```python code block "
           "(the function only; no tests needed).")


def _code(text: str) -> dict[str, str]:
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text or "", re.DOTALL)
    return {"solution.py": blocks[0]} if blocks else {}


def _usage(kernel: Any, run_id: str) -> tuple[int, int]:
    calls = [s for s in kernel.store.syscalls(run_id) if s.kind == "llm"]
    return len(calls), sum(s.prompt_tokens + s.completion_tokens for s in calls)


def _search(kernel: Any) -> Any:
    def search_docs(query: str) -> str:
        """Search the ingested documents; returns the best matching excerpts."""
        hits = kernel.memory.recall("global", query, k=3)
        return "\n\n".join(f"({Path(h.source or '').name}) {h.text}" for h in hits) or "nothing found"

    return search_docs


def run_langgraph(kernel: Any, model: str, task: Any) -> dict[str, Any]:
    from langchain_core.tools import tool as lc_tool
    from langgraph.prebuilt import create_react_agent

    from agentos.interop.langchain import AgentosChatModel

    llm = AgentosChatModel(model=model, kernel=kernel, agent="react")
    app = create_react_agent(llm, [lc_tool(_search(kernel))])
    started = time.monotonic()
    out = app.invoke({"messages": [("user", f"{task.goal}\n{_ANSWER}")]},
                     {"recursion_limit": 12})
    wall = time.monotonic() - started
    calls, tokens = _usage(kernel, llm.run_id)
    llm.binding.end()
    graded = check(task.id, _code(out["messages"][-1].content))
    return {"solved": graded.passed, "wall_s": round(wall, 1), "llm_calls": calls, "tokens": tokens}


def run_crewai(kernel: Any, model: str, task: Any) -> dict[str, Any]:
    from crewai import Agent, Crew, Task
    from crewai.tools import tool as crewai_tool

    from agentos.interop.crewai import AgentosCrewAILLM

    llm = AgentosCrewAILLM(model=model, kernel=kernel, agent="crewai")
    coder = Agent(role="Python programmer", goal="write correct code from the documents",
                  backstory="You look facts up with search_docs before you code.", llm=llm,
                  tools=[crewai_tool("search_docs")(_search(kernel))], max_iter=6, verbose=False)
    job = Task(description=f"{task.goal}\n{_ANSWER}", expected_output="solution.py in a code block",
               agent=coder)
    started = time.monotonic()
    result = Crew(agents=[coder], tasks=[job], verbose=False).kickoff()
    wall = time.monotonic() - started
    calls, tokens = _usage(kernel, llm.run_id)
    llm.binding.end()
    graded = check(task.id, _code(result.raw))
    return {"solved": graded.passed, "wall_s": round(wall, 1), "llm_calls": calls, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description="crew tasks: agentos crew vs LangGraph ReAct vs CrewAI")
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--only", action="append", help="task id (repeatable)")
    parser.add_argument("--systems", nargs="+", default=["agentos", "langgraph", "crewai"])
    parser.add_argument("--max-rounds", type=int, default=3,
                        help="the agentos crew's loop bound (as `agentos crew run --max-rounds`)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "crew.json")
    args = parser.parse_args()

    from agentos import Kernel

    kernel = Kernel()
    ingest_docs(kernel)
    rows: list[dict[str, Any]] = []
    for task in TASKS:
        if args.only and task.id not in args.only:
            continue
        for system in args.systems:
            if system == "agentos":
                row = solve(task.id, task.goal, model=args.model, kernel=kernel,
                            out=ROOT / "benchmarks" / "results" / "crew_runs",
                            max_rounds=args.max_rounds)
                row = {k: row[k] for k in ("solved", "wall_s", "llm_calls", "tokens",
                                           "crew_status", "run_id")}
            elif system == "langgraph":
                row = run_langgraph(kernel, args.model, task)
            else:
                row = run_crewai(kernel, args.model, task)
            row = {"task": task.id, "system": system, **row}
            rows.append(row)
            _write(args, rows, complete=False)  # a stopped run keeps the rows it has
            print(f"{task.id:14} {system:10} solved={row['solved']!s:5} {row['wall_s']:7.1f} s "
                  f"{row['llm_calls']:4} LLM calls {row['tokens']:8} tokens", flush=True)
    print()
    print(f"{'system':10} | solved | wall s | LLM calls | tokens")
    for system in args.systems:
        mine = [r for r in rows if r["system"] == system]
        print(f"{system:10} | {sum(r['solved'] for r in mine)}/{len(mine):<4} | "
              f"{sum(r['wall_s'] for r in mine):6.1f} | {sum(r['llm_calls'] for r in mine):9} | "
              f"{sum(r['tokens'] for r in mine)}")
    _write(args, rows, complete=True)
    print(f"wrote {args.out}")


def _commit() -> str | None:
    """The checked-out commit, with ``+changes`` when the tracked files differ from it."""
    import subprocess

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return (commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--",
                                        ".", ":!benchmarks/results")
                      else "")) or None


_STARTED_AT = _commit()  # the code this run imported, not what HEAD is when it writes


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], *, complete: bool) -> None:
    """The JSON so far: ``complete`` is False until every task and system has run."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "max_rounds": args.max_rounds,
                                    "commit": _STARTED_AT, "complete": complete,
                                    "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
