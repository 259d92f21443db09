"""``agentos crew run`` and ``agentos runs resume``: the research-and-code crew from the shell.

Mounted by :mod:`agentos.cli`. Imports stay light (typer, rich); the crew, LangGraph and the
models load inside the commands.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from agentos.crew import CrewEvent, CrewResult
    from agentos.runtime.kernel import Kernel

__all__ = ["crew_app", "resume_command"]

crew_app = typer.Typer(help="Crews of agents (LangGraph graphs on the kernel).", no_args_is_help=True)

_console = Console()
_err = Console(stderr=True)

#: Exit code of a run that stopped to wait for a human's approval.
EXIT_WAITING = 3


class _Progress:
    """Live progress on stderr: task, agent, step, tokens, elapsed, budget left."""

    def __init__(self) -> None:
        self.status = _err.status("starting the crew…")
        self.started = time.monotonic()

    def __call__(self, event: CrewEvent) -> None:
        left = ", ".join(f"{k} {v:,.0f}" if k != "cost" else f"${v:.4f}"
                         for k, v in event.budget_left.items())
        line = (f"[bold]{event.task}[/] ({event.agent}, visit {event.visit})"
                + (f" · step {event.step}" if event.step else "")
                + f" · {event.tokens:,} tokens · {event.elapsed_s:.1f} s"
                + (f" · budget left: {left}" if left else ""))
        if event.kind == "task_end":
            mark = "[green]✓[/]" if event.passed else "[red]✗[/]"
            _err.print(f"{mark} {line}"
                       + (f" · {escape(event.detail[:160])}" if event.detail else ""))
            self.status.update("handing off…")
        else:
            self.status.update(line + (f" · {event.detail}" if event.detail else ""))


def _kernel() -> Kernel:
    from agentos.config import load_settings
    from agentos.runtime.kernel import Kernel

    return Kernel(load_settings())


def _ingest(kernel: Kernel, docs: list[Path]) -> None:
    """Put ``docs`` (files or folders) into the ``global`` memory namespace, which every agent
    reads (the researcher recalls from it). Unchanged files are not ingested twice."""
    from agentos.runtime.memory import GLOBAL
    from agentos.runtime.memory.ingest import ingest

    for path in docs:
        if not path.exists():
            from agentos.errors import UserError

            raise UserError(f"--docs {path}: no such file or folder")
    with _err.status(f"ingesting {len(docs)} path(s) into memory…"):
        report = ingest(kernel.memory, docs, GLOBAL)
    _err.print(f"[dim]memory: {report.added} files added, {report.replaced} replaced, "
               f"{report.unchanged} unchanged, {report.chunks} chunks, {len(report.skipped)} "
               f"skipped, {report.seconds:.1f} s[/]")


def _write_outputs(result: CrewResult, out: Path) -> list[Path]:
    """report.md and the coder's files under ``out``; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md"]
    written[0].write_text(result.report or "(no report)\n")
    files: dict[str, str] = dict(result.data.get("code", {}).get("files") or {})
    if not files:
        files = _files_from_text(result.outputs.get("code", ""))
    for name, text in files.items():
        target = (out / name).resolve()
        if not target.is_relative_to(out.resolve()):
            _err.print(f"[yellow]skipped {name}: outside {out}[/]")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written


