"""``agentos energy``: what a run's syscalls cost in joules, CO2 and FLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["energy_app"]

energy_app = typer.Typer(help="Energy, CO2 and FLOPs of runs.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@energy_app.command("report")
def report(
    run: Annotated[Optional[str], typer.Argument(help="Run id (a unique prefix is enough); default: the newest run.")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write an HTML report with plots to this file.")] = None,
) -> None:
    """A run's energy, CO2 and FLOPs per agent, model and tool, with the method behind each."""
    from agentos._energy_report import render_html, summarise
    from agentos.config import load_settings
    from agentos.runtime.store import RunStore

    store = RunStore(load_settings().store_path)
    try:
        if run is None:
            newest = store.list_runs(1)
            record = newest[0] if newest else None
        else:
            record = store.get_run(run)
        if record is None:
            err.print(f"[red]no run {run!r}[/]; `agentos runs list` shows the recent ones"
                      if run else "[red]the run store has no runs yet[/]")
            raise typer.Exit(2)
        summary = summarise(record, store.syscalls(record.id))
    finally:
        store.close()
    console.print(f"[bold]{record.id}[/] {record.name}: [bold]{record.status}[/]  total "
                  f"{summary.energy_j:.3f} J, {summary.gco2 * 1e3:.4f} mgCO2e, {summary.flops:.3g} FLOPs")
    table = Table("by", "name", "syscalls", "energy J", "mgCO2e", "FLOPs", "method")
    for g in summary.groups:
        table.add_row(g.by, g.name, str(g.syscalls), f"{g.energy_j:.3f}", f"{g.gco2 * 1e3:.4f}",
                      f"{g.flops:.3g}", summary.method_refs(g))
    console.print(table)
    console.print("[bold]methods[/]")
    for number, method in enumerate(summary.methods(), 1):
        console.print(f"  [{number}] {method}", highlight=False)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(summary))
        console.print(f"HTML report: {html}")
