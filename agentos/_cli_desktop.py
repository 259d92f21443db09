"""``agentos desktop run`` and ``agentos runs replay``: the desktop agent from the command line.

Imports stay light here (typer, rich); the agent, pyautogui and OCR load when a command runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

__all__ = ["desktop_app", "replay_command"]

desktop_app = typer.Typer(help="The desktop agent: operates GUI programs on a screen.",
                          no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _ask(action: str, arguments: dict[str, Any], reason: str) -> bool:
    """The terminal confirmation hook: y/N for each risky action.

    Raises:
        ActionRefused: stdin is not a terminal, so nobody can be asked.
    """
    if not sys.stdin.isatty():
        from agentos.errors import ActionRefused

        raise ActionRefused("no terminal to ask for confirmation; run with --yes to approve "
                            "risky actions")
    return typer.confirm(f"allow {action} {json.dumps(arguments)}? ({reason})", default=False,
                         err=True)


@desktop_app.command("run")
def run_command(
    task: Annotated[str, typer.Argument(help="What to do on the screen.")],
    model: Annotated[Optional[str], typer.Option(help="litellm model string; default from settings.")] = None,
    real_display: Annotated[bool, typer.Option("--real-display", help="Act on your own screen ($DISPLAY) instead of a private Xvfb display (fail-safe: mouse to a corner aborts).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Record the planned actions without doing them.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve risky actions (launch, close, typed Enter) without asking; approvals are still recorded.")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="LLM turns before stopping.")] = None,
    allow: Annotated[Optional[list[str]], typer.Option("--allow", help="Also allow launching this program (repeatable).")] = None,
    vision: Annotated[Optional[bool], typer.Option("--vision/--no-vision", help="Also send the screenshot to the model; default: when litellm says the model takes images.")] = None,
    atspi: Annotated[bool, typer.Option("--atspi/--no-atspi", help="Read the accessibility tree (AT-SPI) of programs on the private display, next to OCR, when AT-SPI is installed.")] = True,
    countdown: Annotated[int, typer.Option(help="Seconds to wait before acting on a real display.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the desktop agent on TASK: look at the screen, act with mouse and keyboard, report."""
    from agentos.agents.desktop import Desktop
    from agentos.runtime.kernel import Kernel

    kernel = Kernel()
    chosen = model or kernel.settings.model

    def show(step) -> None:  # type: ignore[no-untyped-def]
        for call in step.tool_calls:
            mark = "[green]✓[/]" if call.ok else "[red]✗[/]"
            err.print(f"  {mark} {call.name}({json.dumps(call.arguments)}) → "
                      f"{call.output.splitlines()[0][:160] if call.output else ''}")

    display = None
    if real_display:  # fail before the countdown when there is no screen to act on
        from agentos.desktop.display import RealDisplay

        display = RealDisplay()
    agent = Desktop(llm=chosen, real_display=real_display, display=display, dry_run=dry_run,
                    allow=allow or (), vision=vision, accessibility=atspi,
                    confirm=(lambda *_: True) if yes else _ask, max_steps=max_steps,
                    kernel=kernel, on_step=show)
    where = "your screen" if real_display else "a private virtual display"
    err.print(f"[bold]model[/]: {chosen}   [bold]display[/]: {where}   [bold]programs[/]: "
              f"{', '.join(agent.policy.programs)}" + ("   [yellow]dry run[/]" if dry_run else ""))
    if real_display and not dry_run:
        for left in range(countdown, 0, -1):
            err.print(f"acting on your screen in {left}s (Ctrl-C stops; mouse to a corner aborts)")
            time.sleep(1)
    try:
        result = agent.run(task)
    except KeyboardInterrupt:
        err.print("[yellow]stopped by Ctrl-C[/]; the display and the programs it started are closed")
        raise typer.Exit(130) from None
    if as_json:
        console.print_json(json.dumps({
            "run_id": result.run_id, "status": result.status, "answer": result.answer,
            "error": result.error, "steps": len(result.steps), "usage": result.usage,
            "actions": [{"action": a.action, "arguments": a.arguments, "decision": a.decision,
                         "outcome": a.outcome, "verified": a.verified} for a in result.actions],
            "record_dir": str(result.record_dir),
            "grounding": agent.session.grounding if agent.session else None,
        }))
    else:
        console.print(result.answer or "")
        refused = sum(a.outcome == "refused" for a in result.actions)
        err.print(
            f"[dim]run {result.run_id}: {result.status}, {len(result.steps)} steps, "
            f"{len(result.actions)} actions ({refused} refused), {result.usage['tokens']} tokens; "
            f"screenshots in {result.record_dir}; `agentos runs replay {result.run_id}`[/]"
            + (f"\n[red]{result.error}[/]" if result.error else "")
        )
    if not result.ok:
        raise typer.Exit(1)


def replay_command(
    run_id: Annotated[str, typer.Argument(help="Run id of a desktop run (a unique prefix is enough).")],
    out: Annotated[Optional[Path], typer.Option(help="Where to write the page; default: replay.html beside the screenshots.")] = None,
) -> None:
    """Write an HTML page that steps through a desktop run's actions and screenshots."""
    from agentos.config import data_dir
    from agentos.desktop.replay import write_replay
    from agentos.errors import UserError
    from agentos.runtime.store import RunStore

    from agentos.config import load_settings

    folder = data_dir()
    record = RunStore(load_settings().store_path).get_run(run_id)
    if record is None:
        raise UserError(f"no run {run_id!r}; `agentos runs list` shows the recent ones")
    page = write_replay(folder / "desktop" / record.id, title=f"{record.id}: {record.task}", out=out)
    console.print(str(page))
