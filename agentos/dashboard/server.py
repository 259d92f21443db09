"""Serving the dashboard: bind the address first (a clear error if it is taken), then uvicorn."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path

from agentos.errors import UserError

__all__ = ["DEFAULT_PORT", "bind", "serve"]

DEFAULT_PORT = 8700


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as ``host`` resolves).

    Raises:
        UserError: the port is out of range, already in use, or not allowed for this user, or
            ``host`` is not an address of this machine; the message names ``--port`` or
            ``--host`` and what to do.
    """
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a TCP port; use a number from 1024 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UserError(f"--host {host!r} is not an address here ({error.strerror}); use "
                        "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from error
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another dashboard or "
                            "server?); pick a free one with --port, e.g. --port "
                            f"{port + 1 if port < 65535 else 8701}") from error
        if error.errno == errno.EACCES:
            raise UserError(f"this user may not listen on port {port}; use --port 1024 or "
                            "higher") from error
        if error.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"--host {host!r} is not an address of this machine; use 127.0.0.1 "
                            "or 0.0.0.0") from error
        raise
    return sock


def serve(
    store_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard over the run store at ``store_path`` until interrupted.

    Args:
        store_path: the SQLite run store (created empty if it does not exist yet).
        host, port: where to listen; port 0 picks a free one.
        on_ready: called with the page's URL once the socket listens.

    Raises:
        UserError: the address cannot be bound (see :func:`bind`), or the file is not a run
            store.
    """
    import uvicorn

    from agentos.dashboard.app import create_app
    from agentos.runtime.store import RunStore

    sock = bind(host, port)
    try:
        store = RunStore(store_path)
    except BaseException:
        sock.close()
        raise
    try:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound}/")
        server: uvicorn.Server | None = None
        app = create_app(store, stopping=lambda: server is not None and server.should_exit)
        server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2,
        ))
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
