"""How well a model lists the examples a task's sources state, and how many of them the
Coder's check keeps (``agentos.agents.stated``): each crew task's goal and document, one LLM
call with the Coder's prompt, each listed line graded against the hand-written reference
solution (``examples/crew_tasks/reference.py``). Prints a table and writes JSON::

    python benchmarks/stated_examples.py [--model local/qwen2.5-coder-1.5b] [--only kivu_calendar]
                                          [--out benchmarks/results/stated_examples.json]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stated_examples.json")
    args = parser.parse_args()

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
