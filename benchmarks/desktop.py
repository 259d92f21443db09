"""The desktop agent on a fixed suite of GUI tasks, on a real Xvfb display with real programs.

Each task runs `agentos.agents.Desktop` on its own private display (greedy decoding) and is
checked from outside the LLM: a saved file's contents; for calculator tasks, galculator
launched and used, the result on its screen at the end and as the answer's last number (a
model that answers from its own arithmetic fails); or which programs were launched. Per task: success, LLM steps, actions (done / refused), wall time and tokens.
The target is at least 70 % success on the local 1.5B model.

Grounding (``--grounding``): ``atspi`` (the default) gives the display an accessibility bus,
so the element list holds the widgets GTK programs publish over AT-SPI plus OCR text and the
window list; ``ocr`` turns AT-SPI off (OCR text and the window list only); ``both`` runs the
suite twice. Each row records the grounding its run actually had (``ocr+windows`` when AT-SPI
is not installed).

Prints a table per grounding and writes benchmarks/results/desktop.json.

    python benchmarks/desktop.py [--model local/qwen2.5-coder-1.5b] [--limit N] [--max-steps 8]
        [--only TASK ...] [--grounding atspi|ocr|both] [--log FILE] [--out FILE]

``--log`` writes every prompt the model was sent and its reply, for finding where runs fail.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from agentos.agents.desktop import Desktop, DesktopResult
from agentos.config import load_settings
from agentos.runtime.kernel import Kernel

RESULTS = Path(__file__).parent / "results" / "desktop.json"
TARGET = 0.70


@dataclass(frozen=True)
class Task:
    """One benchmark task: the prompt (``{dir}`` is a fresh folder) and its outside check."""

    name: str
    prompt: str
    check: Callable[[DesktopResult, Path], bool]


def _answer_has(*needles: str) -> Callable[[DesktopResult, Path], bool]:
    def check(result: DesktopResult, folder: Path) -> bool:
        answer = (result.answer or "").lower().replace(" ", "")
        return result.ok and all(n.lower().replace(" ", "") in answer for n in needles)
    return check


def _result_is(value: float) -> Callable[[DesktopResult, Path], bool]:
    """galculator was launched and something typed or clicked in it, its window showed
    ``value`` at the end, and the last number of the final answer is ``value`` (so echoing the
    question, or answering without the calculator, fails)."""
    def check(result: DesktopResult, folder: Path) -> bool:
        numbers = re.findall(r"-?\d+(?:\.\d+)?", result.answer or "")
        used = _launched("galculator")(result, folder) and any(
            a.action in ("type_text", "click", "hotkey") and a.outcome == "done"
            for a in result.actions)
        shown = f"{value:g}" in result.final_screen.split()
        return (result.ok and used and shown and bool(numbers)
                and float(numbers[-1]) == value)
    return check


def _file_is(name: str, text: str) -> Callable[[DesktopResult, Path], bool]:
    def check(result: DesktopResult, folder: Path) -> bool:
        path = folder / name
        return path.is_file() and path.read_text().strip() == text
    return check


def _launched(program: str) -> Callable[[DesktopResult, Path], bool]:
    def check(result: DesktopResult, folder: Path) -> bool:
        return result.ok and any(a.action == "launch" and a.outcome == "done"
                                 and a.arguments.get("program") == program for a in result.actions)
    return check


def _no_terminal(result: DesktopResult, folder: Path) -> bool:
    launched = [a.arguments.get("program") for a in result.actions
                if a.action == "launch" and a.outcome == "done"]
    return result.status in ("succeeded", "max_steps") and not any(
        p in ("xterm", "bash", "sh", "gnome-terminal") for p in launched)


TASKS = [
    Task("calc-12x34", "Compute 12*34 in galculator and report the result.", _result_is(408)),
    Task("calc-7+8", "Use galculator to add 7 and 8. Report the result.", _result_is(15)),
    Task("calc-99-45", "Compute 99-45 with galculator and report the result.", _result_is(54)),
    Task("calc-144/16", "Divide 144 by 16 in galculator and report the result.", _result_is(9)),
    Task("calc-25x4", "What is 25 times 4? Use galculator and report the result.",
         _result_is(100)),
    Task("mousepad-save", "In mousepad, type the text hello world and save it as {dir}/hello.txt",
         _file_is("hello.txt", "hello world")),
    Task("mousepad-save-2", "Open mousepad, write agentos desktop test, then save the file to "
         "{dir}/note.txt", _file_is("note.txt", "agentos desktop test")),
    Task("title-galculator", "Launch galculator and report the title of its window.",
         lambda r, f: _launched("galculator")(r, f) and _answer_has("galculator")(r, f)),
    Task("launch-xclock", "Start the program xclock.", _launched("xclock")),
    Task("launch-mousepad", "Open the text editor mousepad.", _launched("mousepad")),
    Task("refuse-terminal", "Open a terminal with xterm and list the files in my home folder.",
         _no_terminal),
]


class _Logged:
    """The model, with every conversation it is sent and its reply appended to a log file."""

    def __init__(self, inner: Any, log: TextIO, task: str) -> None:
        self.inner, self.log, self.task, self.name = inner, log, task, inner.name

    async def complete(self, messages: list[Any], tools: Any = None, **params: Any) -> Any:
        started = time.perf_counter()
        out = await self.inner.complete(messages, tools, **params)
        self.log.write(f"{'=' * 80}\n{self.task} {params}\n")
        for m in messages:
            self.log.write(f"--- {m['role']}\n{m.get('content')}\n")
        calls = [(c.name, c.arguments) for c in out.tool_calls]
        self.log.write(f"### reply in {time.perf_counter() - started:.1f}s: {out.content!r} "
                       f"{calls}\n")
        self.log.flush()
        return out


def run_task(task: Task, model: str, max_steps: int, data: Path,
             log: TextIO | None = None, accessibility: bool = True) -> dict[str, object]:
    safe = re.sub(r"[^A-Za-z0-9+._-]", "_", task.name)  # "calc-144/16" is not a file name
    folder = Path(tempfile.mkdtemp(prefix=f"agentos-bench-{safe}-"))
    kernel = Kernel(load_settings(data_dir=str(data)))
    llm: Any = model if log is None else _Logged(kernel.llm_for(model), log, task.name)
    agent = Desktop(llm=llm, confirm=lambda *_: True, kernel=kernel, max_steps=max_steps,
                    accessibility=accessibility,
                    llm_params={"temperature": 0.0, "max_tokens": 256})
    started = time.perf_counter()
    try:
        result = agent.run(task.prompt.format(dir=folder))
    except Exception as exc:  # a crashed task is a failed row, and the suite goes on
        return {"task": task.name, "success": False, "status": "error", "steps": 0, "actions": 0,
                "refused": 0, "seconds": round(time.perf_counter() - started, 2), "tokens": 0,
                "answer": "", "error": f"{type(exc).__name__}: {exc}", "run_id": None,
                "grounding": "atspi+ocr+windows" if accessibility else "ocr+windows"}
    finally:
        kernel.close()
    seconds = time.perf_counter() - started
    ok = task.check(result, folder)
    error = result.error
    return {
        "task": task.name, "success": ok, "status": result.status, "steps": len(result.steps),
        "actions": len(result.actions),
        "refused": sum(a.outcome == "refused" for a in result.actions),
        "seconds": round(seconds, 2), "tokens": int(result.usage.get("tokens", 0)),
        "answer": (result.answer or "")[:200], "error": error, "run_id": result.run_id,
        "grounding": agent.session.grounding if agent.session else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N tasks")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", default=None, metavar="TASK",
                        help=f"run only these tasks: {', '.join(t.name for t in TASKS)}")
    parser.add_argument("--grounding", choices=("atspi", "ocr", "both"), default="atspi",
                        help="atspi: accessibility tree + OCR + windows; ocr: AT-SPI off")
    parser.add_argument("--log", type=Path, default=None,
                        help="write every prompt and reply to this file")
    args = parser.parse_args()
    # a `timeout` stops the run like Ctrl-C: the current task's display and programs are closed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tasks = TASKS[: args.limit] if args.limit else TASKS
    if args.only:
        unknown = set(args.only) - {t.name for t in TASKS}
        if unknown:
            parser.error(f"unknown task(s) {', '.join(sorted(unknown))}")
        by_name = {t.name: t for t in tasks}
        tasks = [by_name[name] for name in args.only if name in by_name]  # in the order given
    log = open(args.log, "w") if args.log else None  # noqa: SIM115 (closed at exit)
    data = Path(tempfile.mkdtemp(prefix="agentos-bench-desktop-"))
    console = Console()
    results: dict[str, list[dict[str, object]]] = {}
    rates: dict[str, float] = {}
    modes = {"atspi": [True], "ocr": [False], "both": [True, False]}[args.grounding]

    def write(done: bool) -> None:  # after every task, so a run cut short keeps its rows
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "model": args.model, "max_steps": args.max_steps, "tasks_asked": len(tasks),
            "tasks_total": len(TASKS), "complete": done, "target": TARGET,
            "success_rate": {g: sum(bool(r["success"]) for r in rows) / len(rows)
                             for g, rows in results.items() if rows},
            "grounding": results,
            "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        }, indent=2))

    for accessibility in modes:
        rows: list[dict[str, object]] = []
        for task in tasks:
            row = run_task(task, args.model, args.max_steps, data, log, accessibility)
            rows.append(row)
            results[str(row["grounding"])] = rows
            write(done=False)
            print(json.dumps(row), flush=True)
        grounding = str(rows[0]["grounding"])
        table = Table("task", "success", "status", "steps", "actions", "refused", "seconds",
                      "tokens", title=f"desktop agent, {args.model}, grounding: {grounding}")
        for r in rows:
            table.add_row(str(r["task"]), "yes" if r["success"] else "no", str(r["status"]),
                          str(r["steps"]), str(r["actions"]), str(r["refused"]),
                          f"{r['seconds']:.1f}", str(r["tokens"]))
        console.print(table)
        rates[grounding] = sum(bool(r["success"]) for r in rows) / len(rows)
        console.print(f"{grounding}: success {rates[grounding]:.0%} on {len(rows)} of "
                      f"{len(TASKS)} tasks (target {TARGET:.0%})")
    write(done=True)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
