"""``agentos dashboard``: serve the live web dashboard over the run store.

Mounted by :mod:`agentos.cli`. Imports stay light (typer): Starlette and uvicorn load inside the
command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agentos.errors import UserError

__all__ = ["dashboard_command"]

_PORT = 8700  # agentos.dashboard.server.DEFAULT_PORT, kept here so --help imports nothing


def dashboard_command(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = _PORT,
    host: Annotated[str, typer.Option(help=(
        "Address to listen on. The default is this machine only; 0.0.0.0 shows every run's "
        "tasks, results and errors to anyone who can reach the port (there is no login)."))]
        = "127.0.0.1",
) -> None:
    """Serve a web page of runs, agents, syscalls, queue waits, tokens, cost, energy and CO2.

    It reads the run store of the data directory (AGENTOS_DATA_DIR) and updates live while
    runs and crews in other processes write to it. Ctrl-C stops it.
    """
    try:
        from agentos.dashboard.server import serve
    except ImportError as error:  # starlette or uvicorn missing
        raise UserError(
            f"the dashboard needs Starlette and uvicorn ({error}); install them with "
            "pip install \"agentos-kit[dashboard]\""
        ) from error
    from agentos.config import load_settings

    store_path = load_settings().store_path

    def ready(url: str) -> None:
        typer.echo(f"agentos dashboard: {url}  (run store {store_path}; Ctrl-C stops it)")

    try:
        serve(store_path, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        pass
