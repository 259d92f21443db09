"""Serve a local model over HTTP with llama.cpp's own OpenAI-compatible server.

xllamacpp's ``Server`` starts llama.cpp's HTTP server (``/v1/chat/completions`` with streaming,
``/v1/completions``, ``/v1/models``, ``/health``) when ``params.port`` is set; this module only
checks the inputs first and manages its lifetime. Any OpenAI client works against it, and litellm
through ``model="openai/<name>", api_base="http://host:port/v1"``.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from types import TracebackType
from typing import Any

from agentos.errors import ProviderError, UserError
from agentos.runtime.llm.engine import EngineConfig, _import_xllamacpp, build_params
from agentos.runtime.llm.models import CATALOGUE, resolve

__all__ = ["LocalServer", "PortInUse", "check_port", "serve"]


class PortInUse(UserError):
    """The requested host:port cannot be bound."""


def check_port(host: str, port: int) -> None:
    """Fail early, before loading a model, if ``host:port`` cannot be bound.

    Raises:
        PortInUse: something already listens there (or binding is not allowed).
        UserError: the port number is out of range.
    """
    if not 0 < port < 65536:
        raise UserError(f"port must be between 1 and 65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use: pick another with --port, "
                    f"or stop the process that listens there"
                ) from exc
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class LocalServer:
    """A running llama.cpp HTTP server for one model. Stop it with :meth:`close` (or ``with``)."""

    def __init__(self, server: Any, model: str, url: str) -> None:
        self._server: Any | None = server
        self.model = model
        self.url = url

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://host:port/v1``."""
        return f"{self.url}/v1"

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C), then stop the server."""
        try:
            while self._server is not None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving and free the model; idempotent."""
        server, self._server = self._server, None
        del server

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalServer({self.model!r}, url={self.url!r})"


def serve(
    model: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    n_parallel: int = 2,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    max_tokens: int = 1024,
    block: bool = True,
) -> LocalServer:
    """Serve ``model`` (a catalogue name or a .gguf path) at ``http://host:port/v1``.

    The model is advertised under its catalogue name (or the file's stem) in ``/v1/models``;
    requests may name any model. Each of the ``n_parallel`` slots has ``n_ctx`` tokens of context;
    a request that does not fit gets HTTP 400 (``exceed_context_size_error``) and the server keeps
    serving.

    Args:
        block: serve until Ctrl-C and then return the (closed) server; with ``False`` return the
            running server at once.

    Raises:
        PortInUse: the port is taken (checked before the model loads).
        UnknownModel, ModelNotInstalled, ModelCorrupt: see :func:`models.resolve`.
        UserError: bad settings, or xllamacpp is missing.
        ProviderError: llama.cpp could not start.
    """
    check_port(host, port)
    path = resolve(model)
    text = os.fspath(model)
    name = text if text in CATALOGUE else path.stem
    config = EngineConfig(
        n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads, max_tokens=max_tokens
    )
    xl = _import_xllamacpp()
    params = build_params(path, config, host=host, port=port, alias=name)
    try:
        raw = xl.Server(params)
    except RuntimeError as exc:
        raise ProviderError(f"llama.cpp could not serve {path} on {host}:{port}: {exc}") from exc
    server = LocalServer(raw, name, str(raw.listening_address).rstrip("/"))
    if block:
        server.wait()
    return server
