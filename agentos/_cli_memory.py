"""``agentos memory ...``: ingest files, search, stats and forget, on the configured memory.

Mounted by :mod:`agentos.cli`. Imports stay light (typer, rich); chromadb and the embedding
model load inside each command. The CLI is the memory's owner: it uses `Memory` directly,
without agent grants.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["memory_app"]

memory_app = typer.Typer(help="Vector memory: ingest documents, search, stats, forget.",
                         no_args_is_help=True)

_console = Console()
_err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _reports_store_failures(fn: F) -> F:
    """A store that cannot be used (dead Chroma server, full disk) ends the command with its
    message and exit code 2, like a user error, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from agentos.errors import MemoryUnavailable

        try:
            return fn(*args, **kwargs)
        except MemoryUnavailable as error:
            _err.print(f"[red]error:[/] {error}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


NamespaceOption = Annotated[str, typer.Option(
    "--namespace", "-n", help="global, agent:<name> or crew:<id>.")]


def _memory():  # type: ignore[no-untyped-def]
    from agentos.config import load_settings
    from agentos.runtime.memory import Memory

    return Memory.from_settings(load_settings())


@memory_app.command("ingest")
@_reports_store_failures
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (walked recursively).")],
    namespace: NamespaceOption = "global",
    prune: Annotated[bool, typer.Option(help="Delete chunks of files under PATHS that are gone.")] = False,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", "-x", help="Glob to leave out (repeatable), e.g. '_static/*'.")] = None,
    server_wait: Annotated[float, typer.Option(
        min=0, help="Seconds to wait for a Chroma server that went away (a restart) before "
                    "giving up; 0 fails at once.")] = 60.0,
) -> None:
    """Ingest Markdown, reStructuredText, HTML, text, Python and PDF files (idempotent)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentos.runtime.memory.ingest import ingest

    memory = _memory()
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=_err,
                  transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(path: Path, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=path.name)

        def notify(message: str) -> None:
            _err.print(f"[yellow]waiting:[/] {escape(message)}")

        report = ingest(memory, paths, namespace, prune=prune, exclude=exclude or (),
                        progress=progress, server_wait=server_wait, notify=notify)
    memory.close()
    for path, reason in report.skipped:
        _err.print(f"[yellow]skipped[/] {path}: {reason}")
    rate = report.chunks / report.seconds if report.seconds else 0.0
    _console.print(
        f"{namespace}: {report.added} added, {report.replaced} replaced, {report.unchanged} "
        f"unchanged, {report.pruned} pruned, {len(report.skipped)} skipped; {report.chunks} "
        f"chunks in {report.seconds:.1f} s ({rate:.1f} chunks/s)"
    )
    if report.skipped and not (report.added or report.replaced or report.unchanged):
        raise typer.Exit(1)


@memory_app.command("search")
@_reports_store_failures
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many hits.")] = 5,
    namespace: Annotated[Optional[list[str]], typer.Option(
        "--namespace", "-n", help="Namespace to search (repeatable); default: global.")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, vector or lexical.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as a JSON list.")] = False,
) -> None:
    """Recall the best chunks for QUERY."""
    memory = _memory()
    hits = memory.recall(namespace or ["global"], query, k=k, mode=mode)  # type: ignore[arg-type]
    memory.close()
    if as_json:
        _console.print_json(json.dumps([h.as_dict() for h in hits]))
        return
    if not hits:
        _err.print("no hits; `agentos memory stats` shows what is stored")
        return
    for rank, hit in enumerate(hits, 1):
        where = f"{hit.source}#{hit.position}" if hit.source else hit.namespace
        _console.print(f"[bold]{rank}.[/] {hit.score:.4f}  [cyan]{where}[/]  [dim]{hit.id}[/]")
        _console.print("   " + " ".join(hit.text.split())[:300])


@memory_app.command("stats")
@_reports_store_failures
def stats_command() -> None:
    """Where the memory lives, its namespaces, their chunk and file counts."""
    from agentos.runtime.memory.ingest import FileRecords

    memory = _memory()
    stats = memory.stats()
    records = FileRecords(memory.path / "index.sqlite")
    files = records.count()
    records.close()
    memory.close()
    _console.print(f"[bold]backend[/]: {stats['backend']}\n[bold]embedder[/]: {stats['embedder']}")
    table = Table("namespace", "memories", "files ingested")
    for ns, count in stats["namespaces"].items():
        table.add_row(ns, str(count), str(files.get(ns, 0)))
    _console.print(table)


@memory_app.command("forget")
@_reports_store_failures
def forget_command(
    namespace: NamespaceOption = "global",
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="Chunk id (repeatable).")] = None,
    source: Annotated[Optional[Path], typer.Option(help="Forget every chunk of this file.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Empty the whole namespace.")] = False,
) -> None:
    """Delete memories by id, by source file, or a whole namespace."""
    from agentos.errors import UserError
    from agentos.runtime.memory.ingest import FileRecords

    if not (ids or source or everything):
        raise UserError("say what to forget: --id ID, --source FILE or --all")
    memory = _memory()
    records = FileRecords(memory.path / "index.sqlite")
    if everything:
        count = memory.drop(namespace)
        for path in records.paths(namespace):
            records.delete(namespace, path)
    else:
        filters = {"source": str(source.expanduser().resolve())} if source else None
        count = memory.forget(namespace, ids=ids, filters=filters)
        if source:
            records.delete(namespace, str(source.expanduser().resolve()))
    records.close()
    memory.close()
    _console.print(f"forgot {count} memories in {namespace}")