def _files_from_text(text: str) -> dict[str, str]:
    """Python code blocks of an answer: tests go to test_solution.py, the rest to solution.py."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
    code = [b for b in blocks if "def test_" not in b]
    tests = [b for b in blocks if "def test_" in b]
    files: dict[str, str] = {}
    if code:
        files["solution.py"] = "\n\n".join(code)
    if tests:
        files["test_solution.py"] = "\n\n".join(tests)
    return files


def _finish(kernel: Kernel, crew: Any, result: CrewResult, out: Path | None, as_json: bool) -> None:
    while result.status == "waiting" and sys.stdin.isatty() and not as_json:
        question = result.waiting or {}
        _err.print(f"[bold yellow]approval needed[/]: {question.get('question')}")
        _err.print(f"  arguments: {json.dumps(question.get('arguments'))[:2000]}")
        answer = typer.confirm("Approve?", default=False, err=True)
        result = crew.resume(result.run_id, approve=answer)
    if result.status == "waiting":
        question = (result.waiting or {}).get("question")
        _err.print(f"[yellow]run {result.run_id} waits for approval[/]: {question}\n"
                   f"answer with `agentos runs resume {result.run_id} --approve` or `--reject`")
        if as_json:
            _console.print_json(json.dumps({"run_id": result.run_id, "status": result.status,
                                            "waiting": result.waiting}))
        raise typer.Exit(EXIT_WAITING)
    out = out or kernel.settings.data_dir / "crews" / result.run_id
    written = _write_outputs(result, out)
    if as_json:
        _console.print_json(json.dumps({
            "run_id": result.run_id, "status": result.status, "error": result.error,
            "out": str(out), "files": [str(p) for p in written], "stops": result.stops,
        }))
    else:
        # As written to report.md: not as rich markup (which took `[source, part 0]` and the
        # citations' brackets for tags) and not re-wrapped to the terminal's width.
        sys.stdout.write(result.report)
        sys.stdout.flush()
        _err.print(f"[bold]run {result.run_id}[/]: {result.status}"
                   + (f" — {result.error}" if result.error else ""))
        _err.print(f"wrote {', '.join(p.name for p in written)} to [bold]{out}[/]")
    if not result.ok:
        raise typer.Exit(1)


@crew_app.command("run")
def run_command(
    task: Annotated[str, typer.Argument(help="The goal, e.g. 'research X in the docs, then write a function with tests that does Y'.")],
    docs: Annotated[Optional[list[Path]], typer.Option("--docs", help="File or folder to ingest into memory first (repeatable).")] = None,
    crew_file: Annotated[Optional[Path], typer.Option("--crew", help="A YAML crew instead of the built-in research_and_code.")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Ask before the coder runs code.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for report.md, the code and its tests (default: <data_dir>/crews/<run id>).")] = None,
    model: Annotated[Optional[str], typer.Option(help="litellm model string; default from settings.")] = None,
    max_rounds: Annotated[int, typer.Option(help="How often each loop (tests fail, facts missing, changes requested) may repeat.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a crew on TASK: research in memory, code with tests in the sandbox, review, report.

    Exit status: 0 succeeded, 1 did not converge or failed, 3 waits for approval.
    """
    from agentos.crew.builtin import CODE_RUNNING_TOOLS
    from agentos.crew.definition import builtin_definition, crew_from_definition
    from agentos.crew.spec import load_crew

    kernel = _kernel()
    if docs:
        _ingest(kernel, docs)
    progress = _Progress()
    if crew_file is not None:
        crew = load_crew(crew_file, kernel=kernel, model=model, on_event=progress)
        if approve:
            crew.approve_tools |= set(CODE_RUNNING_TOOLS)
    else:
        definition = builtin_definition(model=model, max_rounds=max_rounds, approve=approve)
        crew = crew_from_definition(definition, kernel=kernel, on_event=progress)
    _err.print(f"[bold]crew[/]: {crew.name}   [bold]model[/]: {model or kernel.settings.model}"
               + ("   [bold]approval[/]: on" if approve else ""))
    with progress.status:
        result = crew.run(task)
    _finish(kernel, crew, result, out, as_json)


def resume_command(
    run_id: Annotated[str, typer.Argument(help="The crew run (a unique prefix is enough).")],
    approve: Annotated[Optional[bool], typer.Option("--approve/--reject", help="Answer the approval the run waits for.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for report.md and the code.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Finish a crew run that was killed or waits for approval, from its last checkpoint.

    Completed steps are not run again; completed LLM and tool calls are replayed from the journal.
    """
    from agentos.crew.checkpoint import load_record
    from agentos.crew.definition import crew_from_definition

    kernel = _kernel()
    record = load_record(kernel.store, run_id)
    progress = _Progress()
    crew = crew_from_definition(record.crew, kernel=kernel, on_event=progress)
    _err.print(f"[bold]resuming[/] {record.run_id} ({crew.name})")
    with progress.status:
        result = crew.resume(record.run_id, approve=approve)
    _finish(kernel, crew, result, out, as_json)
