"""The ``agentos`` command line.

Module-level imports stay light (typer, rich): ``agentos --help`` must not load torch, litellm,
chromadb or any model. Each command imports what it needs.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentos.errors import UserError

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentos",
    help="agentos: an LLM operating system that schedules, connects and remembers for agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Runs in the run store.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)

from agentos._cli_tools import tools_app  # noqa: E402  (list, show, new)

app.add_typer(tools_app, name="tools")
app.add_typer(runs_app, name="runs")
app.add_typer(config_app, name="config")

console = Console()
err = Console(stderr=True)


def _settings():  # type: ignore[no-untyped-def]
    from agentos.config import load_settings

    return load_settings()


def _kernel():  # type: ignore[no-untyped-def]
    from agentos.runtime.kernel import Kernel

    return Kernel(_settings())


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: Annotated[Optional[str], typer.Option(help="litellm model string; default from settings.")] = None,
    tool: Annotated[Optional[list[str]], typer.Option("--tool", "-t", help="Tool name (repeatable); default: all registered tools.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="LLM turns before stopping.")] = None,
    name: Annotated[str, typer.Option(help="Agent name.")] = "assistant",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Approve every call of tools whose permissions need approval (else asked on the terminal).")] = False,
) -> None:
    """Run one agent on one task, with tools, through the kernel."""
    from agentos.agents.base import Agent

    kernel = _kernel()
    chosen = model or kernel.settings.model
    tools = tool if tool is not None else kernel.registry.names()
    err.print(f"[bold]model[/]: {chosen}   [bold]tools[/]: {', '.join(tools) or 'none'}")
    status = err.status("thinking (step 1)…")

    def show(step) -> None:  # type: ignore[no-untyped-def]
        for call in step.tool_calls:
            mark = "[green]✓[/]" if call.ok else "[red]✗[/]"
            err.print(f"  {mark} {call.name}({json.dumps(call.arguments)}) → {call.output[:200]}")
        status.update(f"thinking (step {step.index + 2})…")

    def ask(agent: str, tool: str, arguments: dict) -> bool:  # type: ignore[type-arg]
        call = f"{agent} wants to call {tool}({json.dumps(arguments)})"
        if approve:
            err.print(f"  [yellow]approved by --approve[/]: {call}")
            return True
        status.stop()
        try:
            return typer.confirm(f"{call}. Approve?", err=True)
        finally:
            status.start()

    if approve or sys.stdin.isatty():  # else a call that needs approval is refused
        kernel.approver = ask
    agent = Agent(name, llm=chosen, tools=tools, max_steps=max_steps, kernel=kernel, on_step=show)
    try:
        with status:
            result = agent.run(task)
    finally:
        kernel.close()  # stops the [[mcp_servers]] it started
    if as_json:
        console.print_json(json.dumps({
            "run_id": result.run_id, "status": result.status, "answer": result.answer,
            "error": result.error, "usage": result.usage, "steps": len(result.steps),
        }))
    else:
        console.print(result.answer or "")
        err.print(
            f"[dim]run {result.run_id}: {result.status}, {len(result.steps)} steps, "
            f"{result.usage['tokens']} tokens[/]"
            + (f"\n[red]{result.error}[/]" if result.error else "")
        )
    if not result.ok:
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option(help="How many runs.")] = 20) -> None:
    """Show recent runs."""
    from agentos.runtime.store import RunStore

    store = RunStore(_settings().store_path)
    table = Table("id", "name", "status", "started", "seconds", "tokens", "task")
    for r in store.list_runs(limit):
        seconds = f"{r.ended_at - r.started_at:.2f}" if r.ended_at else "-"
        table.add_row(
            r.id, r.name, r.status, datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            seconds, str(r.usage.get("tokens", "-")), (r.task or "")[:50],
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]) -> None:
    """Show one run and its syscalls with timings and usage."""
    from agentos.runtime.store import RunStore

    store = RunStore(_settings().store_path)
    record = store.get_run(run_id)
    if record is None:
        err.print(f"[red]no run {run_id!r}[/]; `agentos runs list` shows the recent ones")
        raise typer.Exit(2)
    console.print(f"[bold]{record.id}[/] {record.name}: [bold]{record.status}[/]")
    console.print(f"task: {record.task}")
    table = Table("#", "agent", "kind", "name", "outcome", "wait ms", "service ms", "tries",
                  "tokens in/out", "cost $", "energy J")
    for i, s in enumerate(store.syscalls(record.id)):
        table.add_row(
            str(i), s.agent, s.kind, s.name or "", s.outcome, f"{s.queue_wait_s * 1e3:.2f}",
            f"{s.service_s * 1e3:.2f}", str(s.attempts), f"{s.prompt_tokens}/{s.completion_tokens}",
            f"{s.cost:.6f}", f"{s.energy_j:.2f}",
        )
    console.print(table)
    if record.result:
        console.print(f"[bold]result[/]: {record.result}")
    if record.error:
        console.print(f"[red]error[/]: {record.error}")


@config_app.command("show")
def config_show() -> None:
    """Show the effective settings and where each one can be set."""
    settings = _settings()
    table = Table("setting", "value", "env var")
    for name, value in settings.model_dump().items():
        table.add_row(name, str(value), f"AGENTOS_{name.upper()}")
    console.print(table)


def _mount_optional() -> None:
    try:
        from agentos._cli_models import models_app, serve_command
    except ImportError:  # the local-model CLI is not part of this build
        return
    app.add_typer(models_app, name="models")
    app.command("serve")(serve_command)
    from agentos._cli_memory import memory_app

    app.add_typer(memory_app, name="memory")


_mount_optional()


def _mount_crew() -> None:
    from agentos._cli_crew import crew_app, resume_command

    app.add_typer(crew_app, name="crew")
    runs_app.command("resume")(resume_command)


_mount_crew()


def _mount_mcp() -> None:
    from agentos._cli_mcp import mcp_app

    app.add_typer(mcp_app, name="mcp")


_mount_mcp()


def _mount_desktop() -> None:
    from agentos._cli_desktop import desktop_app, replay_command

    app.add_typer(desktop_app, name="desktop")
    runs_app.command("replay")(replay_command)


_mount_desktop()

from agentos._cli_worker import mount_worker  # noqa: E402  (worker, status)

mount_worker(app)

from agentos._cli_energy import energy_app  # noqa: E402  (energy report)

app.add_typer(energy_app, name="energy")
from agentos._cli_compress import mount as _mount_compress  # noqa: E402  (compress, data install)
_mount_compress(app)

from agentos._cli_dashboard import dashboard_command  # noqa: E402  (web dashboard)

app.command("dashboard")(dashboard_command)


def main() -> None:
    """Entry point: turns agentos' user errors into a one-line message and exit code 2."""
    try:
        app()
    except UserError as error:
        err.print(f"[red]error:[/] {error}")
        sys.exit(2)
